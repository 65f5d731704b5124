"""Logger factories that need a decision at run time."""

from __future__ import annotations

import netrc
import os
from pathlib import Path


def wandb_api_key_available() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(Path.home() / ".netrc").authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_logger(project: str, group: str, save_dir: str, offline: bool | None = None, **kwargs):
    """A Lightning WandbLogger writing real run files; offline when no API key is configured."""
    from pytorch_lightning.loggers import WandbLogger

    if offline is None:
        offline = not wandb_api_key_available() or os.environ.get("WANDB_MODE") == "offline"
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(project=project, group=group, save_dir=save_dir, offline=offline, **kwargs)
