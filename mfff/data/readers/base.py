"""The reader interface and checks every reader shares."""

from __future__ import annotations

import abc
from pathlib import Path

import numpy as np

from mfff.data.errors import DataError
from mfff.data.structure import Structure


class Reader(abc.ABC):
    """Reads one fidelity's labelled structures from a file."""

    path: Path

    @abc.abstractmethod
    def read(self) -> list[Structure]: ...

    def describe(self) -> str:
        return f"{type(self).__name__}({self.path})"


def existing_file(path, key: str = "reader.path") -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"data file {path} (from {key}) does not exist; check the path or generate the data first")
    return path


def check_positions(structures: list[Structure], path: Path) -> None:
    """NaN/inf positions are corrupt input, not a missing label: refuse them with the index."""
    for index, structure in enumerate(structures):
        if not np.all(np.isfinite(structure.positions)):
            raise DataError(f"structure {index} in {path} has non-finite (NaN/inf) positions; fix or remove it")
