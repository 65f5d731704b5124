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
