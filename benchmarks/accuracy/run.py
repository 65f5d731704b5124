"""mfff and mace-torch side by side on identical extxyz files (export.py): DFT test errors, parameters, wall time.

    python benchmarks/accuracy/run.py                         # everything, resumable (finished runs are kept)
    python benchmarks/accuracy/run.py --arms scratch --tools mace-torch --seeds 0   # a subset

Arms (N = DFT training labels; every run trains EPOCHS epochs per stage at BATCH structures per step):
- `scratch`: DFT only, N = 50 and 200;
- `pretrain`: GFN2 (2,000 frames) only, then fine-tuned on DFT at N = 50 and 200:
  mace-torch `--foundation_model` with `--multiheads_finetuning False` (`ft_naive`; `ft_naive_e0` with its E0s
  re-estimated on the DFT data) and with replay of the GFN2 data (`ft_multihead`, its multihead fine-tuning, the
  docs' recommended way); mfff `strategy=pretrain_finetune`;
  `ft_multihead_lr<lr>`: the replay fine-tune with `--force_mh_ft_lr` at lr 1e-2 (its README's fine-tuning
  example) and 1e-3, of which `table.py` keeps, per N and seed, the one with the lower DFT validation force RMSE
  (`ft_multihead_lr`);
- `multihead`: GFN2 2,000 + DFT N at once (mfff `strategy=multihead`; mace-torch `mh_joint`: its multi-head training
  from scratch, a `--heads` dict with one head per method, each with its own E0s fitted on its own data).

Every model is evaluated by the same code (`evaluate`): its ASE calculator on `dft_test.xyz` (and on `dft_val.xyz`,
for choosing between runs). Each run is a fresh process with one thread; it records its CPU time (`cpu_s`), which
other runs sharing the cores do not stretch. Results: `results.json`; `table.py` writes the Markdown table.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mfff.utils.atomic import atomic_write_text

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RUNS = HERE / "runs"
DATA = RUNS / "data"
RESULTS = HERE / "results.json"
EPOCHS, BATCH = 100, 10
SIZES = (50, 200)
REPLAY_LRS = (1e-2, 1e-3)  # mace-torch's README fine-tunes at 1e-2; its replay mode alone would force 1e-4
MACE_SIZE = ["--hidden_irreps=32x0e", "--num_interactions=2", "--r_max=5.0", "--max_ell=3", "--correlation=3"]


# ----------------------------------------------------------------------------------------------- the runs
def mace_command(name: str, work: Path, train: str, val: str, seed: int, *extra: str) -> list[str]:
    """mace-torch's own trainer as its README trains a model: float32, EMA 0.99, AMSGrad, E0s fitted on the
    training data, its default loss (forces 100 : energy/atom 1), learning rate and plateau schedule.
    `--restart_latest`: a run killed part-way resumes from its last checkpoint, as a user would rerun it."""
    e0s = [] if any(arg.startswith("--E0s") for arg in extra) else ["--E0s=average"]
    return [
        sys.executable, "-m", "mace.cli.run_train", f"--name={name}", f"--work_dir={work}",
        f"--train_file={DATA / train}", f"--valid_file={DATA / val}", f"--test_file={DATA / 'dft_test.xyz'}",
        "--model=MACE", *MACE_SIZE, *e0s, "--default_dtype=float32", "--device=cpu", f"--seed={seed}",
        f"--batch_size={BATCH}", "--valid_batch_size=50", f"--max_num_epochs={EPOCHS}", "--ema", "--ema_decay=0.99",
        "--amsgrad", "--energy_key=REF_energy", "--forces_key=REF_forces", "--restart_latest", *extra,
    ]  # fmt: skip


def mfff_command(run_dir: Path, backbone: str, strategy: str, n: int, seed: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "mfff.cli.train", f"--config-dir={RUNS / 'conf'}", "data=bench",
        f"data.sources.dft.train={DATA / f'dft_train_{n}.xyz'}", f"strategy={strategy}",
        f"model/backbone={backbone}", f"seed={seed}", f"trainer.max_epochs={EPOCHS}", f"data.batch_size={BATCH}",
        "threads=1", "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}",
        f"paths.cache_dir={RUNS / 'mfff' / backbone / f'cache-s{seed}'}", *extra,
    ]  # fmt: skip


def write_mfff_data_config() -> None:
    """The two sources of the exported files, as a user would write them (README: "Your own data")."""
    conf = RUNS / "conf" / "data"
    conf.mkdir(parents=True, exist_ok=True)
    reader = "{energy_key: REF_energy, forces_key: REF_forces}"
    (conf / "bench.yaml").write_text(
        "defaults:\n  - default\n  - source@sources.gfn2: extxyz\n  - source@sources.dft: extxyz\n  - _self_\n"
        "fidelity: dft\nsources:\n"
        f"  gfn2: {{fidelity: gfn2, train: {DATA / 'gfn2_train.xyz'}, val: {DATA / 'gfn2_val.xyz'}, "
        f"test: {DATA / 'gfn2_test.xyz'}, reader: {reader}}}\n"
        f"  dft: {{fidelity: dft, train: {DATA / 'dft_train_50.xyz'}, val: {DATA / 'dft_val.xyz'}, "
        f"test: {DATA / 'dft_test.xyz'}, reader: {reader}}}\n"
    )


def arms(seed: int) -> list[dict]:
    """Every run of one seed, in an order that builds each pre-trained model before its fine-tunes."""
    out = []
    mace = RUNS / "mace-torch"
    pretrained = mace / f"pretrain-s{seed}" / f"pretrain-s{seed}.model"
    out.append({"tool": "mace-torch", "arm": "pretrain", "n": 0, "fidelity": "gfn2", "model": pretrained,
                "command": mace_command(f"pretrain-s{seed}", pretrained.parent, "gfn2_train.xyz", "gfn2_val.xyz",
                                        seed)})  # fmt: skip
    for n in SIZES:
        replay = [f"--foundation_model={pretrained}", "--multiheads_finetuning=True",
                  f"--pt_train_file={DATA / 'gfn2_train.xyz'}", "--E0s=estimated"]  # fmt: skip
        for arm, extra in (
            ("scratch", []),
            ("ft_naive", [f"--foundation_model={pretrained}", "--multiheads_finetuning=False"]),
            # the naive fine-tune with E0s re-estimated on the fine-tuning data (least squares), as mfff re-fits E0
            ("ft_naive_e0", [f"--foundation_model={pretrained}", "--multiheads_finetuning=False", "--E0s=estimated"]),
            ("ft_multihead", replay),  # at the learning rate mace-torch sets in this mode, 1e-4
            *((f"ft_multihead_lr{lr:g}", [*replay, "--force_mh_ft_lr=True", f"--lr={lr:g}"]) for lr in REPLAY_LRS),
        ):
            name = f"{arm}-n{n}-s{seed}"
            command = mace_command(name, mace / name, f"dft_train_{n}.xyz", "dft_val.xyz", seed, *extra)
            out.append({"tool": "mace-torch", "arm": arm, "n": n, "fidelity": "dft", "head": "Default",
                        "model": mace / name / f"{name}.model", "command": command})  # fmt: skip
        name = f"mh_joint-n{n}-s{seed}"
        heads = f"--heads={joint_heads(n)}"
        command = mace_command(name, mace / name, f"dft_train_{n}.xyz", "dft_val.xyz", seed, heads)
        out.append({"tool": "mace-torch", "arm": "mh_joint", "n": n, "fidelity": "dft", "head": "dft",
                    "model": mace / name / f"{name}.model", "command": command})  # fmt: skip
    for backbone in ("mace", "painn"):
        for n in SIZES:
            for arm, strategy in (("scratch", "scratch"), ("pretrain_finetune", "pretrain_finetune")):
                run_dir = RUNS / "mfff" / backbone / f"{arm}-n{n}-s{seed}"
                out.append({"tool": f"mfff-{backbone}", "arm": arm, "n": n, "fidelity": "dft", "model": run_dir,
                            "command": mfff_command(run_dir, backbone, strategy, n, seed)})  # fmt: skip
        for n in SIZES:
            run_dir = RUNS / "mfff" / backbone / f"multihead-n{n}-s{seed}"
            out.append({"tool": f"mfff-{backbone}", "arm": "multihead", "n": n, "fidelity": "dft", "model": run_dir,
                        "command": mfff_command(run_dir, backbone, "multihead", n, seed)})  # fmt: skip
    return out


def joint_heads(n: int) -> str:
    """mace-torch's `--heads` for training one model on both methods at once, the DFT head last (its scheduler,
    early stopping and best checkpoint follow the last head's validation loss). Each head fits its own E0s: the
    methods' absolute energies differ by thousands of eV, so one set of E0s cannot serve both."""
    files = {"gfn2": ("gfn2_train.xyz", "gfn2_val.xyz"), "dft": (f"dft_train_{n}.xyz", "dft_val.xyz")}
    heads = {head: {"train_file": str(DATA / train), "valid_file": str(DATA / val), "E0s": "average"}
             for head, (train, val) in files.items()}  # fmt: skip
    return repr(heads)


