"""The ASE calculator: the chosen head's energy, forces that are -dE/dx, and a clear error for a missing head."""

import numpy as np
import pytest
from ase.build import molecule

from mfff.calculator import MFFFCalculator
from mfff.errors import UserError


def test_calculator_energy_forces_and_heads(multihead_run):
    _, metrics = multihead_run
    atoms = molecule("CH3OH")
    atoms.rattle(0.05, seed=0)
    energies = {}
    for fidelity in ("gfn1", "gfn2"):
        atoms.calc = MFFFCalculator(metrics["best_checkpoint"], fidelity=fidelity)
        energies[fidelity] = atoms.get_potential_energy()
        forces = atoms.get_forces()
        assert forces.shape == (6, 3) and np.all(np.isfinite(forces))
        rotated = atoms.copy()
        rotated.rotate(73, (1, 2, 3), center="COM")
        rotation = rotated.positions[1:] - rotated.positions[0]
        matrix = np.linalg.lstsq(atoms.positions[1:] - atoms.positions[0], rotation, rcond=None)[0]
        rotated.calc = atoms.calc
        assert rotated.get_potential_energy() == pytest.approx(energies[fidelity], abs=2e-3)  # float32 model
        np.testing.assert_allclose(rotated.get_forces(), forces @ matrix, atol=2e-4)
    assert energies["gfn1"] != energies["gfn2"]
    assert atoms.calc.heads() == ["gfn1", "gfn2"]
    with pytest.raises(UserError, match="the model has no head for fidelity 'dft'; its heads are gfn1, gfn2"):
        MFFFCalculator(metrics["best_checkpoint"], fidelity="dft")


def _water(**kwargs):
    from ase import Atoms

    return Atoms("OH2", positions=kwargs.pop("positions", [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]), **kwargs)


@pytest.mark.parametrize(
    ("atoms", "message"),
    [
        (molecule("SiH4"), "element(s) Si never appeared in this model's training data (H, C, N, O)"),
        (
            _water(positions=[[0, 0, 0], [0, 0, 0], [-0.24, 0.93, 0]]),
            "the atoms given to MFFFCalculator (H2O) has atoms 0 and 1 0.000 Å apart (closer than 0.3 Å)",
        ),
        (
            _water(positions=[[0, 0, 0], [np.nan, 0, 0], [-0.24, 0.93, 0]]),
            "the atoms given to MFFFCalculator (H2O) has non-finite (NaN/inf) positions",
        ),
        (
            _water(pbc=True),
            "the atoms given to MFFFCalculator (H2O) is periodic (pbc=[True, True, True]) but its cell has no volume",
        ),
    ],
    ids=["unknown element", "overlapping atoms", "NaN position", "periodic without a cell"],
)
def test_calculator_refuses_atoms_it_cannot_evaluate(multihead_run, atoms, message):
    """Each of these gave NaN, a silently wrong number or a vesin traceback before."""
    atoms.calc = MFFFCalculator(multihead_run[1]["best_checkpoint"], fidelity="gfn2")
    with pytest.raises(UserError) as error:
        atoms.get_potential_energy()
    assert str(error.value).startswith(message)


def test_calculator_needs_a_fidelity_only_where_there_is_a_choice(multihead_run, tmp_path):
    with pytest.raises(UserError, match="has heads gfn1, gfn2: choose one with fidelity=<head>"):
        MFFFCalculator(multihead_run[1]["best_checkpoint"])
    with pytest.raises(UserError, match="checkpoint=/nonexistent does not exist"):
        MFFFCalculator("/nonexistent")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(UserError, match="is not a readable PyTorch checkpoint"):
        MFFFCalculator(tmp_path / "notes.txt")
