"""One labelled structure as readers produce it (eV, Å, eV/Å), before batching."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Structure:
    """A structure with one fidelity's labels. NaN energy / None forces mean 'no label' (masked, never imputed)."""

    numbers: np.ndarray  # (n_atoms,) int
    positions: np.ndarray  # (n_atoms, 3) Å
    energy: float = float("nan")  # eV
    forces: np.ndarray | None = None  # (n_atoms, 3) eV/Å; rows of NaN are masked per atom
    cell: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))
    pbc: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=bool))
    group: str = ""  # molecule / formula, used for molecule-level splits
    split: str = ""  # predefined split tag from the file, if any
    cost: float = float("nan")  # CPU seconds of the label, if the file records it

    def load(self) -> Structure:
        """The structure with its arrays in memory: itself (a streamed one, `StoredStructure`, reads its row)."""
        return self

    def __len__(self) -> int:
        return len(self.numbers)

    @property
    def has_energy(self) -> bool:
        return bool(np.isfinite(self.energy))
