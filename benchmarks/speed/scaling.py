"""How mfff's training step scales, and how close it runs to the machine's dense-matmul speed.

    python benchmarks/speed/scaling.py                 # everything below, PaiNN-s, one thread
    python benchmarks/speed/scaling.py --only heads    # one part: size | heads | flops

- `size`: water clusters of 1 to 128 molecules (3 to 384 atoms; ASE-built, on a 3.1 Å grid as in liquid water,
  randomly oriented), 8 structures a batch: atoms/s and the peak memory per structure (each size in a fresh
  process: the rise of its peak resident memory over the model's, divided by the structures of a batch).
- `heads`: 1, 2, 4 and 16 heads on the built-in molecules (batch 32, structures spread over the heads), each head
  on its own atoms (the default) and every head on every atom (`head_atoms=None`, the way before).
- `flops`: the matmul FLOPs of one training step (torch's FlopCounterMode: forward, forces and loss backward),
  divided by the step's time, against a dense float32 matmul of the step's typical shape and of 1024 x 1024.

Labels do not change how long a step takes: the clusters carry zero labels, never used as chemistry.
Results: `scaling.json`; the README's tables come from `--table`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE / "workers"))

RESULTS = HERE / "scaling.json"
CLUSTER_SIZES = (1, 4, 16, 64, 128)
HEADS = (1, 2, 4, 16)


def water_cluster(n_molecules: int, seed: int):
    """n water molecules on the first sites of a cubic 3.1 Å grid (about liquid density), randomly oriented."""
    from ase import Atoms
    from ase.build import molecule
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    side = int(np.ceil(n_molecules ** (1 / 3)))
    sites = np.array([(i, j, k) for i in range(side) for j in range(side) for k in range(side)])[:n_molecules] * 3.1
    water = molecule("H2O")
    numbers, positions = [], []
    for site in sites:
        rotation = Rotation.random(random_state=rng.integers(1 << 31)).as_matrix()
        numbers += list(water.numbers)
        positions += list(water.positions @ rotation.T + site + rng.normal(scale=0.1, size=3))
    return Atoms(numbers, positions)


def potential_and_step(size: str, heads: int, compile_: bool = False):
    from hydra import compose, initialize_config_dir

    from mfff.config import conf_dir
    from mfff.model.build import build_potential
    from mfff.model.compiled import CompiledPotential
    from mfff.train.loss import MultiFidelityLoss

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("train", overrides=["model/backbone=painn", f"model/size={size}"])
    names = [f"h{k:02d}" for k in range(heads)]
    potential = build_potential(cfg.model, names).train()
    loss_fn = MultiFidelityLoss(names, cfg.loss.energy_weight, cfg.loss.forces_weight)
    optimizer = torch.optim.AdamW(potential.parameters(), lr=1e-4)
    forward = CompiledPotential(potential) if compile_ else potential

    def step(batch):
        optimizer.zero_grad(set_to_none=True)
        loss_fn(batch, forward(batch))["loss"].backward()
        optimizer.step()

    return cfg, potential, step


def timed(step, batches, repeats: int = 5, warmup: int = 2) -> list[float]:
    """Seconds per step, one median-able figure per repeat of a pass over the batches."""
    for k in range(warmup):
        step(batches[k % len(batches)])
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            step(batch)
        out.append((time.perf_counter() - start) / len(batches))
    return out


def structures_of(atoms_list, heads: int = 1):
    from mfff.data.structure import Structure

    return [(Structure(a.numbers.copy(), a.positions.copy(), energy=0.0, forces=np.zeros((len(a), 3))), k % heads)
            for k, a in enumerate(atoms_list)]  # fmt: skip


def size_point(n_molecules: int, size: str, batch: int) -> dict:
    """One cluster size, in this (fresh) process: speed and the rise of peak memory over the model's."""
    from mfff.data.batch import Collater

    cfg, potential, step = potential_and_step(size, 1)
    collate = Collater(float(cfg.cutoff))
    batches = [collate(structures_of([water_cluster(n_molecules, seed=b * batch + k) for k in range(batch)]))
               for b in range(2)]  # fmt: skip
    base_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = timed(step, batches, repeats=3, warmup=1)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    atoms = int(batches[0].n_atoms.sum())
    return {"part": "size", "n_atoms": 3 * n_molecules, "batch": batch,
            "edges_per_atom": batches[0].edge_index.shape[1] / atoms, "seconds": seconds,
            "atoms_per_s": atoms / float(np.median(seconds)),
            "memory_mib_per_structure": (peak_kib - base_kib) / 1024 / batch}  # fmt: skip


def heads_points(size: str, repeats: int) -> list[dict]:
    from protocol import chunks, load_structures
    from throughput import N_STRUCTURES, RUNS, write_structures

    from mfff.data.batch import Collater

    path = RUNS / "molecules.xyz"
    if not path.is_file():
        write_structures(path)
    frames = load_structures(str(path))[:N_STRUCTURES]
    out = []
    for heads in HEADS:
        cfg, potential, step = potential_and_step(size, heads)
        collate = Collater(float(cfg.cutoff))
        batches = [collate(structures_of(chunk, heads)) for chunk in chunks(frames, 32, 8)]
        everywhere = [dataclasses.replace(b, head_atoms=None) for b in batches]
        own, every = [], []
        for _ in range(repeats):  # alternating, so that a drift of the machine hits both alike
            own += timed(step, batches, repeats=1)
            every += timed(step, everywhere, repeats=1)
        for mode, seconds in (("own atoms", own), ("every atom", every)):
            out.append({"part": "heads", "heads": heads, "mode": mode, "seconds": seconds,
                        "structures_per_s": 32 / float(np.median(seconds))})  # fmt: skip
    return out


