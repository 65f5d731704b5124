"""Per-fidelity statistics from a training split: reference energies E0, force RMS, neighbour count."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfff.data.structure import Structure
from mfff.errors import UserError

N_ELEMENTS = 119


@dataclass(frozen=True)
class SourceStats:
    """What a fidelity's training split tells the model before training: its heads' E0 and scale, the elements it
    must embed, the neighbour count MACE normalises by, and what the labels cost."""

    e0: np.ndarray  # (N_ELEMENTS,) eV by atomic number, least squares on the training energies
    force_rms: float  # eV/Å; NaN without force labels (or when they are not used)
    has_forces: bool
    energy_scale: float  # eV, RMS of the energy residual after E0
    avg_neighbours: float
    n_train: int
    label_cost: float | None  # CPU seconds of the training labels; None where the file does not record them all
    elements: list[int]

    @property
    def output_scale(self) -> float:
        """A new head's output scale: the training force RMS, or the energy residual RMS without force labels."""
        return self.force_rms if self.has_forces else self.energy_scale


def fit_reference_energies(structures: list[Structure], ridge: float = 0.0) -> np.ndarray:
    """Per-element E0 (eV, indexed by Z) minimising sum_s (E_s - sum_i E0[Z_i])^2.

    Rank-deficient problems (all structures of one composition, as in MD of a single molecule) have no unique
    solution; the minimum-norm solution (`lstsq`) is used then, and a small `ridge` may be added. Elements absent
    from the training data get E0 = 0.
    """
    labelled = [s for s in structures if s.has_energy]
    if not labelled:
        raise UserError("no energy labels in the training split: cannot fit reference energies E0")
    elements = sorted({int(z) for s in labelled for z in s.numbers})
    column = {z: k for k, z in enumerate(elements)}
    counts = np.zeros((len(labelled), len(elements)))
    for row, s in enumerate(labelled):
        for z, n in zip(*np.unique(s.numbers, return_counts=True)):
            counts[row, column[int(z)]] = n
    energies = np.array([s.energy for s in labelled])
    if ridge > 0:
        solution = np.linalg.solve(counts.T @ counts + ridge * np.eye(len(elements)), counts.T @ energies)
    else:
        solution = np.linalg.lstsq(counts, energies, rcond=None)[0]
    e0 = np.zeros(N_ELEMENTS)
    e0[elements] = solution
    return e0


def force_rms(structures: list[Structure]) -> float:
    """Root-mean-square force component (eV/Å) over labelled atoms; 1.0 when there are no force labels.
    Summed one structure at a time, so streamed data sets are read once and never held whole."""
    total, count = 0.0, 0
    for s in structures:
        forces = s.forces
        if forces is not None:
            kept = forces[np.isfinite(forces).all(axis=1)]
            total, count = total + float(np.square(kept).sum()), count + kept.size
    return float(np.sqrt(total / count)) if count else 1.0


def energy_residual_rms(structures: list[Structure], e0: np.ndarray) -> float:
    """RMS per-atom energy left after subtracting E0 (eV/atom), the energy scale of a force-less fidelity."""
    residual = [(s.energy - e0[s.numbers].sum()) / len(s) for s in structures if s.has_energy]
    return float(np.sqrt(np.mean(np.square(residual)))) if residual else 1.0


def average_neighbours(structures: list[Structure], cutoff: float, limit: int = 500) -> float:
    """Mean number of neighbours within `cutoff` (molecules: all-pairs within the structure)."""
    total, atoms = 0, 0
    for s in structures[:limit]:
        d = np.linalg.norm(s.positions[:, None] - s.positions[None], axis=-1)
        total += int((d < cutoff).sum() - len(s))
        atoms += len(s)
    return total / max(atoms, 1)
