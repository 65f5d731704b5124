"""Re-check the committed built-in dataset: recomputed labels match, forces are energy derivatives."""

import re

import numpy as np
import pytest

from mfff.data import builtin
from mfff.label.pipeline import LabelJob
from tests.helpers import compose_config


@pytest.fixture(scope="module")
def labellers():
    job = LabelJob(compose_config("label", ["label=builtin"]).label)
    meta = builtin.metadata()
    for name, plan in job.fidelities.items():
        assert plan.labeller.method == meta["fidelities"][name]["method"], (
            f"installed program versions differ from those that made the data: {plan.labeller.method!r} vs "
            f"{meta['fidelities'][name]['method']!r}"
        )
    return {name: plan.labeller for name, plan in job.fidelities.items()}


def _sample(fidelity, n, seed=0):
    frames = builtin.load(fidelity=fidelity)
    picks = np.random.default_rng(seed).choice(len(frames), size=n, replace=False)
    return [frames[i] for i in picks]


@pytest.mark.parametrize("fidelity", ["gfn1", "gfn2"])
def test_xtb_labels_reproduce(labellers, fidelity):
    for atoms in _sample(fidelity, 5):
        label = labellers[fidelity].compute(atoms.numbers, atoms.positions)
        assert abs(label.energy - atoms.info[f"energy_{fidelity}"]) <= 1e-6
        np.testing.assert_allclose(label.forces, atoms.arrays[f"forces_{fidelity}"], rtol=0, atol=1e-5)


def _directional_derivative(labeller, atoms, direction, h):
    plus = labeller.compute(atoms.numbers, atoms.positions + h * direction).energy
    minus = labeller.compute(atoms.numbers, atoms.positions - h * direction).energy
    return (plus - minus) / (2 * h)


@pytest.mark.parametrize("fidelity,h,tol", [("gfn1", 1e-3, 2e-4), ("gfn2", 1e-3, 2e-4), ("dft", 1e-3, 2e-4)])
def test_stored_forces_are_minus_energy_gradient(labellers, fidelity, h, tol):
    """Central differences of the energy along random directions equal -F·d for one stored conformer."""
    atoms = _sample(fidelity, 1, seed=1)[0]
    forces = atoms.arrays[f"forces_{fidelity}"]
    rng = np.random.default_rng(2)
    for _ in range(2 if fidelity == "dft" else 4):
        direction = rng.normal(size=forces.shape)
        direction /= np.linalg.norm(direction)
        slope = _directional_derivative(labellers[fidelity], atoms, direction, h)
        assert slope == pytest.approx(-np.sum(forces * direction), abs=tol)


@pytest.mark.slow
def test_dft_labels_reproduce(labellers):
    for atoms in _sample("dft", 3):
        label = labellers["dft"].compute(atoms.numbers, atoms.positions)
        assert abs(label.energy - atoms.info["energy_dft"]) <= 1e-4
        np.testing.assert_allclose(label.forces, atoms.arrays["forces_dft"], rtol=0, atol=1e-4)


@pytest.mark.slow
def test_ccsdt_labels_reproduce(labellers):
    for atoms in _sample("cc", 3):
        label = labellers["cc"].compute(atoms.numbers, atoms.positions)
        assert label.forces is None and "forces_cc" not in atoms.arrays
        assert abs(label.energy - atoms.info["energy_cc"]) <= 1e-4


def _card_counts():
    text = (builtin.DATA_DIR / "README.md").read_text()
    section = text.split("## Counts")[1].split("##")[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and re.fullmatch(r"\d+", cells[1]):
            rows[cells[0]] = [int(c) if c else None for c in cells[1:]]
    return rows


def test_card_counts_match_the_files():
    frames = builtin.load()
    card = _card_counts()
    fidelities = list(builtin.metadata()["fidelities"])
    assert set(card) == {*fidelities, "(conformers)"}
    for fidelity in fidelities:
        labelled = [f for f in frames if f"energy_{fidelity}" in f.info]
        expected = [sum(f.info["split"] == s for f in labelled) for s in ("train", "test", "test_mol")]
        failed = sum(f"failed_{fidelity}" in f.info for f in frames)
        molecules = len({f.info["molecule"] for f in labelled})
        assert card[fidelity] == [*expected, failed, molecules], fidelity
    everything = [sum(f.info["split"] == s for f in frames) for s in ("train", "test", "test_mol")]
    assert card["(conformers)"][:3] == everything


def test_dataset_meets_its_specification():
    frames = builtin.load()
    molecules = {f.info["molecule"]: f for f in frames}
    assert len(molecules) >= 20 and 9_500 <= len(frames) <= 12_000
    for atoms in molecules.values():
        assert set(atoms.get_chemical_symbols()) <= {"C", "H", "N", "O"}
        assert 2 <= sum(atoms.numbers > 1) <= 8
    for fidelity in ("gfn1", "gfn2"):
        assert sum(f"energy_{fidelity}" in f.info for f in frames) >= 0.99 * len(frames)
    dft = [f for f in frames if "energy_dft" in f.info]
    assert len(dft) >= 1000 and len({f.info["molecule"] for f in dft}) < len(molecules)
    cc = [f for f in frames if "energy_cc" in f.info]
    assert len(cc) >= 200 and not any("forces_cc" in f.arrays for f in frames)
    cc_heavy = max(sum(f.numbers > 1) for f in cc)
    assert cc_heavy <= min(sum(a.numbers > 1) for a in molecules.values()) + 1
    for split in ("test", "test_mol"):
        for fidelity in ("gfn1", "gfn2", "dft", "cc"):
            assert any(f.info["split"] == split and f"energy_{fidelity}" in f.info for f in frames), (split, fidelity)
    assert builtin.path().stat().st_size <= 20 * 2**20
