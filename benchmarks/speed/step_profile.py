"""Where a training step's time goes: timed sections of mfff's own loop on the built-in data.

    python benchmarks/speed/step_profile.py                           # PaiNN-s, batch 32, 0 and 1 data workers
    python benchmarks/speed/step_profile.py --model mace --batch 8 --workers 0

Each step is split into: waiting for the batch from the DataLoader (`data`: collate and neighbour list when there
are no workers; with workers, only what the loop still waits for), the energies (`forward`), the forces
(`forces`: autograd.grad with the graph kept), the loss and its backward pass (`backward`), and the step of
mfff's configured optimiser (`optimiser`). The neighbour list is also timed on its own, on the same batches
(`neighbour list`, part of data without workers). `--compile` times model.compile=true, whose forward and forces
are one compiled call (reported as `forward`). The first epoch fills the neighbour-list caches and is not timed.
Results: one record per setting in `step_profile.json`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from mfff.config import conf_dir  # noqa: E402
from mfff.data.neighbours import neighbour_list  # noqa: E402
from mfff.model.build import build_potential  # noqa: E402
from mfff.model.compiled import CompiledPotential  # noqa: E402
from mfff.train.loss import MultiFidelityLoss  # noqa: E402
from mfff.utils.atomic import atomic_write_text  # noqa: E402
from mfff.utils.instantiate import instantiate  # noqa: E402

RESULTS = HERE / "step_profile.json"
SECTIONS = ("data", "forward", "forces", "backward", "optimiser")


def build(model: str, size: str, batch: int, workers: int, fidelity: str, reader: dict | None = None):
    """mfff's data module, potential and loss for one built-in fidelity; `reader` replaces its source's reader."""
    overrides = [f"model/backbone={model}", f"model/size={size}", f"data.batch_size={batch}",
                 f"data.num_workers={workers}", "data=builtin"]  # fmt: skip
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    if reader is not None:
        cfg.data.sources[fidelity].reader = OmegaConf.create(reader)
    data = instantiate(cfg.data, key="data", fidelities=[fidelity], _convert_="all")
    data.setup("fit")
    potential = build_potential(cfg.model, [fidelity]).train()
    stats = data.stats()[fidelity]
    potential.heads[fidelity].set_reference(stats["e0"], stats["force_rms"])
    if getattr(potential.backbone, "fit_avg_num_neighbors", False):  # MACE: its average neighbour count, from data
        potential.backbone.set_data_statistics(stats["avg_neighbours"])
    loss_fn = MultiFidelityLoss([fidelity], cfg.loss.energy_weight, cfg.loss.forces_weight)
    return cfg, data, potential, loss_fn


def timed_epoch(data, potential, loss_fn, optimizer, compiled=None, on_step=None) -> dict:
    """One epoch of mfff's training step: seconds per section, steps, structures, and the first step's seconds
    (compiling, with `compiled`). `on_step(batch)` runs after each step, outside the timed sections."""
    times = {name: 0.0 for name in SECTIONS}
    steps = structures = 0
    first_step_s = None
    clock = time.perf_counter()
    for batch in data.train_dataloader():
        got = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        if compiled is not None:
            out = compiled(batch)
            after_forward = after_forces = time.perf_counter()
        else:
            positions = batch.positions.requires_grad_(True)
            out = potential(batch, compute_forces=False)
            after_forward = time.perf_counter()
            (gradient,) = torch.autograd.grad(out["pred_energy"].sum(), positions, create_graph=True)
            out["pred_forces"] = -gradient
            after_forces = time.perf_counter()
        loss_fn(batch, out)["loss"].backward()
        after_backward = time.perf_counter()
        optimizer.step()
        done = time.perf_counter()
        first_step_s = done - got if first_step_s is None else first_step_s
        for name, seconds in zip(SECTIONS, (got - clock, after_forward - got, after_forces - after_forward,
                                            after_backward - after_forces, done - after_backward)):  # fmt: skip
            times[name] += seconds
        steps += 1
        structures += batch.n_graphs
        if on_step is not None:
            on_step(batch)
        clock = time.perf_counter()
    return {"times": times, "steps": steps, "structures": structures, "first_step_s": first_step_s}


def profile(args, workers: int) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg, data, potential, loss_fn = build(args.model, args.size, args.batch, workers, args.fidelity)
    optimizer = instantiate(cfg.optimizer)(params=potential.parameters())  # mfff's own (AdamW, AMSGrad, fused)
    compiled = CompiledPotential(potential) if args.compile else None
    # the first epoch fills the neighbour-list caches (and compiles), and is not timed
    first = timed_epoch(data, potential, loss_fn, optimizer, compiled)
    compile_s = first["first_step_s"] if compiled is not None else None
    times = {name: 0.0 for name in SECTIONS}
    steps = structures = 0
    neighbours = []

    def time_neighbour_list(batch):
        start = time.perf_counter()
        neighbour_list(batch.positions.detach(), batch.batch, float(cfg.cutoff), cfg.data.neighbours)
        neighbours.append(time.perf_counter() - start)

    for _ in range(args.epochs):
        epoch = timed_epoch(data, potential, loss_fn, optimizer, compiled, on_step=time_neighbour_list)
        times = {name: times[name] + epoch["times"][name] for name in SECTIONS}
        steps, structures = steps + epoch["steps"], structures + epoch["structures"]
    total = sum(times.values())
    return {
        "model": args.model, "size": args.size, "batch": args.batch, "workers": workers, "compile": args.compile,
        "threads": args.threads, "steps": steps, "structures_per_s": structures / total,
        "ms_per_step": {name: 1e3 * seconds / steps for name, seconds in times.items()},
        "neighbour_list_ms": 1e3 * sum(neighbours) / steps, "data_share": times["data"] / total,
        "compile_s": compile_s, "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads", "torch": torch.__version__,
    }  # fmt: skip


def table(records: list[dict]) -> str:
    lines = ["| model | size | batch | workers | compiled | structures/s | " + " | ".join(f"{s} ms" for s in SECTIONS)
             + " | neighbour list ms | data share |", "|---" * (8 + len(SECTIONS)) + "|"]  # fmt: skip
    for r in records:
        parts = " | ".join(f"{r['ms_per_step'][s]:.2f}" for s in SECTIONS)
        lines.append(f"| {r['model']} | {r['size']} | {r['batch']} | {r['workers']} | {'yes' if r['compile'] else 'no'}"
                     f" | {r['structures_per_s']:.0f} | {parts} | {r['neighbour_list_ms']:.2f} | "
                     f"**{100 * r['data_share']:.1f}%** |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="painn")
    parser.add_argument("--size", default="s")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs, after one untimed")
    parser.add_argument("--fidelity", default="gfn2", help="built-in training set (gfn2: 7,888 structures)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--table", action="store_true", help="print the table of step_profile.json and stop")
    args = parser.parse_args()
    records = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    if not args.table:
        for workers in args.workers:
            record = profile(args, workers)
            same = ("model", "size", "batch", "workers", "compile", "threads")
            records = [r for r in records if any(r[k] != record[k] for k in same)] + [record]
            atomic_write_text(RESULTS, json.dumps(records, indent=1) + "\n")
    print(table(records))


if __name__ == "__main__":
    main()
