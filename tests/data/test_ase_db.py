"""ASE databases: read whole or streamed from disk, with the same structures, batches and training as in memory."""

import json

import ase.db
import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from omegaconf import OmegaConf

from mfff.data.datamodule import MultiFidelityDataModule
from mfff.data.readers import ASEReader
from mfff.data.readers.ase_db import StoredStructure, write_database
from mfff.data.sources import FidelitySource
from mfff.errors import UserError
from tests.helpers import compose_config

LABELS = {"energy_key": "energy_emt", "forces_key": "forces_emt", "cost_key": "cost"}


@pytest.fixture(scope="module")
def emt_db(emt_extxyz, tmp_path_factory):
    """The EMT fixture's 120 frames as an ASE db, a few of them tagged `val`, with a recorded cost."""
    frames = ase.io.read(emt_extxyz, ":")
    for k, atoms in enumerate(frames):
        atoms.info.update(split="val" if k % 10 == 0 else "train", cost=0.5 + k)
    path = tmp_path_factory.mktemp("db") / "emt.db"
    ase.io.write(path.with_suffix(".extxyz"), frames)
    assert write_database(frames, path) == len(frames)
    return path


def _same(a, b):
    assert np.array_equal(a.numbers, b.numbers) and np.array_equal(a.positions, b.positions)
    assert np.array_equal(a.forces, b.forces) and a.energy == b.energy
    assert (a.group, a.split, a.cost) == (b.group, b.split, b.cost)


def test_a_database_reads_like_its_extxyz_whole_and_streamed(emt_db, monkeypatch):
    monkeypatch.setattr("mfff.data.readers.ase_db.PAGE", 7)  # rows are read a page at a time: cross page ends
    from_xyz = ASEReader(emt_db.with_suffix(".extxyz"), **LABELS).read()
    whole = ASEReader(emt_db, **LABELS).read()
    streamed = ASEReader(emt_db, lazy=True, **LABELS).read()
    assert len(from_xyz) == len(whole) == len(streamed) == 120
    for a, b, c in zip(from_xyz, whole, streamed):
        _same(a, b)  # the db's key-value pairs (molecule, split, cost) and data arrays (forces) are label keys
        assert isinstance(c, StoredStructure)
        _same(a, c.load())
        assert (c.group, c.split, c.energy, len(c)) == (a.group, a.split, a.energy, len(a))
    assert {s.group for s in whole} == {"CH4", "H2O", "NH3", "CH3OH"} and whole[3].cost == 3.5
    for index, picked in (("10:20", slice(10, 20)), ("-5::2", slice(-5, None, 2)), ("3", slice(3, 4))):
        window = ASEReader(emt_db, index=index, lazy=True, **LABELS).read()
        assert [s.cost for s in window] == [s.cost for s in from_xyz[picked]] != []


def test_calculator_labels_in_a_database(tmp_path):
    atoms = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [0, 0.96, 0]])
    atoms.calc = SinglePointCalculator(atoms, energy=-14.2, forces=np.full((3, 3), 0.25))
    write_database([atoms], tmp_path / "calc.db")
    (structure,) = ASEReader(tmp_path / "calc.db", lazy=True).read()
    assert structure.energy == -14.2 and structure.group == "H2O"
    np.testing.assert_array_equal(structure.load().forces, np.full((3, 3), 0.25))


def test_streamed_structures_are_read_from_disk_when_used(emt_db, tmp_path):
    path = tmp_path / "moving.db"
    path.write_bytes(emt_db.read_bytes())
    whole = ASEReader(path, **LABELS).read()
    streamed = ASEReader(path, lazy=True, **LABELS).read()
    with ase.db.connect(path) as db:  # move row 1's atoms after reading: only the streamed copy sees it
        atoms = db.get_atoms(id=streamed[0].row_id)
        db.update(streamed[0].row_id, atoms=Atoms(atoms.numbers, atoms.positions + 1.0))
    np.testing.assert_allclose(streamed[0].load().positions, whole[0].positions + 1.0)
    np.testing.assert_array_equal(streamed[1].load().positions, whole[1].positions)