def flops_points(size: str, repeats: int) -> list[dict]:
    from protocol import chunks, load_structures
    from throughput import RUNS
    from torch.utils.flop_counter import FlopCounterMode

    from mfff.data.batch import Collater

    out = []
    for compile_ in (False, True):
        cfg, potential, step = potential_and_step(size, 1, compile_)
        frames = load_structures(str(RUNS / "molecules.xyz"))
        batches = [Collater(float(cfg.cutoff))(structures_of(chunk)) for chunk in chunks(frames, 32, 8)]
        if not compile_:
            with FlopCounterMode(display=False) as counter:
                for batch in batches:
                    step(batch)
            flops = counter.get_total_flops() / len(batches)
        seconds = float(np.median(timed(step, batches, repeats=repeats)))
        out.append({"part": "flops", "compiled": compile_, "matmul_flops_per_step": flops, "seconds": seconds,
                    "gflop_per_s": flops / seconds / 1e9})  # fmt: skip
    n_atoms, n_features = int(batches[0].n_atoms.sum()), int(cfg.model.backbone.n_features)
    n_edges = int(batches[0].edge_index.shape[1])
    for shape in ((n_edges, n_features, 3 * n_features), (1024, 1024, 1024)):
        a, b = torch.randn(shape[0], shape[1]), torch.randn(shape[1], shape[2])
        for _ in range(3):
            a @ b
        calls = max(3, int(2e9 / (2 * shape[0] * shape[1] * shape[2])))
        start = time.perf_counter()
        for _ in range(calls):
            a @ b
        seconds = (time.perf_counter() - start) / calls
        out.append({"part": "flops", "matmul": list(shape), "gflop_per_s": 2 * np.prod(shape) / seconds / 1e9,
                    "n_atoms": n_atoms})  # fmt: skip
    return out


def table(records: list[dict]) -> str:
    lines = []
    sizes = [r for r in records if r["part"] == "size"]
    if sizes:
        lines += ["| atoms per structure | edges per atom | atoms/s | peak memory per structure (MiB) |",
                  "|---|---|---|---|"]  # fmt: skip
        lines += [f"| {r['n_atoms']} | {r['edges_per_atom']:.1f} | {r['atoms_per_s']:.0f} | "
                  f"{r['memory_mib_per_structure']:.2f} |" for r in sizes]  # fmt: skip
    heads = [r for r in records if r["part"] == "heads"]
    if heads:
        lines += ["", "| heads | each head on its own atoms, structures/s | every head on every atom | ratio |",
                  "|---|---|---|---|"]  # fmt: skip
        for n in sorted({r["heads"] for r in heads}):
            own = next(r for r in heads if r["heads"] == n and r["mode"] == "own atoms")["structures_per_s"]
            every = next(r for r in heads if r["heads"] == n and r["mode"] == "every atom")["structures_per_s"]
            lines.append(f"| {n} | {own:.0f} | {every:.0f} | {own / every:.2f}x |")
    flops = [r for r in records if r["part"] == "flops"]
    if flops:
        lines += ["", "| what | matmul GFLOP/s |", "|---|---|"]
        for r in flops:
            what = (f"dense matmul {' x '.join(map(str, r['matmul']))}" if "matmul" in r else
                    f"PaiNN-s training step{' (compiled)' if r['compiled'] else ''}, "
                    f"{r['matmul_flops_per_step'] / 1e6:.0f} MFLOP per step")  # fmt: skip
            lines.append(f"| {what} | {r['gflop_per_s']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["size", "heads", "flops"])
    parser.add_argument("--size", default="s")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--point", type=int, help=argparse.SUPPRESS)  # one cluster size, in a child process
    parser.add_argument("--table", action="store_true", help="print the tables of scaling.json and stop")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.point:
        print(json.dumps(size_point(args.point, args.size, batch=8)))
        return
    if args.table:
        print(table(json.loads(RESULTS.read_text())))
        return
    from mfff.utils.atomic import atomic_write_text

    stamp = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"), "threads": args.threads,
             "size": args.size, "machine": f"{platform.machine()}", "torch": torch.__version__}  # fmt: skip
    records = [] if not RESULTS.exists() else json.loads(RESULTS.read_text())
    parts = [args.only] if args.only else ["size", "heads", "flops"]
    records = [r for r in records if r["part"] not in parts]
    for part in parts:
        if part == "size":
            for n in CLUSTER_SIZES:
                command = [sys.executable, __file__, "--point", str(n), "--size", args.size,
                           "--threads", str(args.threads)]  # fmt: skip
                line = subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[-1]
                records.append({**stamp, **json.loads(line)})
        elif part == "heads":
            records += [{**stamp, **r} for r in heads_points(args.size, args.repeats)]
        else:
            records += [{**stamp, **r} for r in flops_points(args.size, args.repeats)]
        atomic_write_text(RESULTS, json.dumps(records, indent=1) + "\n")
    print(table(records))


if __name__ == "__main__":
    main()
