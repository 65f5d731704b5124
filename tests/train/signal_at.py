"""A callback that sends this process a signal at the end of a given training step: a real signal, at a known point."""

import os
import signal

import pytorch_lightning as pl


class SignalAt(pl.Callback):
    """Args:
    rank: only this DDP rank is signalled (None: every process), as when one node of a job is warned first."""

    def __init__(self, step: int, name: str = "SIGTERM", rank: int | None = None):
        self.step, self.signal, self.rank = int(step), getattr(signal, name), rank

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if trainer.global_step == self.step and self.rank in (None, trainer.global_rank):
            os.kill(os.getpid(), self.signal)
