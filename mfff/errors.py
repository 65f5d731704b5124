"""The one error contract for bad input: a message naming the file or config key and the fix; exit 2 at the CLI."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user (a config value, a file); the message names it and says how to fix it."""


class TrainingDiverged(RuntimeError):
    """The loss (or a final metric) became NaN or infinite; the run dir's metrics.json records where."""

    def __init__(
        self, epoch: int, step: int, what: str = "the training loss", stage: str | None = None, metrics_file=None
    ):
        super().__init__(epoch, step, what, stage, metrics_file)
        self.epoch, self.step, self.what, self.stage = int(epoch), int(step), what, stage
        self.metrics_file = metrics_file  # the run record that holds it, once written (`recorded_in`)

    def recorded_in(self, metrics_file) -> TrainingDiverged:
        """The same divergence, once the run has recorded it (raised anew by the layer that wrote the record)."""
        return TrainingDiverged(self.epoch, self.step, self.what, self.stage, metrics_file)

    def record(self) -> dict:
        return {"stage": self.stage, "epoch": self.epoch, "step": self.step, "what": self.what}

    def __str__(self) -> str:
        where = f"; recorded in {self.metrics_file}" if self.metrics_file else ""
        return (
            f"training diverged in stage {self.stage} at epoch {self.epoch} (step {self.step}): {self.what} became "
            f"NaN/inf. Lower optimizer.lr, or check the labels' units{where}"
        )


class Interrupted(RuntimeError):
    """The run was stopped by a signal (SIGTERM, SIGUSR1); its state is in `checkpoint` (None: it had not started
    training).

    Attributes:
        by_path: the checkpoint can be named with resume=<checkpoint> (the last stage's; an earlier stage's is found
            by resume=auto only);
        requeued: the SLURM job this run was requeued as, which continues it.
    """

    def __init__(self, signal: str, stage: str | None, epoch: int, step: int, checkpoint: str | None,
                 by_path: bool = True, disk: str | None = None):  # fmt: skip
        super().__init__(signal, stage, epoch, step, checkpoint)
        self.signal, self.stage, self.epoch, self.step, self.checkpoint = signal, stage, epoch, step, checkpoint
        self.by_path, self.requeued = by_path, None
        self.disk = disk  # a full disk stopped the run (signal ENOSPC / EDQUOT): where, e.g. "no space left in <dir>"
        self.record_written = True  # False where not even metrics.json fitted on the disk

    def record(self) -> dict:
        return {"signal": self.signal, "stage": self.stage, "epoch": self.epoch, "step": self.step,
                "checkpoint": self.checkpoint, "requeued": self.requeued, "disk": self.disk}  # fmt: skip

    def __str__(self) -> str:
        free = "free space there, then " if self.disk else ""
        if not self.checkpoint:
            where = "nothing saved" + (f"; {free}run the same command again" if self.disk else "")
        elif self.requeued:
            where = f"saved {self.checkpoint}; requeued as SLURM job {self.requeued}, which continues from it"
        else:
            by_path = f", or resume={self.checkpoint}" if self.by_path else ""
            kept = "kept the last good checkpoint" if self.disk else "saved"
            where = f"{kept} {self.checkpoint}; {free}continue with the same command and resume=auto{by_path}"
        if not self.record_written:
            where += " (metrics.json could not be written either)"
        cause = f"stopped by a full disk: {self.disk}," if self.disk else f"interrupted by {self.signal}"
        return f"{cause} in stage {self.stage} at epoch {self.epoch} (step {self.step}): {where}"
