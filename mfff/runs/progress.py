"""What a run prints while it trains: Lightning's progress bar on a terminal; elsewhere (a batch job's log, a pipe) one
line per epoch, since a bar redrawn per step fills a redirected log with carriage returns."""

from __future__ import annotations

import logging
import sys
import time

import pytorch_lightning as pl

log = logging.getLogger("mfff.progress")


def show_bar(wanted: bool) -> bool:
    """Lightning's bar only where it asks for it (`trainer.enable_progress_bar`) and stderr is a terminal."""
    return bool(wanted) and sys.stderr.isatty()


class EpochLine(pl.Callback):
    """`epoch 3/100: train/loss 1.234, val/loss 2.345 (4.1 s)`, logged at the end of every training epoch."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        shown = [(name, metrics[key]) for name, key in (("train/loss", "train/loss_epoch"), ("val/loss", "val/loss"))
                 if key in metrics]  # fmt: skip
        values = ", ".join(f"{name} {float(value):.4g}" for name, value in shown)
        total = trainer.max_epochs if trainer.max_epochs not in (None, -1) else "?"
        elapsed = time.perf_counter() - getattr(self, "_start", time.perf_counter())
        log.info("epoch %d/%s: %s (%.1f s)", trainer.current_epoch + 1, total, values or "no metrics yet", elapsed)
