"""Lightning messages a user should not see on every run, silenced narrowly (each by its exact text)."""

from __future__ import annotations

import contextlib
import logging
import warnings


class _DropTip(logging.Filter):
    """Lightning advertises its cloud logger ('💡 Tip: ... litlogger') at every Trainer start."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def quiet_lightning() -> None:
    """Called before a Trainer is made; safe to call again."""
    rank_zero = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if not any(isinstance(f, _DropTip) for f in rank_zero.filters):
        rank_zero.addFilter(_DropTip())
    # pytorch-lightning 2.6's _pytree still uses torch's LeafSpec, deprecated in torch 2.13: nothing a user can do
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
    )
    # on any machine with SLURM's client tools, outside a job as well: mfff's launcher configs start jobs with srun
    warnings.filterwarnings("ignore", message=r"The `srun` command is available on your system but is not used")


@contextlib.contextmanager
def resuming_quietly(resuming: bool):
    """Around `Trainer.fit`: a resumed run writes into the checkpoint dir it continues, which Lightning warns about."""
    with warnings.catch_warnings():
        if resuming:
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        yield


class _DropRestoring(logging.Filter):
    """Lightning's 'Restoring states from the checkpoint path ...' / 'Loaded model weights from the checkpoint ...'."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not message.startswith(("Restoring states from the checkpoint path", "Loaded model weights from"))


@contextlib.contextmanager
def restoring_quietly():
    """Around evaluating a checkpoint the run has already named."""
    rank_zero = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    drop = _DropRestoring()
    rank_zero.addFilter(drop)
    try:
        yield
    finally:
        rank_zero.removeFilter(drop)
