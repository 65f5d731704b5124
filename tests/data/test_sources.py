"""One source per fidelity: splits, nested subsets, sizes, statistics, and their errors."""

import ase.io
import numpy as np
import pytest

from mfff.data.datamodule import MultiFidelityDataModule
from mfff.data.readers import ASEReader
from mfff.data.sources import FidelitySource
from mfff.errors import UserError


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
    # the held-out molecule's total E0 is not determined by the other three: its energies are reported apart
    assert not any(s.has_energy for s in source.tests["test"])
    assert len(source.tests["test_unseen_composition"]) == len(source.tests["test"])


def test_statistics_come_from_the_training_split(emt_extxyz):
    source = _source(emt_extxyz, split="random")
    source.setup()
    residual = np.array([s.energy - source.e0[s.numbers].sum() for s in source.train])
    counts = np.array([[np.sum(s.numbers == z) for z in (1, 6, 7, 8)] for s in source.train])
    np.testing.assert_allclose(counts.T @ residual, 0.0, atol=1e-8)  # least-squares normal equations hold
    forces = np.concatenate([s.forces for s in source.train])
    assert source.stats().force_rms == pytest.approx(np.sqrt(np.mean(forces**2)))
    assert not source.stats(use_forces=False).has_forces
    assert source.avg_neighbours > 1.0 and source.elements == [1, 6, 7, 8]


def test_n_train_larger_than_the_data(emt_extxyz):
    with pytest.raises(UserError, match="data.sources.emt.n_train=5000 but only 98 training structures remain"):
        _source(emt_extxyz, split="random", n_train=5000, n_val=10).setup()


def test_empty_split(emt_extxyz):
    with pytest.raises(UserError, match="the test split of data.sources.emt .* is empty"):
        _source(emt_extxyz, split="random", test_fraction=0.0).setup()


def test_predefined_split_needs_tags(emt_extxyz):
    with pytest.raises(UserError, match="split=predefined but .* has no split tags; use split=random"):
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
    with pytest.raises(UserError, match="fidelity 'dft' \\(strategy\\) has no source in data.sources"):
        MultiFidelityDataModule({"emt": _source(emt_extxyz)}, fidelities=["dft"])


def _split_files(path, tmp_path):
    """The fixture's 120 frames, shuffled, as a user's separate train (80) / val (16) / test (24) files (each with
    every molecule, so the training energies determine every test composition's E0)."""
    frames = ase.io.read(path, ":")
    frames = [frames[i] for i in np.random.default_rng(0).permutation(len(frames))]
    files = {"train": frames[:80], "val": frames[80:96], "test": frames[96:]}
    for name, items in files.items():
        ase.io.write(tmp_path / f"{name}.extxyz", items)
    return {name: str(tmp_path / f"{name}.extxyz") for name in files}


def _file_source(files, **kwargs):
    reader = ASEReader(None, energy_key="energy_emt", forces_key="forces_emt")
    return FidelitySource("emt", reader, split="random", **files, **kwargs)


def test_separate_train_val_test_files(emt_extxyz, tmp_path):
    files = _split_files(emt_extxyz, tmp_path)
    source = _file_source(files)
    source.setup()
    assert (len(source.train), len(source.val), len(source.tests["test"])) == (80, 16, 24)
    assert sorted(_ids(source.tests["test"])) == sorted(_ids(ase_structures(files["test"])))
    assert sorted(_ids(source.val)) == sorted(_ids(ase_structures(files["val"])))
    # without a val file, 10% of the training file is held out; without a test file, `split` carves one
    source = _file_source({"train": files["train"], "test": {"test": files["test"], "ood": files["val"]}})
    source.setup()
    assert (len(source.train), len(source.val)) == (72, 8) and sorted(source.tests) == ["ood", "test"]
    source = _file_source({"train": files["train"]}, test_fraction=0.25)
    source.setup()
    assert (len(source.train), len(source.val), len(source.tests["test"])) == (54, 6, 20)


def test_sizes_as_fractions(emt_extxyz, tmp_path):
    source = _file_source(_split_files(emt_extxyz, tmp_path), n_train=0.5, n_val=0.25, n_test=0.5)
    source.setup()
    assert (len(source.train), len(source.val), len(source.tests["test"])) == (40, 4, 12)
    pooled = _source(emt_extxyz, split="random", n_val=0.2)
    pooled.setup()
    assert len(pooled.val) == 22 and len(pooled.train) == 108 - 22  # 120 - 12 test = 108 in the pool


