"""Directories mfff writes to, checked up front: an unwritable one is one clear line, not a traceback later."""

from __future__ import annotations

import os
from pathlib import Path

from mfff.errors import UserError


def require_writable(directory: Path, key: str, error: type[UserError] = UserError, example: str = "") -> None:
    """Create `directory` (and its parents) and write a probe file there, or raise `error` naming `key`."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".mfff-write-probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        hint = f", e.g. {key}={example}" if example else ""
        raise error(
            f"cannot write to {key}={directory} ({err.strerror or err}); choose a writable directory{hint}"
        ) from None
