"""Fixed-seed regression of the 15 run kinds that a refactor of the training code must leave bit-identical.

    python benchmarks/regress/run.py --label before          # runs every kind, writes regress/before.json
    python benchmarks/regress/run.py --label after
    python benchmarks/regress/run.py --compare before after  # exit 1 if any number differs

Each kind is one short `mfff-train` process (built-in data, 48 training structures a fidelity, 3 epochs, one
thread), two at a time; the fine-tunes start from the `pretrain_gfn2` run. A snapshot keeps, per kind, every
val/test metric, epochs, steps, the best epoch and n_train, read from its metrics.json; `--compare` asks them to
be equal to the last bit. Run dirs go to regress/runs/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mfff.utils.atomic import atomic_write_text

HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs"

SIZES = [f"data.sources.{f}.{k}={n}" for f in ("gfn1", "gfn2", "dft") for k, n in (("n_train", 48), ("n_val", 16),
                                                                                     ("n_test", 32))]  # fmt: skip
COMMON = [*SIZES, "trainer.max_epochs=3", "data.batch_size=8", "threads=1", "trainer.enable_progress_bar=false",
          "logger=csv", "seed=0", "data.fidelity=dft"]  # fmt: skip
PRETRAINED = "pretrain_gfn2"

# kind: its overrides; "{from}" is the pre-trained run dir
INDEPENDENT = {
    "scratch": ["strategy=scratch"],
    PRETRAINED: ["strategy=pretrain", "strategy.fidelities=[gfn2]"],
    "pretrain_gfn1_gfn2": ["strategy=pretrain", "strategy.fidelities=[gfn1,gfn2]"],
    "multihead": ["strategy=multihead", "fidelities=[dft,gfn2]"],
    "multihead_fixed": [
        "strategy=multihead",
        "fidelities=[dft,gfn2]",
        "strategy.sampling.mode=fixed",
        "strategy.sampling.fixed={dft:4}",
    ],  # fmt: skip
    "multihead_energy_only": ["strategy=multihead", "fidelities=[dft,gfn2]", "strategy.use_forces=false"],
    "multihead_loss_weights": [
        "strategy=multihead",
        "fidelities=[dft,gfn2]",
        "++loss.per_fidelity={dft:{energy_weight:50}}",
    ],  # fmt: skip
    "pretrain_finetune": ["strategy=pretrain_finetune"],
    "pretrain_finetune_frozen_eval": [
        "strategy=pretrain_finetune",
        "strategy/params@strategy.finetune.params=frozen_backbone",
        "strategy.finetune.eval_pretrain=true",
    ],  # fmt: skip
}
FINETUNES = {
    "finetune_full": [],
    "finetune_frozen_backbone": ["strategy/params=frozen_backbone"],
    "finetune_partial": ["strategy/params=partial"],
    "finetune_new_keep": ["strategy.head=new", "strategy.reference=keep"],
    "finetune_eval_pretrain": ["strategy.eval_pretrain=true"],
    "finetune_lr_scale_1": ["strategy.lr_scale=1"],
}


def run_kind(kind: str, overrides: list[str], label: str) -> Path:
    run_dir = RUNS / label / kind
    command = [sys.executable, "-m", "mfff.cli.train", *COMMON, *overrides, f"hydra.run.dir={run_dir}",
               f"paths.cache_dir={RUNS / label / 'cache'}"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    print(f"{label}: {kind} done", flush=True)
    return run_dir


def snapshot(run_dir: Path) -> dict:
    record = json.loads((run_dir / "metrics.json").read_text())
    return {key: record.get(key) for key in ("metrics", "epochs", "steps", "best_epoch", "n_train")}


def run_all(label: str) -> dict:
    with ThreadPoolExecutor(2) as pool:
        dirs = dict(zip(INDEPENDENT, pool.map(lambda k: run_kind(k, INDEPENDENT[k], label), INDEPENDENT)))
        source = dirs[PRETRAINED]
        finetune = {k: ["strategy=finetune", f"strategy.from={source}", *v] for k, v in FINETUNES.items()}
        dirs.update(zip(finetune, pool.map(lambda k: run_kind(k, finetune[k], label), finetune)))
    return {kind: snapshot(path) for kind, path in sorted(dirs.items())}


def differences(before, after, path: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        return [line for k in sorted(set(before) | set(after))
                for line in differences(before.get(k), after.get(k), f"{path}.{k}" if path else k)]  # fmt: skip
    return [] if before == after else [f"{path}: {before!r} -> {after!r}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", help="run every kind and write regress/<label>.json")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="labels of two snapshots")
    args = parser.parse_args()
    if args.label:
        revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE)
        result = {"revision": revision.stdout.strip(), "kinds": run_all(args.label)}
        atomic_write_text(HERE / f"{args.label}.json", json.dumps(result, indent=1, sort_keys=True) + "\n")
    if args.compare:
        before, after = (json.loads((HERE / f"{name}.json").read_text())["kinds"] for name in args.compare)
        changed = differences(before, after)
        print("\n".join(changed) or f"all {len(before)} kinds bit-identical")
        sys.exit(1 if changed else 0)


if __name__ == "__main__":
    main()