def test_a_val_tag_in_one_file_is_the_validation_set(emt_extxyz, tmp_path):
    frames = ase.io.read(emt_extxyz, ":")
    for i, atoms in enumerate(frames):
        atoms.info["split"] = ("train", "train", "train", "val", "test", "test_ood")[i % 6]
    ase.io.write(tmp_path / "tagged.extxyz", frames)
    source = _source(tmp_path / "tagged.extxyz", split="predefined")
    source.setup()
    assert (len(source.train), len(source.val)) == (60, 20) and sorted(source.tests) == ["test", "test_ood"]


def test_bad_file_settings(emt_extxyz, tmp_path):
    files = _split_files(emt_extxyz, tmp_path)
    with pytest.raises(UserError, match="data.sources.emt names both reader.path .* and train/val/test files"):
        FidelitySource("emt", ASEReader(emt_extxyz), train=files["train"])
    with pytest.raises(UserError, match="data.sources.emt has no data: set data.sources.emt.reader.path"):
        FidelitySource("emt", ASEReader(None))
    with pytest.raises(UserError, match="val file needs a training file too: set data.sources.emt.train"):
        FidelitySource("emt", ASEReader(None), val=files["val"], test=files["test"])
    # test files alone evaluate a model (mfff-eval) but cannot train one
    test_only = FidelitySource("emt", ASEReader(None, energy_key="energy_emt", forces_key="forces_emt"),
                               test=files["test"])  # fmt: skip
    with pytest.raises(UserError, match="data.sources.emt has only test files .*; training needs a training file"):
        test_only.setup("fit")
    test_only.setup("test")
    assert len(test_only.tests["test"]) == 24 and test_only.train == []
    with pytest.raises(UserError, match="data.sources.emt.n_val=50 but the validation set of .* has 16 structures"):
        _file_source(files, n_val=50).setup()


def test_n_val_that_leaves_nothing_to_train_on_blames_n_val(emt_extxyz, tmp_path):
    frames = ase.io.read(emt_extxyz, ":")[:50]
    ase.io.write(tmp_path / "small.extxyz", frames)
    with pytest.raises(UserError, match="n_val=50 takes 50 of the 50 structures .* leaving none to train on"):
        _file_source({"train": str(tmp_path / "small.extxyz"), "test": str(emt_extxyz)}, n_val=50).setup()


@pytest.mark.parametrize("value", [-5, 0, 2.5, "ten"])
def test_sizes_must_be_counts_or_fractions(emt_extxyz, value):
    with pytest.raises(UserError, match=f"data.sources.emt.n_train={value!r} must be"):
        _source(emt_extxyz, n_train=value)


def ase_structures(path):
    return ASEReader(path, energy_key="energy_emt", forces_key="forces_emt").read()


def test_label_cost_is_unknown_unless_every_training_label_records_one(emt_extxyz, tmp_path):
    unrecorded = _source(emt_extxyz, split="random", n_train=20)
    unrecorded.setup()
    assert unrecorded.label_cost is None and unrecorded.stats().label_cost is None  # not 0.0: nothing was free
    frames = ase.io.read(emt_extxyz, ":")
    for i, atoms in enumerate(frames):
        atoms.info["cpu_s"] = 0.5 + i
    ase.io.write(tmp_path / "costed.extxyz", frames)
    reader = ASEReader(tmp_path / "costed.extxyz", energy_key="energy_emt", forces_key="forces_emt", cost_key="cpu_s")
    costed = FidelitySource("emt", reader, split="random", n_train=20)
    costed.setup()
    assert costed.label_cost == pytest.approx(sum(s.cost for s in costed.train)) and costed.label_cost >= 20 * 0.5
    for atoms in frames[1:]:  # labels without their cost: the total is unknown, not an undercount
        del atoms.info["cpu_s"]
    ase.io.write(tmp_path / "partly.extxyz", frames)
    partly = FidelitySource("emt", reader.for_file(tmp_path / "partly.extxyz"), split="random", n_train=20)
    partly.setup()
    assert partly.label_cost is None
