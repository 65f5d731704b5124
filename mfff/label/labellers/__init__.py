"""One labeller per quantum-chemical method: positions + Z in, energy (eV) and forces (eV/Å) out."""

from mfff.label.labellers.base import Label, Labeller

__all__ = ["Label", "Labeller"]
