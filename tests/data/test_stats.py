"""Reference energies E0 by least squares, including the rank-deficient single-molecule case."""

import numpy as np
import pytest

from mfff.data.stats import average_neighbours, fit_reference_energies, force_rms
from mfff.data.structure import Structure
from mfff.errors import UserError


def _structure(numbers, energy, forces=None):
    return Structure(numbers=np.array(numbers), positions=np.zeros((len(numbers), 3)), energy=energy, forces=forces)


def test_e0_recovers_exact_per_element_energies():
    true = {1: -13.6, 6: -1030.5, 8: -2040.25}
    compositions = [[6, 1, 1, 1, 1], [8, 1, 1], [6, 8, 8], [6, 6, 1, 1], [1, 1]]
    data = [_structure(c, sum(true[z] for z in c)) for c in compositions]
    e0 = fit_reference_energies(data)
    for z, value in true.items():
        assert e0[z] == pytest.approx(value, abs=1e-9)
    assert e0[7] == 0.0  # unseen element


def test_single_molecule_gives_finite_minimum_norm_solution():
    """All structures share one composition (rMD17-like): infinitely many exact fits; take the smallest."""
    rng = np.random.default_rng(0)
    energies = -4000.0 + rng.normal(scale=0.1, size=50)
    data = [_structure([6, 6, 1, 1, 1, 1, 1, 1, 8], e) for e in energies]
    e0 = fit_reference_energies(data)
    counts = np.array([2, 6, 1])  # C, H, O
    assert np.all(np.isfinite(e0))
    assert counts @ e0[[6, 1, 8]] == pytest.approx(energies.mean(), abs=1e-8)  # the mean energy is reproduced
    # minimum norm: E0 is parallel to the composition vector
    direction = -counts / np.linalg.norm(counts)  # energies are negative
    np.testing.assert_allclose(e0[[6, 1, 8]] / np.linalg.norm(e0[[6, 1, 8]]), direction, atol=1e-12)
    ridge = fit_reference_energies(data, ridge=1e-6)
    np.testing.assert_allclose(ridge[[6, 1, 8]], e0[[6, 1, 8]], rtol=1e-6)


def test_e0_needs_energy_labels():
    with pytest.raises(UserError, match="no energy labels in the training split"):
        fit_reference_energies([_structure([1, 1], float("nan"))])


def test_force_rms_and_neighbours():
    forces = np.array([[3.0, 0.0, 0.0], [np.nan, np.nan, np.nan]])
    assert force_rms([_structure([1, 1], 0.0, forces)]) == pytest.approx(np.sqrt(9 / 3))
    s = Structure(numbers=np.array([1, 1, 1]), positions=np.array([[0, 0, 0], [1.0, 0, 0], [5.0, 0, 0]]))
    assert average_neighbours([s], cutoff=2.0) == pytest.approx(2 / 3)
