"""Training throughput of mfff's backbones, side by side with SchNetPack's PaiNN and mace-torch's MACE.

    python benchmarks/speed/throughput.py                       # everything; resumes from results.json
    python benchmarks/speed/throughput.py --models painn --sizes s --batches 32 --repeats 5
    python benchmarks/speed/throughput.py --table               # the Markdown table from results.json

One run per comparison: each tool has one worker process (SchNetPack's in its own venv, `--spk-python`), alive for
the whole run and idle while another times, and the repeats alternate between the tools of a cell, so a drift of
the machine hits both alike. Every tool trains on the same batches of the same structures (`runs/molecules.xyz`:
built-in conformers, GFN2-xTB labels) at the same size (mfff's `model/size` preset) and batch size, with one
thread unless `--threads` says otherwise. See workers/protocol.py for what a step is.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from statistics import median

import numpy as np
from ase import Atoms
from ase.io import write

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RUNS = HERE / "runs"
RESULTS = HERE / "results.json"
WORKERS = HERE / "workers"
sys.path.insert(0, str(REPO))

# which peer each mfff backbone is compared with (None: mfff alone)
PEERS = {"painn": "spk-painn", "mace": "mace-torch", "schnet": None}
N_STRUCTURES = 512  # the structures the batches cycle through
N_BATCHES = 8  # distinct batches per cell (each built once, before timing)


def write_structures(path: Path) -> None:
    """Built-in training conformers with their GFN2-xTB labels, in a seeded order."""
    from mfff.data import builtin

    frames = builtin.load("gfn2", split="train")
    order = np.random.default_rng(0).permutation(len(frames))[:N_STRUCTURES]
    out = []
    for k in order:
        atoms = frames[k]
        plain = Atoms(atoms.numbers, atoms.positions)
        plain.info["REF_energy"] = float(atoms.info["energy_gfn2"])
        plain.arrays["REF_forces"] = np.asarray(atoms.arrays["forces_gfn2"], dtype=float)
        out.append(plain)
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, out, format="extxyz")


class Worker:
    """A worker process of one tool, answering timing requests on stdin/stdout."""

    def __init__(self, tool: str, python: str, threads: int, code: Path | None = None):
        script = {"spk-painn": "spk_worker.py", "mace-torch": "mace_worker.py"}.get(tool, "mfff_worker.py")
        env = dict(os.environ, BENCH_THREADS=str(threads), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        # `code`: another checkout of mfff (the baseline), imported before the installed one
        env["PYTHONPATH"] = os.pathsep.join([*([str(code)] if code else []), str(WORKERS), env.get("PYTHONPATH", "")])
        log = open(RUNS / f"{tool.replace(' ', '_')}.log", "a")
        self.process = subprocess.Popen(
            [python, str(WORKERS / script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
            env=env, cwd=REPO,
        )  # fmt: skip

    def time(self, request: dict) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the worker died; see {RUNS}/*.log")
        return json.loads(line)

    def close(self) -> None:
        try:
            self.process.stdin.close()
        except BrokenPipeError:  # it died already; its log says why
            pass
        self.process.wait(timeout=60)


def size_of(model: str, size: str) -> dict:
    """mfff's preset sizes, which SchNetPack's worker (no mfff in its venv) gets in the request."""
    from hydra import compose, initialize_config_dir

    from mfff.config import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[f"model/backbone={model}", f"model/size={size}"])
    backbone = cfg.model.backbone
    return {"n_features": backbone.get("n_features"), "n_interactions": backbone.get("n_interactions"),
            "n_basis": backbone.get("n_basis"), "cutoff": float(cfg.cutoff)}  # fmt: skip


def versions(spk_python: str | None) -> dict:
    import ase
    import pytorch_lightning
    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__, "ase": ase.__version__,
           "pytorch-lightning": pytorch_lightning.__version__}  # fmt: skip
    try:
        from importlib.metadata import version

        out["mace-torch"] = version("mace-torch")
    except Exception:
        pass
    if spk_python:
        probe = (
            "import schnetpack, torch, platform; print(schnetpack.__version__, torch.__version__, "
            "platform.python_version())"
        )
        spk, torch_version, python = subprocess.run([spk_python, "-c", probe], capture_output=True, text=True,
                                                     check=True).stdout.split()  # fmt: skip
        out["schnetpack"] = f"{spk} (torch {torch_version}, Python {python})"
    return out


def load() -> list[dict]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else []


def save(records: list[dict]) -> None:
    from mfff.utils.atomic import atomic_write_text

    atomic_write_text(RESULTS, json.dumps(records, indent=1) + "\n")


def run(args) -> None:
    structures = RUNS / "molecules.xyz"
    if not structures.is_file():
        write_structures(structures)
    wanted = {PEERS[m] for m in args.models if PEERS[m]} if not args.no_peers else set()
    tools = {f"mfff-{m}" for m in args.models} | wanted
    workers = {tool: Worker(tool, args.spk_python if tool == "spk-painn" else sys.executable, args.threads)
               for tool in sorted(tools)}  # fmt: skip
    if args.compile:  # its own worker: compiled graphs stay out of the eager worker's process
        workers.update({f"mfff-{m} compiled": Worker(f"mfff-{m}", sys.executable, args.threads) for m in args.models})
    if args.baseline:
        workers.update({f"mfff-{m} @ {args.baseline_name}": Worker(f"mfff-{m}", sys.executable, args.threads,
                                                                   args.baseline) for m in args.models})  # fmt: skip
    records = load()
    stamp = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"), "threads": args.threads,
             "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
             **versions(args.spk_python if wanted else None)}  # fmt: skip
    try:
        for model in args.models:
            cell_tools = [f"mfff-{model}"] + ([PEERS[model]] if PEERS[model] in wanted else [])
            cell_tools += [f"mfff-{model} compiled"] if args.compile else []
            cell_tools += [f"mfff-{model} @ {args.baseline_name}"] if args.baseline else []
            for size in args.sizes:
                for batch in args.batches:
                    done = [r for r in records if (r["model"], r["size"], r["batch"]) == (model, size, batch)
                            and r["tool"] in cell_tools and r["threads"] == args.threads]  # fmt: skip
                    steps = max(2, round(args.structures / batch))
                    request = {"model": model, "size": size, "batch": batch, "file": str(structures),
                               "batches": N_BATCHES, "steps": steps, "warmup": 2, **size_of(model, size)}  # fmt: skip
                    for repeat in range(args.repeats):
                        for tool in cell_tools:
                            if any(r["tool"] == tool and r["repeat"] == repeat for r in done):
                                continue
                            answer = workers[tool].time({**request, "compile": tool.endswith(" compiled")})
                            record = {"tool": tool, "model": model, "size": size, "batch": batch, "repeat": repeat,
                                      **stamp, **answer}  # fmt: skip
                            if "error" not in answer:
                                record["structures_per_s"] = answer["structures"] / answer["seconds"]
                                record["atoms_per_s"] = answer["atoms"] / answer["seconds"]
                                print(f"{tool} {size} b{batch} #{repeat}: {record['structures_per_s']:.1f} "
                                      f"structures/s", flush=True)  # fmt: skip
                            else:
                                print(f"{tool} {size} b{batch}: {answer['error']}", flush=True)
                            records.append(record)
                            save(records)
    finally:
        for worker in workers.values():
            worker.close()


def table(records: list[dict]) -> str:
    """Medians (min-max) per tool and cell; for each mfff variant, the ratio of its median to the peer's."""
    cells: dict = {}
    for r in records:
        if "error" not in r:
            cells.setdefault((r["model"], r["size"], r["batch"], r["threads"]), {}).setdefault(r["tool"], []).append(r)
    lines = ["| model | size | batch | threads | tool | parameters | repeats | structures/s | atoms/s | vs peer | "
             "compile s |", "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for (model, size, batch, threads), tools in sorted(cells.items()):
        peer = tools.get(PEERS[model])
        for tool, runs in sorted(tools.items(), key=lambda t: (t[0] == PEERS[model], t[0])):
            speeds = [r["structures_per_s"] for r in runs]
            ratio = ""
            if peer and tool != PEERS[model]:
                ratio = f"**{median(speeds) / median(r['structures_per_s'] for r in peer):.2f}x**"
            compile_s = [r["compile_s"] for r in runs if "compile_s" in r]
            lines.append(
                f"| {model} | {size} | {batch} | {threads} | {tool} | {runs[0]['parameters']:,} | {len(runs)} | "
                f"{median(speeds):.1f} ({min(speeds):.1f}-{max(speeds):.1f}) | "
                f"{median(r['atoms_per_s'] for r in runs):.0f} | {ratio} | "
                f"{f'{median(compile_s):.0f}' if compile_s else ''} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["painn", "mace", "schnet"], choices=sorted(PEERS))
    parser.add_argument("--sizes", nargs="+", default=["s", "m", "l"])
    parser.add_argument("--batches", nargs="+", type=int, default=[8, 32, 128])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--structures", type=int, default=256, help="structures per timing (steps = this / batch)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--spk-python", default=os.environ.get("SPK_PYTHON", str(REPO.parent / "spk-venv/bin/python")),
                        help="the Python of a venv with schnetpack (README: benchmarks)")  # fmt: skip
    parser.add_argument("--no-peers", action="store_true", help="time mfff alone")
    parser.add_argument("--compile", action="store_true", help="also time mfff with model.compile=true, as "
                        "the tool 'mfff-<model> compiled' (its first step, the compiling, reported apart)")  # fmt: skip
    parser.add_argument("--baseline", type=Path, help="another mfff checkout (e.g. a git worktree of an older "
                        "commit), timed side by side as the tool 'mfff-<model> @ <--baseline-name>'")  # fmt: skip
    parser.add_argument("--baseline-name", default="baseline", help="its name in the results, e.g. a commit")
    parser.add_argument("--results", type=Path, help="another results file (e.g. a before/after comparison)")
    parser.add_argument("--table", action="store_true", help="print the table of results.json and stop")
    args = parser.parse_args()
    global RESULTS
    RESULTS = args.results or RESULTS
    if args.table:
        print(table(load()))
        return
    RUNS.mkdir(parents=True, exist_ok=True)
    run(args)
    print(table(load()))


if __name__ == "__main__":
    main()
