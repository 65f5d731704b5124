"""Shared test helpers."""

from __future__ import annotations

from hydra import compose, initialize_config_dir

from mfff.config import conf_dir


def compose_config(name: str, overrides: list[str] | None = None):
    """Compose a root config (e.g. 'label') the way the console script does, with overrides."""
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides or []))
