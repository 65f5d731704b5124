"""The training loader resumes mid-epoch: after `load_state_dict` it yields exactly the batches the interrupted
epoch had not reached, then whole epochs; its plan is that of the trainer's epoch, whoever iterates first."""

from mfff.data.loader import ResumableLoader
from mfff.data.sampler import Composition, EpochCounter, MixedBatchSampler


def _loader(progress):
    items = list(range(40))
    composition = Composition({"a": 24, "b": 16}, 8)
    sampler = MixedBatchSampler(EpochCounter(items), composition, {"a": 0, "b": 24}, seed=3)
    return ResumableLoader(items, batch_sampler=sampler, collate_fn=list, progress=progress)


def test_resumed_epoch_goes_on_with_the_batches_not_yet_trained():
    state = {"epoch": 2, "batches": 0}
    loader = _loader(lambda: (state["epoch"], state["batches"]))
    whole = [list(b) for b in loader]
    assert len(whole) == 5 and sorted(i for b in whole for i in b) == list(range(40))
    state["batches"] = 3
    saved = loader.state_dict()
    assert saved == {"epoch": 2, "batches": 3}

    resumed = _loader(lambda: (2, 0))  # a new process: the trainer has restored epoch 2
    resumed.load_state_dict(saved)
    assert [list(b) for b in resumed] == whole[3:]
    assert [list(b) for b in resumed] == whole  # the next pass of the same epoch is whole again


def test_the_epoch_comes_from_the_trainer_and_a_stale_state_skips_nothing():
    loader = _loader(lambda: (4, 0))
    epoch_4 = [list(b) for b in loader]
    assert epoch_4 != [list(b) for b in _loader(lambda: (0, 0))]  # each epoch its own shuffle
    loader.load_state_dict({"epoch": 3, "batches": 2})  # saved in another epoch than the one now trained
    assert [list(b) for b in loader] == epoch_4
