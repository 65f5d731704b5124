"""Readers turn files into `Structure`s with one fidelity's labels, converted to eV and eV/Å."""

from mfff.data.readers.ani import ANIReader
from mfff.data.readers.ase_file import ASEReader
from mfff.data.readers.builtin import BuiltinReader
from mfff.data.readers.npz import NpzReader

__all__ = ["ANIReader", "ASEReader", "BuiltinReader", "NpzReader"]