# ------------------------------------------------------------------------------------------- evaluation
def calculator(run: dict):
    if run["tool"] == "mace-torch":
        from mace.calculators import MACECalculator

        head = {"head": run["head"]} if run.get("head") else {}
        return MACECalculator(model_paths=str(run["model"]), device="cpu", default_dtype="float32", **head)
    from mfff.calculator import MFFFCalculator

    return MFFFCalculator(str(run["model"]), head=run["fidelity"])


def parameters(run: dict) -> int:
    import torch

    if run["tool"] == "mace-torch":
        return sum(p.numel() for p in torch.load(run["model"], weights_only=False).parameters())
    from mfff.train.checkpoints import load_module, resolve_checkpoint

    module = load_module(resolve_checkpoint(run["model"], "model", prefer="best"))
    return sum(p.numel() for p in module.potential.parameters())


def evaluate(run: dict, calc, split: str = "test") -> dict:
    """Errors of the model (its ASE calculator) on the fidelity's test (or val) file, computed here the same way for
    every tool."""
    from ase.io import read

    test = read(DATA / f"{run['fidelity']}_{split}.xyz", ":")
    energy, per_atom, forces = [], [], []
    for atoms in test:
        reference_e, reference_f = atoms.info["REF_energy"], atoms.arrays["REF_forces"]
        atoms.calc = calc
        error = atoms.get_potential_energy() - reference_e
        energy.append(error)
        per_atom.append(error / len(atoms))
        forces.append((atoms.get_forces() - reference_f).ravel())
    forces = np.concatenate(forces)
    return {
        "energy_mae": 1000 * float(np.mean(np.abs(energy))),
        "energy_per_atom_mae": 1000 * float(np.mean(np.abs(per_atom))),
        "forces_mae": 1000 * float(np.mean(np.abs(forces))),
        "forces_rmse": 1000 * float(np.sqrt(np.mean(forces**2))),
        "n_test": len(test),
    }


