"""The built-in multi-fidelity dataset shipped with mfff (see mfff/data/builtin/README.md, its card)."""

from __future__ import annotations

import json
from pathlib import Path

import ase.io
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mfff.errors import UserError
from mfff.utils.atomic import atomic_open

DATA_DIR = Path(__file__).resolve().parent / "builtin"
SPLITS = ("train", "test", "test_mol")


def path(name: str = "builtin") -> Path:
    """The dataset file (extended XYZ, gzip)."""
    file = DATA_DIR / f"{name}.extxyz.gz"
    if not file.is_file():
        raise FileNotFoundError(
            f"built-in dataset {file} is missing; regenerate it with `mfff-label label={name}` "
            "from the repository root, or reinstall mfff"
        )
    return file


def metadata() -> dict:
    """Methods, program versions, sampling settings, counts and costs of the built-in dataset."""
    return json.loads(path().with_name("metadata.json").read_text())


def load(
    fidelity: str | list[str] | None = None, split: str | None = None, molecules: list[str] | None = None
) -> list[Atoms]:
    """Conformers of the built-in dataset (copies), optionally only those labelled by `fidelity`.

    Args:
        fidelity: keep conformers that carry `energy_<fidelity>` (any of them, for a list).
        split: 'train', 'test' (conformer-level) or 'test_mol' (held-out molecules).
        molecules: keep only these molecule names.
    """
    meta = metadata()
    wanted = [fidelity] if isinstance(fidelity, str) else list(fidelity or [])
    for name in wanted:
        if name not in meta["fidelities"]:
            raise KeyError(f"the built-in dataset has no fidelity {name!r}; it has {', '.join(meta['fidelities'])}")
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    frames = []
    from mfff.data.readers.ase_file import read_frames  # the readers import this module

    present, labelled = set(), set()  # molecules of the split; those with a wanted label
    for atoms in read_frames(path()):
        if split is not None and atoms.info["split"] != split:
            continue
        molecule = atoms.info["molecule"]
        present.add(molecule)
        if wanted and not any(f"energy_{name}" in atoms.info for name in wanted):
            continue
        labelled.add(molecule)
        if molecules is None or molecule in molecules:
            frames.append(atoms.copy())
    for molecule in molecules or []:  # an empty answer to a named molecule is a mistake, not a result
        where = f" in split {split!r}" if split is not None else ""
        if molecule not in present:
            raise UserError(f"the built-in dataset has no molecule {molecule!r}{where}; its molecules: "
                            f"{', '.join(sorted(present))}")  # fmt: skip
        if molecule not in labelled:
            raise UserError(f"molecule {molecule!r} has no {' or '.join(wanted)} labels in the built-in dataset"
                            f"{where}; molecules with them: {', '.join(sorted(labelled))}")  # fmt: skip
    return frames


def export(
    path: str | Path, fidelity: str, split: str, molecules: list[str] | None = None, per_molecule: int | None = None
) -> int:
    """Write one fidelity of the built-in dataset as a plain extxyz file, as a user's own data would look: `energy`
    (eV) and `forces` (eV/Å, where the fidelity has them) as a calculator's results, and the `molecule` name.
    Stand-in data for trying the own-data recipe. Atomic: the file appears complete or not at all.

    Args:
        per_molecule: at most this many conformers of each molecule (the first in the dataset's order).
    Returns: the number of structures written.
    """
    taken: dict[str, int] = {}
    frames = []
    for atoms in load(fidelity, split, molecules):
        molecule = atoms.info["molecule"]
        if per_molecule is not None and taken.get(molecule, 0) >= per_molecule:
            continue
        taken[molecule] = taken.get(molecule, 0) + 1
        plain = Atoms(atoms.numbers, atoms.positions, info={"molecule": molecule})
        forces = atoms.arrays.get(f"forces_{fidelity}")
        plain.calc = SinglePointCalculator(plain, energy=float(atoms.info[f"energy_{fidelity}"]), forces=forces)
        frames.append(plain)
    with atomic_open(path) as handle:
        ase.io.write(handle, frames, format="extxyz")
    return len(frames)
