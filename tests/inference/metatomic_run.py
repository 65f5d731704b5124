"""Run exported metatomic models with metatomic-ase, in a process that cannot import mfff, Lightning, Hydra or
OmegaConf: `python metatomic_run.py <request.json> <results.npz>`. The request lists {model, variant, structure}
jobs (structure: an extxyz file); the results hold each job's energy, forces and, for periodic cells, stress."""

import importlib.abc
import json
import sys

BLOCKED = ("mfff", "pytorch_lightning", "lightning", "hydra", "omegaconf")


class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} must not be needed to run an exported model")


sys.meta_path.insert(0, Blocked())

import ase.io  # noqa: E402
import numpy as np  # noqa: E402
from metatomic_ase import MetatomicCalculator  # noqa: E402


def main(request_path: str, results_path: str) -> None:
    results = {}
    for k, job in enumerate(json.loads(open(request_path).read())):
        atoms = ase.io.read(job["structure"])
        atoms.calc = MetatomicCalculator(job["model"], variants={"energy": job["variant"]}, device="cpu",
                                         check_consistency=True)  # fmt: skip
        results[f"{k}_energy"] = np.array(atoms.get_potential_energy())
        results[f"{k}_forces"] = atoms.get_forces()
        if atoms.pbc.all():
            results[f"{k}_stress"] = atoms.get_stress()
    assert not any(name.split(".")[0] in BLOCKED for name in sys.modules)
    np.savez(results_path, **results)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
