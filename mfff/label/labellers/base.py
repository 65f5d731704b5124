"""The labeller interface."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np
from ase.data import chemical_symbols

from mfff.errors import UserError


@dataclass(frozen=True)
class Label:
    """One computed label: total energy in eV and, where the method gives them, forces in eV/Å."""

    energy: float
    forces: np.ndarray | None  # (n_atoms, 3) | eV/Å, None for energy-only methods


class Labeller(abc.ABC):
    """Turns one structure (Z, positions in Å) into a `Label`.

    Subclasses set `has_forces` and implement `method` (a full, reproducible method string including the
    program version), `supported_elements` and `compute`.
    """

    has_forces: bool = True

    @property
    @abc.abstractmethod
    def method(self) -> str: ...

    @abc.abstractmethod
    def supports(self, atomic_number: int) -> bool: ...

    @abc.abstractmethod
    def compute(self, numbers: np.ndarray, positions: np.ndarray) -> Label:
        """Raise `LabelFailure` with a reason when the calculation does not succeed."""

    def check_elements(self, numbers, where: str) -> None:
        """Fail early, before hours of work, when an element cannot be done by this method."""
        bad = sorted({int(z) for z in numbers if not self.supports(int(z))})
        if bad:
            names = ", ".join(chemical_symbols[z] for z in bad)
            raise UserError(
                f"{self.method} cannot label element(s) {names} found in {where}; "
                "remove those molecules from this fidelity or choose a method/basis that covers them"
            )
