"""Training-set statistics: force RMS and neighbour counts (E0: test_reference.py)."""

import numpy as np
import pytest

from mfff.data.stats import average_neighbours, force_rms
from mfff.data.structure import Structure


def _structure(numbers, energy, forces=None):
    return Structure(numbers=np.array(numbers), positions=np.zeros((len(numbers), 3)), energy=energy, forces=forces)


def test_force_rms_and_neighbours():
    forces = np.array([[3.0, 0.0, 0.0], [np.nan, np.nan, np.nan]])
    assert force_rms([_structure([1, 1], 0.0, forces)]) == pytest.approx(np.sqrt(9 / 3))
    s = Structure(numbers=np.array([1, 1, 1]), positions=np.array([[0, 0, 0], [1.0, 0, 0], [5.0, 0, 0]]))
    assert average_neighbours([s], cutoff=2.0) == pytest.approx(2 / 3)