# --------------------------------------------------------------------------------------------- bookkeeping
def key(run: dict, seed: int) -> str:
    return f"{run['tool']}/{run['arm']}/n{run['n']}/s{seed}"


def load_results() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def save_result(name: str, record: dict) -> None:
    # two invocations of this script may run side by side (one per core): the lock keeps both records
    with open(RESULTS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = load_results()
        results[name] = record
        atomic_write_text(RESULTS, json.dumps(results, indent=1, sort_keys=True) + "\n")


def finished(run: dict) -> bool:
    if run["tool"] == "mace-torch":
        return Path(run["model"]).is_file()
    metrics = Path(run["model"]) / "metrics.json"
    return metrics.is_file() and json.loads(metrics.read_text()).get("status") == "finished"


def training_costs(run: dict, seed: int) -> dict:
    """mfff's own record of its training time (`wall_s`, `cpu_s`: the stage, from data to test metrics) and, for a
    fine-tune, of its pre-training, which a process timer cannot split (mfff pre-trains once per cache key); for
    mace-torch's fine-tunes, its pre-training's record."""
    if run["tool"].startswith("mfff"):
        metrics = json.loads((Path(run["model"]) / "metrics.json").read_text())
        pretrain = metrics.get("pretrain") or {}
        return {"train_wall_s": metrics.get("wall_s"), "train_cpu_s": metrics.get("cpu_s"),
                "pretrain_wall_s": pretrain.get("wall_s"), "pretrain_cpu_s": pretrain.get("cpu_s")}  # fmt: skip
    if run["arm"].startswith("ft_"):
        pretrain = load_results().get(f"mace-torch/pretrain/n0/s{seed}", {})
        return {"pretrain_wall_s": pretrain.get("wall_s"), "pretrain_cpu_s": pretrain.get("cpu_s")}
    return {}


def child_cpu_seconds() -> float:
    """CPU time of this script's finished children: a one-thread run's wall time on an idle core, which it keeps
    when several runs share the cores (their wall times then stretch)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def execute(run: dict, seed: int) -> None:
    name = key(run, seed)
    log_dir = RUNS / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / (name.replace("/", "_") + ".log")
    wall = cpu = None
    if not finished(run):
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        start, cpu_start = time.perf_counter(), child_cpu_seconds()
        with open(log_file, "w") as log:
            done = subprocess.run(run["command"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        wall, cpu = time.perf_counter() - start, child_cpu_seconds() - cpu_start
        if done.returncode != 0 or not finished(run):
            save_result(name, {"tool": run["tool"], "arm": run["arm"], "n": run["n"], "seed": seed,
                               "failed": f"exit {done.returncode}; log: {log_file.relative_to(HERE)}"})  # fmt: skip
            print(f"FAILED {name}: see {log_file}", flush=True)
            return
    previous = load_results().get(name, {})
    calc = calculator(run)
    record = {"tool": run["tool"], "arm": run["arm"], "n": run["n"], "seed": seed,
              "wall_s": round(wall, 1) if wall is not None else previous.get("wall_s"),
              "cpu_s": round(cpu, 1) if cpu is not None else previous.get("cpu_s"),
              **training_costs(run, seed), "parameters": parameters(run), **evaluate(run, calc)}  # fmt: skip
    if run["fidelity"] == "dft":  # what a user may choose a model by (the learning rate of ft_multihead_lr)
        record["val_forces_rmse"] = evaluate(run, calc, "val")["forces_rmse"]
    save_result(name, record)
    print(f"{name}: forces RMSE {record['forces_rmse']:.1f} meV/Å, {record['wall_s']} s", flush=True)


def main() -> None:
    global EPOCHS, RESULTS, RUNS, DATA
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", help="only these arms (scratch, pretrain, ft_naive, ...)")
    parser.add_argument("--tools", nargs="+", help="only these tools (mace-torch, mfff-mace, mfff-painn)")
    parser.add_argument("--sizes", nargs="+", type=int, help="only these N")
    parser.add_argument("--results", type=Path, help="write results here instead (probes of other settings)")
    parser.add_argument("mfff_overrides", nargs="*", help="after --: overrides for every mfff run (probes)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="a quick check of the commands; results go to "
                        "results-<epochs>.json unless it is the default")  # fmt: skip
    args = parser.parse_args()
    if args.epochs != EPOCHS:
        EPOCHS, RESULTS, RUNS = args.epochs, HERE / f"results-{args.epochs}.json", HERE / f"runs-{args.epochs}"
        DATA = RUNS / "data"
    if args.results:
        RESULTS = args.results
    if args.mfff_overrides:
        RUNS = RUNS / "probes" / "_".join(args.mfff_overrides).replace("/", "-").replace("=", "-")
    if not (DATA / "dft_test.xyz").is_file():
        subprocess.run([sys.executable, str(HERE / "export.py"), f"--out={DATA}"], check=True)
    write_mfff_data_config()
    for seed in args.seeds:
        selected = []
        for run in arms(seed):
            if run["tool"].startswith("mfff"):
                run["command"] += args.mfff_overrides
            arm = "ft_multihead_lr" if run["arm"].startswith("ft_multihead_lr") else run["arm"]  # both its lrs
            if (args.arms and arm not in args.arms) or (args.tools and run["tool"] not in args.tools):
                continue
            if args.sizes and run["n"] not in args.sizes and run["n"] != 0:
                continue
            selected.append(run)
        pending = [run for run in selected if not recorded(run, seed)]
        for run in selected:
            # a recorded pre-training is rebuilt when its model is gone (runs/ is not committed) and a fine-tune
            # still needs it; its record is then replaced by the new run's
            needed = run["arm"] == "pretrain" and any(other["arm"].startswith("ft_") for other in pending)
            if recorded(run, seed) and not (needed and not finished(run)):
                continue
            execute(run, seed)


def recorded(run: dict, seed: int) -> bool:
    return key(run, seed) in load_results() and "failed" not in load_results()[key(run, seed)]


if __name__ == "__main__":
    main()
