"""Checkpoint writes that a kill cannot tear."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from mfff.utils.atomic import atomic_open


class AtomicCheckpointIO(TorchCheckpointIO):
    """`torch.save` into a temporary file beside the checkpoint, fsync, then rename over it: a reader (or a resumed
    run) finds the previous checkpoint or the new one, whole.

    Lightning's own writer puts its temporary file in the system temp dir; where that is another filesystem than
    the run dir (a node's local /tmp, the run on shared storage: the usual cluster layout) its final move is a copy
    that a kill can leave half-written, and nothing is fsynced.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path) and not str(path).startswith("file://"):  # object stores: Lightning's fsspec path
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__}.save_checkpoint takes no storage_options, got {storage_options!r}")
        target = Path(str(path).removeprefix("file://"))
        with atomic_open(target, "wb") as handle:
            torch.save(checkpoint, handle)
        # what a write killed part-way left beside it (one writer per checkpoint: rank 0)
        for stale in target.parent.glob(f".{target.name}.*.tmp"):
            stale.unlink(missing_ok=True)
