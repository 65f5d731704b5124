"""GFN1-xTB / GFN2-xTB labels from tblite."""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
from ase.units import Bohr, Hartree, kB

from mfff.errors import UserError
from mfff.label.errors import LabelFailure
from mfff.label.labellers.base import Label, Labeller

XTB_METHODS = ("GFN1-xTB", "GFN2-xTB", "IPEA1-xTB")


class XTBLabeller(Labeller):
    """Single points with tblite; a fresh calculator per structure so every label is reproducible alone.

    Args:
        accuracy: tblite's numerical accuracy (lower is tighter); 1.0 is tblite's default.
    """

    has_forces = True

    def __init__(
        self,
        method: str = "GFN2-xTB",
        charge: int = 0,
        uhf: int = 0,
        accuracy: float = 1.0,
        max_iterations: int = 250,
        electronic_temperature_K: float = 300.0,
    ):
        if method not in XTB_METHODS:
            raise UserError(f"unknown xTB method {method!r} (labeller.method); choose one of {', '.join(XTB_METHODS)}")
        try:
            import tblite.interface  # noqa: F401
        except ImportError as err:
            raise UserError("xTB labels need tblite: pip install 'mfff[label]'") from err
        self.xtb_method, self.charge, self.uhf = method, charge, uhf
        self.accuracy, self.max_iterations = accuracy, max_iterations
        self.electronic_temperature_K = electronic_temperature_K

    @property
    def method(self) -> str:
        return (
            f"{self.xtb_method} (tblite {version('tblite')}, charge={self.charge}, uhf={self.uhf}, "
            f"accuracy={self.accuracy}, etemp={self.electronic_temperature_K}K)"
        )

    def supports(self, atomic_number: int) -> bool:
        return 1 <= atomic_number <= 86

    def compute(self, numbers: np.ndarray, positions: np.ndarray) -> Label:
        from tblite.interface import Calculator

        calc = Calculator(
            self.xtb_method,
            np.asarray(numbers),
            np.asarray(positions) / Bohr,
            charge=float(self.charge),
            uhf=int(self.uhf),
        )
        calc.set("verbosity", 0)
        calc.set("accuracy", float(self.accuracy))
        calc.set("max-iter", int(self.max_iterations))
        calc.set("temperature", self.electronic_temperature_K * kB / Hartree)  # tblite wants Hartree
        try:
            result = calc.singlepoint()
        except RuntimeError as err:
            raise LabelFailure(f"tblite: {str(err).strip()}") from err
        energy = float(result.get("energy")) * Hartree
        forces = -np.asarray(result.get("gradient")) * Hartree / Bohr
        if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
            raise LabelFailure("tblite returned a non-finite energy or gradient")
        return Label(energy=energy, forces=forces)
