"""The training DataLoader, resumable mid-epoch: a run stopped inside an epoch goes on with the batches it had not
trained on, so a resumed run repeats the uninterrupted one."""

from __future__ import annotations

from collections.abc import Callable

from torch.utils.data import DataLoader


def no_progress() -> tuple[int, int]:
    return 0, 0


class ResumableLoader(DataLoader):
    """A DataLoader over a `MixedBatchSampler` that Lightning checkpoints (it calls `state_dict` when it saves and
    `load_state_dict` when a run resumes before the end of an epoch).

    The batch plan is a function of the seed and the epoch, so the state is just (epoch, batches of it trained).

    Args:
        progress: () -> (the epoch being trained, how many of its batches have been trained), read from the
            trainer, whose counters a checkpoint restores. Lightning prefetches, so the loader's own count of the
            batches it handed out would be ahead of what was trained.
    """

    def __init__(self, *args, progress: Callable[[], tuple[int, int]] = no_progress, **kwargs):
        super().__init__(*args, **kwargs)
        self.progress = progress

    def __iter__(self):
        # the epoch from the trainer: Lightning creates a resumed run's first iterator (and data workers prefetch
        # from it) before it sets the sampler's epoch
        epoch, _ = self.progress()
        self.batch_sampler.sampler.set_epoch(epoch)
        return super().__iter__()

    def state_dict(self) -> dict:
        epoch, batches = self.progress()
        return {"epoch": epoch, "batches": batches}

    def load_state_dict(self, state: dict) -> None:
        self.batch_sampler.resume_at(state["epoch"], state["batches"])
