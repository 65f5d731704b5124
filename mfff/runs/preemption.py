"""Stopping on a scheduler's signal with the run's state saved, and SLURM's requeue.

SIGTERM: SLURM sends it on `scancel`, at the time limit and on preemption (then kills after KillWait, 30 s by default).
SIGUSR1: sent ahead of the time limit when the job asks for it (`sbatch --signal=USR1@<s>`; submitit's launcher
does). Either one stops training at the end of the current batch and saves `checkpoints/interrupted.ckpt`;
after SIGUSR1, a SLURM job run with `resume=auto` is requeued and continues from that checkpoint.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading

import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class Preempted(Exception):
    """Raised at a batch end after SIGUSR1, so Lightning stops training and calls `on_exception`."""

    def __init__(self, signal_name: str):
        super().__init__(f"received {signal_name}")
        self.signal_name = signal_name


class SaveOnSignal(pl.Callback):
    """On SIGTERM or SIGUSR1, stop at the end of the current batch and save the run's state to
    `<checkpoint dir>/interrupted.ckpt` before Lightning tears the trainer down; `resume` continues from it, mid-epoch
    included (the training loader is resumable).

    Lightning itself turns SIGTERM into `SIGTERMException` at a batch end (on every DDP rank at once). SIGUSR1 is
    handled here the same way; its handler replaces submitit's and Lightning's own, which would save or requeue
    from inside the signal handler, in the middle of a step. A signal during validation saves nothing here: the
    run continues from `last.ckpt`, the end of the previous epoch.
    """

    FILENAME = "interrupted.ckpt"

    def __init__(self):
        self.saved: str | None = None
        self.received: str | None = None
        self._previous = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # before Lightning registers its handlers, which leave an existing SIGUSR1 handler in place
        if stage == "fit" and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGUSR1, self._on_usr1)

    def _on_usr1(self, signum, frame) -> None:
        log.info("received SIGUSR1: saving and stopping at the end of this batch")
        self.received = "SIGUSR1"

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        requested = self.received is not None
        if trainer.world_size > 1:  # every rank stops at the same batch, or the others would wait forever
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        if requested:
            raise Preempted(self.received or "SIGUSR1")

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGUSR1, self._previous)
            self._previous = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, (SIGTERMException, Preempted)) or trainer.checkpoint_callback is None:
            return
        if trainer.validating or trainer.sanity_checking:
            # the EMA's average is swapped into the module, and a half-run validation cannot be resumed: the run
            # continues from the last epoch's checkpoint instead
            return
        self.received = exception.signal_name if isinstance(exception, Preempted) else "SIGTERM"
        path = f"{trainer.checkpoint_callback.dirpath}/{self.FILENAME}"
        trainer.save_checkpoint(path)
        self.saved = path


def slurm_job_id() -> str | None:
    """This process's SLURM job as `scontrol` names it (`<array job>_<task>` for a job array, as submitit submits
    sweeps), or None outside SLURM."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    return os.environ.get("SLURM_JOB_ID") or None


def slurm_record() -> dict | None:
    """Where this run ran under SLURM (metrics.json's `slurm`): job id, node, and how often it was requeued."""
    job = slurm_job_id()
    if job is None:
        return None
    return {"job_id": job, "node": os.environ.get("SLURMD_NODENAME"),
            "restarts": int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)}  # fmt: skip


def requeue(job_id: str) -> None:
    """Put the job back in the queue (SLURM restarts it from its batch script: the same run dir, `resume=auto`)."""
    result = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"scontrol requeue {job_id} failed: {result.stderr.strip() or result.returncode}")