def _data(path, lazy, workers=0):
    source = FidelitySource("emt", ASEReader(path, lazy=lazy, **LABELS), split="predefined", n_train=60)
    data = MultiFidelityDataModule({"emt": source}, ["emt"], batch_size=16, cutoff=4.0, num_workers=workers)
    data.setup("fit")
    return data


def _batches(loader):
    return [(b.positions, b.forces, b.energy, b.edge_index, b.fidelity) for b in loader]


@pytest.mark.parametrize("workers", [0, 1])
def test_streamed_batches_equal_in_memory_ones(emt_db, workers):
    whole, streamed = _data(emt_db, lazy=False), _data(emt_db, lazy=True, workers=workers)
    assert streamed.stats()["emt"].force_rms == pytest.approx(whole.stats()["emt"].force_rms, rel=1e-12)
    np.testing.assert_array_equal(streamed.stats()["emt"].e0, whole.stats()["emt"].e0)
    assert not streamed.train_collate.cache and whole.train_collate.cache  # streamed lists are not kept
    for loader in ("train_dataloader", "val_dataloader"):
        expected, streamed_loader = _batches(getattr(whole, loader)()), getattr(streamed, loader)()
        for _ in range(2):  # a (persistent) worker keeps its own connection open from one pass to the next
            got = _batches(streamed_loader)
            assert len(expected) == len(got) > 0
            for a, b in zip(expected, got):
                for x, y in zip(a, b):
                    torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_training_on_a_streamed_database_matches_training_in_memory(tmp_path):
    """The built-in gfn2 data as a db: the same run streamed gives the same metrics as from the built-in file."""
    from mfff.data import builtin
    from mfff.data.readers.ase_file import read_frames
    from mfff.runs.run import train
    from tests.train.conftest import quick_overrides

    write_database(read_frames(builtin.path("builtin")), tmp_path / "builtin.db")
    metrics = {}
    for name in ("builtin", "streamed"):
        overrides = quick_overrides(tmp_path / name, ("gfn2",), n_train=40, epochs=2)
        cfg = OmegaConf.to_container(
            compose_config("train", [*overrides, "strategy=scratch", "data.fidelity=gfn2", "model.dtype=float64"])
        )
        if name == "streamed":
            cfg["data"]["sources"]["gfn2"]["reader"] = {"_target_": "mfff.data.readers.ASEReader",
                "path": str(tmp_path / "builtin.db"), "energy_key": "energy_gfn2", "forces_key": "forces_gfn2",
                "cost_key": "cost_gfn2", "lazy": True}  # fmt: skip
        train(OmegaConf.create(cfg), {"model/backbone": "painn", "model/size": "s"})
        metrics[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    expected, got = metrics["builtin"]["metrics"], metrics["streamed"]["metrics"]
    assert set(expected) == set(got) == {"val", "test", "test_mol"} and expected["test"]["gfn2"]["forces_mae"] > 0
    for split, values in expected.items():
        for key, value in values["gfn2"].items():
            assert got[split]["gfn2"][key] == pytest.approx(value, rel=1e-9), (split, key)


def test_streaming_errors_name_the_setting(emt_db, emt_extxyz):
    with pytest.raises(UserError, match=r"reader.lazy=true streams an ASE database \(.db\), but .*emt.extxyz"):
        ASEReader(emt_extxyz, lazy=True, **LABELS).read()
    with pytest.raises(UserError, match="reader.lazy='yes' must be true or false"):
        ASEReader(emt_db, lazy="yes")
    with pytest.raises(UserError, match="reader.index='every' .* must be an index or slice"):
        ASEReader(emt_db, index="every", **LABELS).read()
    with pytest.raises(UserError, match="forces label key 'forces_dft' .* per-atom arrays there: .*forces_emt"):
        ASEReader(emt_db, lazy=True, energy_key="energy_emt", forces_key="forces_dft").read()
    with pytest.raises(UserError, match="an ASE database file ends in .db"):
        write_database([], emt_db.with_suffix(".sqlite"))
    delta = _data(emt_db, lazy=True).sources["emt"]
    fresh = FidelitySource("emt", ASEReader(emt_db, lazy=True, **LABELS), split="predefined")
    fresh.subtract(delta)
    with pytest.raises(UserError, match="pairs the conformers of both sources in memory; set reader.lazy=false"):
        fresh.setup()
