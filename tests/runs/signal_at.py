"""Test callbacks: a real signal sent to this process at a known training step, and a pace that holds a run at a known
epoch for a watcher outside the process."""

import os
import signal
import time

import pytorch_lightning as pl


class SignalAt(pl.Callback):
    """Args:
    rank: only this DDP rank is signalled (None: every process), as when one node of a job is warned first."""

    def __init__(self, step: int, name: str = "SIGTERM", rank: int | None = None):
        self.step, self.signal, self.rank = int(step), getattr(signal, name), rank

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if trainer.global_step == self.step and self.rank in (None, trainer.global_rank):
            os.kill(os.getpid(), self.signal)


class Pace(pl.Callback):
    """Sleeps `seconds` at the start of every training epoch from `epoch` on, so a test that watches the saved epochs
    from outside can act while the run is at a known epoch, however fast the machine trains (a small run may do all
    its epochs between two looks). Sleeping changes no numbers."""

    def __init__(self, epoch: int, seconds: float = 0.5):
        self.epoch, self.seconds = int(epoch), float(seconds)

    def on_train_epoch_start(self, trainer: pl.Trainer, *args) -> None:
        if trainer.current_epoch >= self.epoch:
            time.sleep(self.seconds)
