"""Where the Hydra configs live: inside the installed package (wheel) or at the repository root (editable)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def conf_dir() -> Path:
    for candidate in (_PACKAGE / "conf", _PACKAGE.parent / "conf"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"mfff's Hydra configs were not found next to {_PACKAGE}; reinstall mfff")
