"""ASE databases (SQLite `.db`): read whole, or streamed, each structure read from disk when a batch needs it."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import ase.db
import ase.db.core
import numpy as np
from ase import Atoms

from mfff.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from mfff.data.structure import Structure

SUFFIX = ".db"
PAGE = 1000  # rows read from the database at a time
_INHERITED: list = []


def is_database(path: Path) -> bool:
    return Path(path).suffix == SUFFIX


def row_atoms(row) -> Atoms:
    """A row as Atoms with its key-value pairs and data arrays in `info`, where the label keys are looked up
    (`ase.io.read` drops both, so a db's `molecule`, `split` and per-fidelity labels would be lost)."""
    atoms = row.toatoms()
    atoms.info.update(row.key_value_pairs)
    atoms.info.update(row.get("data") or {})
    return atoms


class Database:
    """An ASE SQLite database, opened once per process (DataLoader workers each open their own connection:
    an SQLite connection must not cross a fork)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db, self._pid, self._open = None, None, contextlib.ExitStack()

    def _connection(self):
        if self._pid != os.getpid():
            if self._db is not None:  # a forked worker's copy of the parent's connection: never used nor closed
                _INHERITED.append((self._open, self._db))
            self._open = contextlib.ExitStack()
            try:
                self._db = self._open.enter_context(ase.db.connect(str(self.path), type="db", create_indices=False))
            except Exception as err:  # sqlite3 / ASE raise several types for unreadable files
                raise UserError(f"ASE cannot open the database {self.path}: {err}") from err
            self._pid = os.getpid()
        return self._db

    def rows(self, index: str = ":") -> Iterator[tuple[int, Atoms]]:
        """(row id, Atoms) of the rows `index` (an ASE index string: ':' all, '10:20', ...) picks, in id order.
        Read a page at a time: ASE's `select` fetches every matching row at once, which for a data set larger
        than memory is exactly what streaming avoids."""
        try:
            db = self._connection()
            start, stop, step = _slice(index, self.path).indices(db.count())
            position, last_id = 0, 0
            while position < stop:
                page = list(db.select(f"id>{last_id}", sort="id", limit=PAGE))
                if not page:
                    return
                for row in page:
                    if start <= position < stop and (position - start) % step == 0:
                        yield row.id, row_atoms(row)
                    position += 1
                last_id = page[-1].id
        except UserError:
            raise
        except Exception as err:  # sqlite3 / ASE raise several types for unreadable files
            raise UserError(f"ASE cannot read the database {self.path}: {err}") from err

    def atoms(self, row_id: int) -> Atoms:
        try:
            return row_atoms(self._connection().get(id=row_id))
        except KeyError as err:
            raise UserError(
                f"row {row_id} of {self.path} is gone: the database changed after it was read; rerun"
            ) from err

    def __getstate__(self) -> dict:
        return {"path": self.path}  # connections are per process

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])


def _slice(index: str, path: Path) -> slice:
    from ase.io.formats import string2index

    value = string2index(index) if isinstance(index, str) else index
    if isinstance(value, int):
        return slice(value, value + 1 or None)
    if not isinstance(value, slice):  # ASE would take other strings as a database query
        raise UserError(f"reader.index={index!r} for {path} must be an index or slice such as ':' or '0:100'")
    return value


class RowReader(Protocol):
    """What turns a database row into a `Structure` (an `ASEReader`; named here so this module does not import it)."""

    def structure(self, atoms: Atoms, index: int, path: Path) -> Structure | None: ...


class StoredStructure:
    """A structure whose positions and forces stay on disk: what a source needs to split, filter and fit its
    statistics (atomic numbers, energy, molecule, split tag, cost) is kept; `load()` reads the rest.

    It stands in for a `Structure` wherever the data module holds one; `positions` and `forces` read the row each
    time they are asked for (statistics ask once), and batches are built from `load()`ed structures.
    """

    __slots__ = ("numbers", "energy", "group", "split", "cost", "has_forces", "row_id", "_reader", "_database")

    def __init__(self, structure: Structure, row_id: int, reader: RowReader, database: Database):
        self.numbers, self.energy, self.cost = structure.numbers, structure.energy, structure.cost
        self.group, self.split = sys.intern(structure.group), sys.intern(structure.split)
        self.has_forces = structure.forces is not None
        self.row_id, self._reader, self._database = row_id, reader, database

    def load(self) -> Structure:
        return self._reader.structure(self._database.atoms(self.row_id), self.row_id, self._database.path)

    @property
    def positions(self) -> np.ndarray:
        return self.load().positions

    @property
    def forces(self) -> np.ndarray | None:
        return self.load().forces if self.has_forces else None

    @property
    def has_energy(self) -> bool:
        return bool(np.isfinite(self.energy))

    def __len__(self) -> int:
        return len(self.numbers)


def write_database(frames: Iterable[Atoms], path: Path) -> int:
    """Write frames to an ASE db that `ASEReader` reads back with the same labels: scalar `info` entries become
    key-value pairs, other `info` entries and per-atom arrays go to the row's data. Atomic: the file appears
    complete or not at all. Returns the number of rows."""
    path = Path(path)
    if not is_database(path):
        raise UserError(f"an ASE database file ends in {SUFFIX}; got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(suffix=SUFFIX, prefix=f".{path.stem}.", dir=path.parent)
    os.close(handle)
    os.unlink(partial)  # ASE creates the file itself
    count = 0
    try:
        with ase.db.connect(partial, type="db", append=False) as db:
            for atoms in frames:  # calculator results (extxyz's energy / forces) are stored by ASE itself
                pairs, data = {}, {}
                for key, value in atoms.info.items():
                    (pairs if _is_key_value_pair(key, value) else data)[key] = value
                data.update({k: v for k, v in atoms.arrays.items() if k not in ("numbers", "positions")})
                db.write(atoms, key_value_pairs=pairs, data=data)
                count += 1
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return count


def _is_key_value_pair(key: str, value) -> bool:
    """Whether ASE takes this as a (searchable) key-value pair; everything else goes to the row's data."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # keys that read as a chemical formula are allowed, with a warning
            ase.db.core.check({key: value})
    except ValueError:
        return False
    return True
