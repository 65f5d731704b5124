"""Any ASE-readable file (extxyz, ASE db, ...) with per-fidelity label keys named in config."""

from __future__ import annotations

import gzip
import io
import os
from functools import lru_cache
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms
from ase.io.formats import filetype

from mfff.data.readers.ase_db import Database, StoredStructure, is_database
from mfff.data.readers.base import (
    Reader,
    check_finite_positions,
    checked_energy,
    checked_forces,
    existing_file,
    optional_path,
)
from mfff.data.structure import Structure
from mfff.data.units import energy_factor, forces_factor, length_factor
from mfff.errors import UserError


@lru_cache(maxsize=4)
def _read_frames(path: str, mtime_ns: int, index: str) -> tuple[Atoms, ...]:
    # Several sources (one per fidelity) read the same file; parse it once per file version.
    try:
        if path.endswith(".gz"):
            # ASE's (ext)xyz reader seeks back and forth, which re-decompresses a gzip stream from its start each
            # time (quadratic: 7 minutes for the built-in dataset). Decompress once into memory instead.
            fmt = filetype(path[: -len(".gz")], read=False)
            with gzip.open(path, "rt") as handle:
                return tuple(ase.io.read(io.StringIO(handle.read()), index=index, format=fmt))
        return tuple(ase.io.read(path, index=index))
    except Exception as err:  # ASE raises many types for unreadable files
        raise UserError(f"ASE cannot read {path}: {err}") from err


def read_frames(path: Path, index: str = ":") -> tuple[Atoms, ...]:
    return _read_frames(str(path), os.stat(path).st_mtime_ns, index)


def _lookup(atoms: Atoms, key: str):
    if key in atoms.info:
        return atoms.info[key]
    if key in atoms.arrays:
        return atoms.arrays[key]
    if atoms.calc is not None and key in atoms.calc.results:  # extxyz puts 'energy'/'forces' on a calculator
        return atoms.calc.results[key]
    return None


def _calculator_keys(frames: list[Atoms], kind: str) -> set[str]:
    """Labels that extxyz put on a calculator (`energy`, `forces`, ...), by kind: scalars or per-atom arrays."""
    per_atom = kind == "forces"
    return {
        key
        for atoms in frames
        if atoms.calc is not None
        for key, value in atoms.calc.results.items()
        if (np.ndim(value) == 2) == per_atom and (per_atom or np.ndim(value) == 0)
    }


class ASEReader(Reader):
    """Labels are info/arrays keys (e.g. info `energy_dft`, array `forces_dft`), in the units given.

    An ASE database (`.db`) is read with its key-value pairs and data arrays as label keys; with `lazy=True` only
    what splitting and statistics need stays in memory (atomic numbers, energy, molecule, split tag, cost) and
    each structure's positions and forces are read from the database when a batch needs them: for data sets
    larger than memory (see `write_database` to make one).

    Args:
        forces_key: None for energy-only data.
        group_key: info key naming the molecule (for molecule-level splits); the formula if absent.
        split_key: info key holding predefined split tags (train/test/...), if the file has them.
        cost_key: info key with the CPU cost of each label, if recorded.
        lazy: stream an ASE database from disk instead of reading it into memory.
    """

    def __init__(
        self,
        path=None,
        energy_key: str = "energy",
        forces_key: str | None = "forces",
        energy_unit: str = "eV",
        forces_unit: str = "eV/Å",
        length_unit: str = "Å",
        group_key: str | None = "molecule",
        split_key: str | None = "split",
        cost_key: str | None = None,
        index: str = ":",
        lazy: bool = False,
    ):
        self.path = optional_path(path)
        self.energy_key, self.forces_key = energy_key, forces_key
        self.e_factor = energy_factor(energy_unit, "reader.energy_unit")
        self.f_factor = forces_factor(forces_unit, "reader.forces_unit")
        self.l_factor = length_factor(length_unit, "reader.length_unit")
        self.group_key, self.split_key, self.cost_key, self.index = group_key, split_key, cost_key, index
        if not isinstance(lazy, bool):
            raise UserError(f"reader.lazy={lazy!r} must be true or false")
        self.lazy = lazy

    def read(self) -> list[Structure]:
        path = existing_file(self.path)
        if is_database(path):
            database = Database(path)
            frames = database.rows(self.index)
            keep = (lambda s, row_id: StoredStructure(s, row_id, self, database)) if self.lazy else (lambda s, _: s)
        elif self.lazy:
            raise UserError(
                f"reader.lazy=true streams an ASE database (.db), but {path} is not one; convert it once with "
                f"mfff.data.readers.ase_db.write_database, or set reader.lazy=false to read it into memory"
            )
        else:
            frames, keep = enumerate(read_frames(path, self.index)), (lambda s, _: s)
        structures, found_energy, found_forces, seen = [], False, False, []
        for index, atoms in frames:
            if len(seen) < 50:
                seen.append(atoms)  # to name the keys there are when a label key is missing
            found_energy |= _lookup(atoms, self.energy_key) is not None
            found_forces |= bool(self.forces_key) and _lookup(atoms, self.forces_key) is not None
            structure = self.structure(atoms, index, path)
            if structure is None:
                continue  # this structure has no label of this fidelity
            structures.append(keep(structure, index))
        if seen and not found_energy:
            keys = sorted({k for a in seen for k in a.info} | _calculator_keys(seen, "energy"))
            raise UserError(
                f"energy label key {self.energy_key!r} (reader.energy_key) was not found in {path}; "
                f"info keys there include: {', '.join(keys) or '(none)'}"
            )
        if seen and self.forces_key and not found_forces:
            keys = sorted({k for a in seen for k in a.arrays} - {"numbers", "positions"})
            keys += sorted(k for a in seen for k, v in a.info.items() if np.ndim(v) == 2 and k not in keys)
            keys += sorted(_calculator_keys(seen, "forces") - set(keys))
            raise UserError(
                f"forces label key {self.forces_key!r} (reader.forces_key) was not found in {path}; "
                f"per-atom arrays there: {', '.join(keys) or '(none)'}; set reader.forces_key=null "
                "for energy-only data"
            )
        return structures

    def structure(self, atoms: Atoms, index: int, path: Path) -> Structure | None:
        """One frame as a Structure in eV, Å, eV/Å; None when it has no label of this fidelity."""
        energy = _lookup(atoms, self.energy_key)
        forces = _lookup(atoms, self.forces_key) if self.forces_key else None
        if forces is not None:
            forces = checked_forces(forces, len(atoms), index, path, "reader.forces_key")
        if energy is None and forces is None:
            return None
        if energy is not None:
            energy = checked_energy(energy, index, path, f"reader.energy_key={self.energy_key}")
        structure = Structure(
            numbers=atoms.numbers.astype(np.int64),
            positions=atoms.positions * self.l_factor,
            energy=float("nan") if energy is None else energy * self.e_factor,
            forces=None if forces is None else forces * self.f_factor,
            cell=np.asarray(atoms.cell[:]) * self.l_factor,
            pbc=np.asarray(atoms.pbc, dtype=bool),
            group=str(atoms.info.get(self.group_key, atoms.get_chemical_formula()))
            if self.group_key
            else atoms.get_chemical_formula(),
            split=str(atoms.info.get(self.split_key, "")) if self.split_key else "",
            cost=float(atoms.info.get(self.cost_key, float("nan"))) if self.cost_key else float("nan"),
        )
        check_finite_positions(structure, index, path)
        return structure
