"""The training-recipe study: DFT test errors of scratch and pretrain -> fine-tune at 50 and 200 DFT labels.

    python benchmarks/recipe/run.py --arm before --rev 36b97f1    # the recipe before issue 9, from git
    python benchmarks/recipe/run.py --arm after                    # this checkout's defaults
    python benchmarks/recipe/run.py --arm bs8 --backbones painn --strategies scratch -- data.batch_size=8
    python benchmarks/recipe/run.py --arm after --strategies multihead --sizes 50 -- trainer.max_epochs=30

Each arm is one code version (a git revision, checked out as a worktree under runs/, or this checkout) plus
optional overrides after `--`. Every run is a fresh `mfff-train` process with one thread; two run at once (the
machine's two cores). Finished runs are skipped, so a killed study resumes where it stopped. `results.json`
holds one record per run; `table.py` turns it into the Markdown table in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mfff.utils.atomic import atomic_write_text

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RUNS = HERE / "runs"  # git-ignored: checkpoints and logs
RESULTS = HERE / "results.json"

# Shared by every arm: the built-in data, DFT as the target, pre-training (strategy default: gfn2) on 2,000 frames.
COMMON = [
    "data.fidelity=dft",
    "data.sources.gfn2.n_train=2000",
    "threads=1",
    "trainer.enable_progress_bar=false",
    "logger=csv",
]


def run_overrides(strategy: str, backbone: str, n_train: int, seed: int) -> list[str]:
    return [
        f"strategy={strategy}",
        f"model/backbone={backbone}",
        f"data.sources.dft.n_train={n_train}",
        f"seed={seed}",
        *(["fidelities=[dft,gfn2]"] if strategy == "multihead" else []),  # GFN2 (2,000) + DFT (n_train) at once
        *COMMON,
    ]


def checkout(rev: str) -> Path:
    """A worktree of `rev` under runs/. Runs start in it, and `python -m` puts the working directory first on
    sys.path, so its mfff shadows this checkout's editable install."""
    tree = RUNS / f"code-{rev}"
    if not tree.exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), rev], check=True)
    return tree


def load_results() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def save_result(key: str, record: dict) -> None:
    results = load_results()  # re-read: the other worker may have written since
    results[key] = record
    atomic_write_text(RESULTS, json.dumps(results, indent=1, sort_keys=True) + "\n")


def summary(metrics: dict, target: str = "dft") -> dict:
    test = metrics["metrics"]["test"][target]
    return {
        "forces_mae": test["forces_mae"],
        "forces_rmse": test["forces_rmse"],
        "energy_per_atom_mae": test["energy_per_atom_mae"],
        "epochs": metrics["epochs"],
        "best_epoch": metrics.get("best_epoch"),
        "stopped": metrics.get("stopped"),
    }


def run_one(arm: str, code: Path | None, extra: list[str], strategy: str, backbone: str, n: int, seed: int):
    key = f"{arm}/{backbone}/{strategy}/n{n}/s{seed}"
    run_dir = RUNS / key
    metrics_file = run_dir / "metrics.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [
        sys.executable,
        "-m",
        "mfff.cli.train",
        *run_overrides(strategy, backbone, n, seed),
        *extra,
        f"hydra.run.dir={run_dir}",
        f"paths.cache_dir={RUNS / 'cache'}",  # keyed by code and settings: arms share pre-trainings
    ]
    wall = None  # only a run done now is timed; a finished one is collected again with its recorded time
    if not (metrics_file.exists() and json.loads(metrics_file.read_text()).get("status") == "finished"):
        run_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with open(run_dir / "stdout.log", "w") as log:
            done = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=code or REPO)
        if done.returncode != 0:
            print(f"FAILED {key} (exit {done.returncode}); see {run_dir / 'stdout.log'}", flush=True)
            return
        wall = round(time.perf_counter() - start, 1)
    metrics = json.loads(metrics_file.read_text())
    record = {
        "arm": arm,
        "backbone": backbone,
        "strategy": strategy,
        "n_train": n,
        "seed": seed,
        "overrides": extra,
        "wall_s": wall if wall is not None else load_results().get(key, {}).get("wall_s"),
        **summary(metrics),
    }
    save_result(key, record)
    print(f"{key}: forces MAE {record['forces_mae']:.1f} meV/Å, {record['wall_s']:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arm", required=True, help="the name of this recipe in results.json")
    parser.add_argument("--rev", help="a git revision to run instead of this checkout")
    parser.add_argument("--backbones", nargs="+", default=["painn", "mace"])
    parser.add_argument("--strategies", nargs="+", default=["scratch", "pretrain_finetune"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[50, 200])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("extra", nargs="*", help="overrides after --, e.g. -- data.batch_size=8")
    args = parser.parse_args()
    code = checkout(args.rev) if args.rev else None
    # sizes outermost within a strategy: parallel workers pre-train different seeds, later runs hit the cache
    jobs = [(s, b, n, seed) for b in args.backbones for s in args.strategies for n in args.sizes for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        for future in [pool.submit(run_one, args.arm, code, args.extra, *job) for job in jobs]:
            future.result()


if __name__ == "__main__":
    main()
