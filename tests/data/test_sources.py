"""One source per fidelity: splits, nested subsets, sizes, statistics, and their errors."""

import numpy as np
import pytest

from mfff.data.datamodule import MultiFidelityDataModule
from mfff.data.errors import DataError
from mfff.data.readers import ASEReader
from mfff.data.sources import FidelitySource


def _source(path, **kwargs):
    return FidelitySource("emt", ASEReader(path, energy_key="energy_emt", forces_key="forces_emt"), **kwargs)


def _ids(structures):
    return [s.positions.tobytes() for s in structures]


def test_random_split_sizes_and_disjointness(emt_extxyz):
    source = _source(emt_extxyz, split="random", n_val=10, n_train=50)
    source.setup()
    assert len(source.train) == 50 and len(source.val) == 10 and len(source.tests["test"]) == 12
    ids = [set(_ids(x)) for x in (source.train, source.val, source.tests["test"])]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])


def test_training_subsets_nest_for_one_seed(emt_extxyz):
    small, large = _source(emt_extxyz, split="random", n_train=20), _source(emt_extxyz, split="random", n_train=60)
    small.setup()
    large.setup()
    assert set(_ids(small.train)) <= set(_ids(large.train))
    assert _ids(small.val) == _ids(large.val)
    other = _source(emt_extxyz, split="random", n_train=20, seed=1)
    other.setup()
    assert _ids(other.train) != _ids(small.train)


def test_group_split_holds_out_whole_molecules(emt_extxyz):
    source = _source(emt_extxyz, split="group", test_fraction=0.25)
    source.setup()
    test_groups = {s.group for s in source.tests["test"]}
    train_groups = {s.group for s in source.train + source.val}
    assert len(test_groups) == 1 and not (test_groups & train_groups)


def test_statistics_come_from_the_training_split(emt_extxyz):
    source = _source(emt_extxyz, split="random")
    source.setup()
    residual = np.array([s.energy - source.e0[s.numbers].sum() for s in source.train])
    counts = np.array([[np.sum(s.numbers == z) for z in (1, 6, 7, 8)] for s in source.train])
    np.testing.assert_allclose(counts.T @ residual, 0.0, atol=1e-8)  # least-squares normal equations hold
    forces = np.concatenate([s.forces for s in source.train])
    assert source.stats()["force_rms"] == pytest.approx(np.sqrt(np.mean(forces**2)))
    assert not source.stats(use_forces=False)["has_forces"]
    assert source.avg_neighbours > 1.0 and source.elements == [1, 6, 7, 8]


def test_n_train_larger_than_the_data(emt_extxyz):
    with pytest.raises(DataError, match="data.sources.emt.n_train=5000 but only 98 training structures remain"):
        _source(emt_extxyz, split="random", n_train=5000, n_val=10).setup()


def test_empty_split(emt_extxyz):
    with pytest.raises(DataError, match="the test split of data.sources.emt .* is empty"):
        _source(emt_extxyz, split="random", test_fraction=0.0).setup()


def test_predefined_split_needs_tags(emt_extxyz):
    with pytest.raises(DataError, match="split=predefined but .* has no split tags; use split=random"):
        _source(emt_extxyz, split="predefined").setup()


def test_datamodule_mixes_sources_and_masks_missing_forces(emt_extxyz):
    energy_only = FidelitySource(
        "cheap", ASEReader(emt_extxyz, energy_key="energy_emt", forces_key=None), split="random", n_train=40
    )
    dm = MultiFidelityDataModule(
        {"emt": _source(emt_extxyz, split="random", n_train=40), "cheap": energy_only},
        fidelities=["emt", "cheap"],
        batch_size=80,
        cutoff=4.0,
    )
    dm.setup()
    assert dm.fidelities == ["cheap", "emt"]
    batch = next(iter(dm.train_dataloader()))
    assert batch.n_graphs == 80 and sorted(batch.fidelity.tolist()).count(0) == 40
    atom_fidelity = batch.fidelity[batch.batch]
    assert batch.forces_mask[atom_fidelity == 0].sum() == 0  # energy-only source: no force labels
    assert batch.forces_mask[atom_fidelity == 1].all()
    assert batch.energy_mask.all()
    assert batch.edge_index.shape[0] == 2 and batch.edge_index.shape[1] > 0


def test_unknown_fidelity_in_datamodule(emt_extxyz):
    with pytest.raises(DataError, match="fidelity 'dft' \\(strategy\\) has no source in data.sources"):
        MultiFidelityDataModule({"emt": _source(emt_extxyz)}, fidelities=["dft"])
