"""Per-fidelity statistics from a training split: force RMS, energy scale, neighbour count (E0: reference.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfff.data.structure import Structure


@dataclass(frozen=True)
class SourceStats:
    """What a fidelity's training split tells the model before training: its heads' E0 and scale, the elements it
    must embed, the neighbour count MACE normalises by, and what the labels cost."""

    e0: np.ndarray  # (N_ELEMENTS,) eV by atomic number, least squares on the training energies (reference.py)
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
