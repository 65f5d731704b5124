"""The timing protocol every worker speaks, whatever its framework (the SchNetPack worker runs in its own venv, so
this module imports nothing but the standard library, numpy, torch and ASE).

The orchestrator (`throughput.py`) writes one JSON request a line on the worker's stdin, e.g.
`{"model": "painn", "size": "s", "batch": 32, "steps": 20, "warmup": 3}`; the worker answers one JSON line on
stdout with the timing of `steps` training steps after `warmup` untimed ones. A training step is what every tool
does per batch: energies, forces = -dE/dx with the graph kept, the loss on energies and forces, its backward and
an Adam step. Batches and neighbour lists are built before the clock starts and cycled.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

import torch
from ase.io import read


def load_structures(path: str) -> list:
    """The shared structures (extxyz, labels under REF_energy / REF_forces), in file order."""
    return read(path, index=":")


def chunks(structures: list, batch: int, n_batches: int) -> list[list]:
    """The same `n_batches` batches for every tool: consecutive slices of the file's order, wrapping around."""
    out, start = [], 0
    for _ in range(n_batches):
        out.append([structures[(start + k) % len(structures)] for k in range(batch)])
        start += batch
    return out


def time_steps(step, batches: list, steps: int, warmup: int) -> float:
    """Seconds for `steps` calls of step(batch), after `warmup` untimed ones."""
    for k in range(warmup):
        step(batches[k % len(batches)])
    start = time.perf_counter()
    for k in range(steps):
        step(batches[k % len(batches)])
    return time.perf_counter() - start


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def serve(build) -> None:
    """Answer timing requests until stdin closes. build(request) -> (step, batches, atoms per batch, parameters
    [, a dict of facts to report, e.g. the compile time]), cached per cell (model, size, batch, ...)."""
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    cache: dict = {}
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # frameworks print; only answers go to the orchestrator
    for line in sys.stdin:
        request = json.loads(line)
        try:
            cell = json.dumps({k: v for k, v in request.items() if k not in ("steps", "warmup")}, sort_keys=True)
            if cell not in cache:
                cache.clear()  # one cell at a time: memory stays that of one model
                torch.manual_seed(0)
                cache[cell] = build(request)
            step, batches, atoms_per_batch, parameters, *extra = cache[cell]
            seconds = time_steps(step, batches, request["steps"], request["warmup"])
            structures = request["steps"] * request["batch"]
            atoms = sum(atoms_per_batch[k % len(batches)] for k in range(request["steps"]))
            answer = {"seconds": seconds, "structures": structures, "atoms": atoms, "parameters": parameters,
                      **(extra[0] if extra else {})}  # fmt: skip
        except Exception as err:  # the orchestrator records it and goes on
            answer = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
        real_stdout.write(json.dumps(answer) + "\n")
        real_stdout.flush()
