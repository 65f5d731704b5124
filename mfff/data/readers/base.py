"""The reader interface and checks every reader shares."""

from __future__ import annotations

import abc
import copy
from pathlib import Path

import numpy as np
from vesin import NeighborList

from mfff.data.structure import Structure
from mfff.errors import UserError


class Reader(abc.ABC):
    """Reads one fidelity's labelled structures from a file."""

    path: Path
    lazy: bool = False  # structures read from disk when a batch needs them (an ASE db with reader.lazy=true)

    @abc.abstractmethod
    def read(self) -> list[Structure]: ...

    def describe(self) -> str:
        return f"{type(self).__name__}({self.path})"

    def for_file(self, path) -> Reader:
        """This reader (its label keys and units) pointed at another file: a source's train / val / test files."""
        clone = copy.copy(self)
        clone.path = Path(path).expanduser()
        return clone


def optional_path(path) -> Path | None:
    """A reader's file; None where the source names separate train / val / test files instead."""
    return None if path is None else Path(path).expanduser()


def existing_file(path, key: str = "reader.path") -> Path:
    if path is None:
        raise UserError(f"no data file is set ({key}); give reader.path, or the source's train / test files")
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"data file {path} (from {key}) is a directory; give a file in it (extxyz, ASE db, ...)")
    if not path.is_file():
        raise UserError(f"data file {path} (from {key}) does not exist; check the path or generate the data first")
    return path


def check_positions(structures: list[Structure], path: Path) -> None:
    """NaN/inf positions are corrupt input, not a missing label: refuse them with the index."""
    for index, structure in enumerate(structures):
        check_finite_positions(structure, index, path)


def check_finite_labels(structures: list[Structure], path: Path) -> None:
    """For formats where every structure carries every label (sGDML npz): NaN/inf there is corrupt input. (ANI's
    release marks a missing label with NaN; its reader skips those itself.)"""
    for index, structure in enumerate(structures):
        if not np.isfinite(structure.energy):
            raise UserError(f"structure {index} in {path} has a non-finite (NaN/inf) energy; fix or remove it")
        if structure.forces is not None and not np.all(np.isfinite(structure.forces)):
            raise UserError(f"structure {index} in {path} has non-finite (NaN/inf) forces; fix or remove it")


def checked_energy(value, index: int, path: Path, key: str) -> float:
    """An energy label as a finite float, or an error naming the structure, the file and the label key (a missing
    label is None before this, never NaN)."""
    try:
        energy = float(value)
    except (TypeError, ValueError):
        raise UserError(f"structure {index} in {path}: the energy ({key}) is {value!r}, not a number") from None
    if not np.isfinite(energy):
        raise UserError(
            f"structure {index} in {path}: the energy ({key}) is {energy}; a missing label is an absent key, "
            "not NaN/inf: fix or remove the structure"
        )
    return energy


MIN_DISTANCE = 0.3  # Å: shorter than any chemical bond (H2: 0.74); closer atoms are a corrupt geometry
_CLOSE_PAIRS = NeighborList(cutoff=MIN_DISTANCE, full_list=False)


def geometry_problem(structure: Structure, pairs: tuple | None = None) -> str | None:
    """What makes a geometry impossible to evaluate, or None: non-finite positions, two atoms closer than
    MIN_DISTANCE (periodic images too, in a cell periodic in all three directions), a periodic direction without a
    cell. Each would otherwise surface as NaN energies or a diverged training.

    Args:
        pairs: (i, j, distance) arrays of a neighbour list already made (any cutoff >= MIN_DISTANCE), to look for
            close atoms in; None makes one (for a large periodic cell that costs more than evaluating a model).
    """
    positions = structure.positions
    if not np.all(np.isfinite(positions)):
        return "has non-finite (NaN/inf) positions"
    pbc = np.asarray(structure.pbc, dtype=bool)
    if pbc.any() and abs(np.linalg.det(np.asarray(structure.cell, dtype=np.float64))) < 1e-6:
        return f"is periodic (pbc={pbc.tolist()}) but its cell has no volume; give the cell, or set pbc=False"
    if len(positions) < 2:
        return None
    if pairs is None:
        periodic = bool(pbc.all())
        box = np.asarray(structure.cell, dtype=np.float64) if periodic else np.zeros((3, 3))
        # vesin (the periodic neighbour list mfff trains with): pairs within MIN_DISTANCE, without an n x n matrix
        pairs = _CLOSE_PAIRS.compute(points=np.asarray(positions, dtype=np.float64), box=box, periodic=periodic,
                                     quantities="ijd")  # fmt: skip
    i, j, d = pairs
    if not len(d) or d.min() >= MIN_DISTANCE:
        return None
    k = int(np.argmin(d))
    first, second = sorted((int(i[k]), int(j[k])))
    return f"has atoms {first} and {second} {d[k]:.3f} Å apart (closer than {MIN_DISTANCE} Å)"


def check_finite_positions(structure: Structure, index: int, path: Path) -> None:
    problem = geometry_problem(structure)
    if problem is not None:
        raise UserError(
            f"structure {index} in {path} {problem}: a corrupt geometry, or positions in the wrong unit "
            "(reader.length_unit); fix or remove it"
        )


def checked_forces(forces, n_atoms: int, index: int, path: Path, key: str) -> np.ndarray:
    """Forces as a float (n_atoms, 3) array, or an error naming the structure, the file and the label key."""
    try:
        array = np.asarray(forces, dtype=float)
    except (TypeError, ValueError):
        raise UserError(f"structure {index} in {path}: the forces ({key}) are not numbers") from None
    if array.shape != (n_atoms, 3):
        raise UserError(
            f"structure {index} in {path}: forces ({key}) have shape {array.shape}, but it has {n_atoms} atoms, so "
            f"({n_atoms}, 3) was expected; fix the file, or name the right array in {key}"
        )
    if not np.all(np.isfinite(array)):
        atoms = sorted({int(i) for i in np.nonzero(~np.isfinite(array))[0]})
        raise UserError(
            f"structure {index} in {path}: the forces ({key}) are NaN/inf on atom(s) {atoms[:10]}; a missing label "
            "is an absent key, not NaN/inf: fix or remove the structure"
        )
    return array
