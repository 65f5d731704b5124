"""What a stage continues from: `resume=<run dir or .ckpt>` names it, `resume=auto` finds the run's own."""

from __future__ import annotations

import logging
from pathlib import Path

from mfff.runs.preemption import SaveOnSignal
from mfff.train.checkpoints import read_checkpoint, resolve_checkpoint

log = logging.getLogger(__name__)

AUTO = "auto"
KEY = "resume"
# what a stage writes that it can continue from: saved on a signal, and after every epoch
RESUMABLE = (SaveOnSignal.FILENAME, "last.ckpt")


def latest_checkpoint(directory: Path) -> Path | None:
    """The stage's newest resumable checkpoint in `directory` (by training step; a tie goes to the signal's, saved
    after the epoch's), or None."""
    found = [directory / name for name in RESUMABLE if (directory / name).is_file()]
    if not found:
        return None
    return max(found, key=lambda path: (saved_step(path), -RESUMABLE.index(path.name)))


def saved_step(checkpoint: Path) -> int:
    """The training step a checkpoint was saved at. Memory-mapped: its tensors are not read."""
    return read_checkpoint(checkpoint, mmap=True)["global_step"]


def resume_point(resume, output_dir: Path) -> str | None:
    """The checkpoint a stage writing to `output_dir` continues from, or None for a fresh start.

    Args:
        resume: None (start afresh), "auto" (this stage's own latest checkpoint, if it saved one: what a requeued
            job uses), or a run dir (its latest) or .ckpt file.
    """
    if resume is None or str(resume) in ("", "None", "null"):
        return None
    if str(resume) == AUTO:
        found = latest_checkpoint(output_dir / "checkpoints")
        if found is None:
            log.info("resume=auto: %s has no checkpoint yet; starting afresh", output_dir)
            return None
        log.info("resume=auto: continuing from %s", found)
        return str(found)
    path = Path(str(resume)).expanduser()
    found = latest_checkpoint(path / "checkpoints") if path.is_dir() else None
    return str(found or resolve_checkpoint(resume, KEY, prefer="last"))
