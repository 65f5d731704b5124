"""Export the built-in dataset's splits to plain extxyz files that mfff and mace-torch both train on.

    python benchmarks/accuracy/export.py [--out benchmarks/accuracy/runs/data]

Every file holds energies and forces under mace-torch's default keys (`REF_energy` in eV, `REF_forces` in eV/Å)
and the molecule name. The split is seeded and written once; rerunning rewrites identical files.
- `dft_test.xyz`: the built-in `test` split of `dft` (a seeded 10% of each DFT molecule's conformers, never
  trained on by either fidelity);
- `dft_val.xyz`: 50 DFT training conformers, for model selection and the learning-rate schedule;
- `dft_train_{50,200}.xyz`: nested subsets of the remaining DFT training conformers;
- `gfn2_train.xyz` (2,000), `gfn2_val.xyz` (100), `gfn2_test.xyz` (200): GFN2-xTB labels of the built-in
  training / test conformers of all 24 molecules, for pre-training.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import write

from mfff.data import builtin

HERE = Path(__file__).resolve().parent
SEED = 0
DFT_SIZES = (50, 200)
DFT_VAL = 50
GFN2_TRAIN, GFN2_VAL, GFN2_TEST = 2000, 100, 200


def relabelled(frames: list[Atoms], fidelity: str) -> list[Atoms]:
    """Copies that carry only this fidelity's labels, under mace-torch's default keys."""
    out = []
    for atoms in frames:
        plain = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        plain.info = {"REF_energy": float(atoms.info[f"energy_{fidelity}"]), "molecule": atoms.info["molecule"]}
        plain.arrays["REF_forces"] = np.asarray(atoms.arrays[f"forces_{fidelity}"], dtype=float)
        out.append(plain)
    return out


def write_atomic(path: Path, frames: list[Atoms]) -> None:
    tmp = path.with_suffix(".tmp.xyz")
    write(tmp, frames, format="extxyz")
    os.replace(tmp, path)


def export(out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    files: dict[str, list[Atoms]] = {}

    dft_train = relabelled(builtin.load("dft", "train"), "dft")
    order = rng.permutation(len(dft_train))
    files["dft_val"] = [dft_train[i] for i in order[:DFT_VAL]]
    for size in DFT_SIZES:  # nested: the 50 are the first 50 of the 200
        files[f"dft_train_{size}"] = [dft_train[i] for i in order[DFT_VAL : DFT_VAL + size]]
    files["dft_test"] = relabelled(builtin.load("dft", "test"), "dft")

    gfn2_train = relabelled(builtin.load("gfn2", "train"), "gfn2")
    order = rng.permutation(len(gfn2_train))
    files["gfn2_train"] = [gfn2_train[i] for i in order[:GFN2_TRAIN]]
    files["gfn2_val"] = [gfn2_train[i] for i in order[GFN2_TRAIN : GFN2_TRAIN + GFN2_VAL]]
    gfn2_test = relabelled(builtin.load("gfn2", "test"), "gfn2")
    files["gfn2_test"] = [gfn2_test[i] for i in rng.permutation(len(gfn2_test))[:GFN2_TEST]]

    paths = {}
    for name, frames in files.items():
        paths[name] = out / f"{name}.xyz"
        write_atomic(paths[name], frames)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE / "runs" / "data")
    args = parser.parse_args()
    for name, path in export(args.out).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
