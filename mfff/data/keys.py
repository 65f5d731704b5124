"""Names of batch fields and model outputs, with their shapes and units (the one place they are defined)."""

from typing import Final

POSITIONS: Final[str] = "positions"  # (n_atoms, 3) | Å, float
NUMBERS: Final[str] = "numbers"  # (n_atoms,) | atomic numbers Z, long
CELL: Final[str] = "cell"  # (n_graphs, 3, 3) | Å, rows are lattice vectors; zeros for molecules
PBC: Final[str] = "pbc"  # (n_graphs, 3) | periodic directions, bool
BATCH: Final[str] = "batch"  # (n_atoms,) | index of the structure each atom belongs to, long
N_ATOMS: Final[str] = "n_atoms"  # (n_graphs,) | atoms per structure, long
EDGE_INDEX: Final[str] = "edge_index"  # (2, n_edges) | [receiver i, sender j] atom indices, long
EDGE_SHIFTS: Final[str] = "edge_shifts"  # (n_edges, 3) | Å, periodic image offset: r_ij = r_j - r_i + shift
FIDELITY: Final[str] = "fidelity"  # (n_graphs,) | head index of the structure's fidelity (sorted head names), long
ENERGY: Final[str] = "energy"  # (n_graphs,) | eV, total energy label (0 where missing)
FORCES: Final[str] = "forces"  # (n_atoms, 3) | eV/Å, force labels (0 where missing)
ENERGY_MASK: Final[str] = "energy_mask"  # (n_graphs,) | 1.0 where the energy label exists, else 0.0
FORCES_MASK: Final[str] = "forces_mask"  # (n_atoms,) | 1.0 where the atom's force label exists, else 0.0
HEAD_ATOMS: Final[str] = "head_atoms"  # tuple of ints | atoms per head index (a host value: never on a device)

# model outputs
PRED_ENERGY: Final[str] = "pred_energy"  # (n_graphs,) | eV
PRED_FORCES: Final[str] = "pred_forces"  # (n_atoms, 3) | eV/Å, -dE/dx
PRED_STRESS: Final[str] = "pred_stress"  # (n_graphs, 3, 3) | eV/Å^3, (1/V) dE/d strain (ASE's sign)
