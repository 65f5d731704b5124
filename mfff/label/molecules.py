"""Starting geometries: ASE's built-in molecules by name, or structures read from a file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import ase.io
from ase import Atoms
from ase.build import molecule as ase_molecule

from mfff.errors import UserError

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


@dataclass(frozen=True)
class MoleculeSpec:
    name: str
    atoms: Atoms


def resolve_molecules(entries, key: str = "label.molecules") -> list[MoleculeSpec]:
    """Entries are ASE molecule names (`ase.collections.g2`) or {name, file} mappings."""
    if not entries:
        raise UserError(
            f"{key} is empty; list at least one molecule (an ASE name like CH3OH, "
            "or {name: ..., file: path/to/start.xyz})"
        )
    specs, seen = [], set()
    for index, entry in enumerate(entries):
        where = f"{key}[{index}]"
        if isinstance(entry, str):
            name, atoms = entry, _from_ase(entry, where)
        elif hasattr(entry, "get") and entry.get("file") is not None:
            name = entry.get("name") or Path(entry["file"]).stem
            atoms = _from_file(Path(entry["file"]), where)
        else:
            raise UserError(f"{where} must be an ASE molecule name or a mapping with 'file' (got {entry!r})")
        if not _SAFE_NAME.match(name):
            raise UserError(f"{where}: molecule name {name!r} must use only letters, digits and _.+-")
        if name in seen:
            raise UserError(f"{where}: molecule {name!r} is listed twice")
        seen.add(name)
        atoms = atoms.copy()
        atoms.pbc, atoms.cell = False, None
        specs.append(MoleculeSpec(name, atoms))
    return specs


def _from_ase(name: str, where: str) -> Atoms:
    try:
        return ase_molecule(name)
    except KeyError as err:
        raise UserError(
            f"{where}: {name!r} is not an ASE built-in molecule; use a name from ase.collections.g2 "
            "(e.g. CH3OH, C6H6) or give {name: ..., file: ...}"
        ) from err


def _from_file(path: Path, where: str) -> Atoms:
    if not path.is_file():
        raise UserError(f"{where}: starting geometry file {path} does not exist")
    try:
        return ase.io.read(path, index=0)
    except Exception as err:  # ASE raises many types for unreadable files
        raise UserError(f"{where}: ASE cannot read {path}: {err}") from err
