"""Batch composition across fidelities: proportional, ratios, fixed; epoch length; DDP ranks; bad settings."""

from collections import Counter

import numpy as np
import pytest
from torch.utils.data.distributed import DistributedSampler

from mfff.data.sampler import Composition, EpochCounter, MixedBatchSampler
from mfff.errors import UserError

SIZES = {"dft": 40, "gfn2": 400}
OFFSETS = {"dft": 0, "gfn2": 40}


def _fidelity(index: int) -> str:
    return "dft" if index < 40 else "gfn2"


def _batches(composition, epoch=0, sampler=None):
    counter = sampler or EpochCounter(range(440))
    counter.set_epoch(epoch)
    return list(MixedBatchSampler(counter, composition, OFFSETS, seed=3))


def test_fixed_batches_hold_the_configured_count_per_fidelity():
    composition = Composition(SIZES, 16, mode="fixed", fixed={"dft": 4}, epoch_fidelity="dft")
    batches = _batches(composition)
    assert len(batches) == 10  # one pass over the 40 dft structures, 4 per batch
    for batch in batches:
        counts = Counter(_fidelity(i) for i in batch)
        assert counts == {"dft": 4, "gfn2": 12}
    dft_seen = [i for b in batches for i in b if i < 40]
    assert sorted(dft_seen) == list(range(40))  # each dft structure exactly once per epoch


def test_fixed_with_every_fidelity_named():
    composition = Composition(SIZES, 10, mode="fixed", fixed={"dft": 3, "gfn2": 7}, epoch_steps=5)
    assert all(Counter(_fidelity(i) for i in b) == {"dft": 3, "gfn2": 7} for b in _batches(composition))


def test_ratios_are_followed_on_average_and_batches_are_full():
    composition = Composition(SIZES, 20, mode="ratios", ratios={"dft": 1, "gfn2": 3}, epoch_steps=400)
    batches = _batches(composition)
    assert len(batches) == 400 and all(len(b) == 20 for b in batches)
    share = np.mean([sum(i < 40 for i in b) / 20 for b in batches])
    assert share == pytest.approx(0.25, abs=0.01)


def test_proportional_visits_everything_once_per_epoch():
    composition = Composition(SIZES, 16)
    batches = _batches(composition)
    assert len(batches) == 28  # ceil(440 / 16)
    assert sorted(i for b in batches for i in b) == list(range(440))


def test_epochs_differ_and_one_epoch_repeats_exactly():
    composition = Composition(SIZES, 16, mode="fixed", fixed={"dft": 4}, epoch_fidelity="dft")
    assert _batches(composition, epoch=1) == _batches(composition, epoch=1)
    assert _batches(composition, epoch=1) != _batches(composition, epoch=2)


def test_ddp_ranks_split_one_plan_evenly():
    composition = Composition(SIZES, 16, mode="fixed", fixed={"dft": 4}, epoch_steps=9)
    ranks = [_batches(composition, 0, DistributedSampler(range(440), num_replicas=2, rank=r)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 5
    single = list(MixedBatchSampler(EpochCounter(range(440)), _padded(composition, 10), OFFSETS, seed=3))
    assert ranks[0] == single[0::2] and ranks[1] == single[1::2]


def _padded(composition, steps):
    composition.steps = steps
    return composition


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "ratios", "ratios": {"dft": -1, "gfn2": 2}}, "must be non-negative with a positive sum"),
        ({"mode": "ratios", "ratios": {"dft": 0, "gfn2": 0}}, "must be non-negative with a positive sum"),
        ({"mode": "ratios", "ratios": {"dft": 1}}, "strategy.sampling.ratios has no value for \\['gfn2'\\]"),
        ({"mode": "ratios", "ratios": {"dft": 1, "gfn2": 1, "cc": 1}}, "names \\['cc'\\], which are not trained"),
        ({"mode": "fixed", "fixed": {"dft": 10, "gfn2": 10}}, "puts 20 structures in a batch of data.batch_size=16"),
        ({"mode": "fixed", "fixed": {"dft": 4, "gfn2": 4}}, "names every fidelity, so nothing can fill the rest"),
        ({"mode": "fixed", "fixed": {"dft": -2}}, "has a negative count"),
        ({"mode": "sometimes"}, "strategy.sampling.mode='sometimes' is unknown"),
        ({"fixed": {"dft": 4}}, "strategy.sampling.fixed is set but strategy.sampling.mode=proportional"),
        ({"mode": "fixed", "ratios": {"dft": 1, "gfn2": 1}}, "ratios is set but strategy.sampling.mode=fixed"),
        ({"epoch_steps": 3, "epoch_fidelity": "dft"}, "set only one of"),
        ({"epoch_fidelity": "cc"}, "epoch_fidelity='cc' is not trained here"),
        ({"mode": "ratios", "ratios": {"dft": 0, "gfn2": 1}, "epoch_fidelity": "dft"}, "never appears in a batch"),
    ],
)
def test_bad_sampling_settings_are_named(kwargs, message):
    with pytest.raises(UserError, match=message):
        Composition(SIZES, 16, **kwargs)
