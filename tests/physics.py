"""Reusable physics checks for any potential, in float64 (invariances, equivariance, derivatives, extensivity)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from scipy.spatial.transform import Rotation

from mfff.data.batch import Collater
from mfff.data.structure import Structure

RTOL = 1e-10


def batch_of(molecules: list[Atoms], cutoff: float, fidelity: int = 0):
    items = [
        (Structure(numbers=a.numbers.astype(np.int64), positions=a.positions.astype(float)), fidelity)
        for a in molecules
    ]
    return Collater(cutoff, "torch", dtype="float64")(items)


def energy_forces(potential, molecules, cutoff):
    out = potential(batch_of(molecules, cutoff))
    return out["pred_energy"].detach().numpy(), out["pred_forces"].detach().numpy()


def moved(atoms: Atoms, positions) -> Atoms:
    copy = atoms.copy()
    copy.positions = positions
    return copy


def assert_close(a, b, rtol=RTOL, what=""):
    scale = max(np.max(np.abs(b)), 1.0)
    assert np.max(np.abs(np.asarray(a) - np.asarray(b))) <= rtol * scale, what


def check_rotation_translation(potential, atoms, cutoff, seed=0):
    e, f = energy_forces(potential, [atoms], cutoff)
    rotation = Rotation.random(random_state=seed).as_matrix()
    shifted = atoms.positions @ rotation.T + np.array([3.1, -7.2, 0.4])
    e2, f2 = energy_forces(potential, [moved(atoms, shifted)], cutoff)
    assert_close(e2, e, what="energy changes under rotation + translation")
    assert_close(f2, f @ rotation.T, what="forces do not rotate with the structure")


def check_permutation(potential, atoms, cutoff, seed=0):
    e, f = energy_forces(potential, [atoms], cutoff)
    order = np.random.default_rng(seed).permutation(len(atoms))
    e2, f2 = energy_forces(potential, [atoms[order]], cutoff)
    assert_close(e2, e, what="energy changes under atom permutation")
    assert_close(f2, f[order], what="forces do not follow the permutation")


def check_finite_differences(potential, atoms, cutoff, h=1e-5, atol=1e-7):
    _, f = energy_forces(potential, [atoms], cutoff)
    numeric = np.zeros_like(f)
    for i in range(len(atoms)):
        for k in range(3):
            plus, minus = atoms.positions.copy(), atoms.positions.copy()
            plus[i, k] += h
            minus[i, k] -= h
            ep = energy_forces(potential, [moved(atoms, plus)], cutoff)[0][0]
            em = energy_forces(potential, [moved(atoms, minus)], cutoff)[0][0]
            numeric[i, k] = -(ep - em) / (2 * h)
    np.testing.assert_allclose(f, numeric, rtol=0, atol=atol)


def check_extensivity(potential, first, second, cutoff):
    apart = second.copy()
    apart.positions += np.array([cutoff * 4, 0.0, 0.0])
    combined = first + apart
    e_parts, f_parts = energy_forces(potential, [first, apart], cutoff)
    e_both, f_both = energy_forces(potential, [combined], cutoff)
    assert_close(e_both[0], e_parts.sum(), what="energy of two distant molecules is not the sum")
    assert_close(f_both, f_parts, what="forces of two distant molecules differ from the separate ones")


def check_batch_independence(potential, molecules, cutoff):
    single = [energy_forces(potential, [m], cutoff) for m in molecules]
    e_batch, f_batch = energy_forces(potential, molecules, cutoff)
    assert_close(e_batch, np.array([e[0] for e, _ in single]), what="batched energies differ from single ones")
    assert_close(f_batch, np.concatenate([f for _, f in single]), what="batched forces differ")
    reverse = molecules[::-1]
    e_rev, _ = energy_forces(potential, reverse, cutoff)
    assert_close(e_rev[::-1], e_batch, what="energies depend on the order in the batch")
