"""The accuracy benchmark's Markdown table, its headline comparison and error-vs-CPU-time plot from results.json.

python benchmarks/accuracy/table.py [results.json]   # prints the table and the comparison, writes error_vs_cpu_time.png
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
PLOT = HERE / "error_vs_cpu_time.png"
LR_CANDIDATES = ("ft_multihead_lr0.01", "ft_multihead_lr0.001")  # run.py's REPLAY_LRS
ARMS = ["scratch", "pretrain", "ft_naive", "ft_naive_e0", "ft_multihead", *LR_CANDIDATES, "ft_multihead_lr",
        "mh_joint", "pretrain_finetune", "multihead"]  # fmt: skip


def median_and_range(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def with_chosen_lr(results: dict) -> dict:
    """Adds the arm `ft_multihead_lr`: per tool, N and seed, the learning-rate candidate with the lower DFT
    validation force RMSE (never the test's), once every candidate has run. Its CPU time is that of all candidates:
    a user who picks the better of two runs pays for both."""
    candidates = defaultdict(list)
    for record in results.values():
        if record["arm"] in LR_CANDIDATES and "failed" not in record:
            candidates[(record["tool"], record["n"], record["seed"])].append(record)
    chosen = {}
    for (tool, n, seed), runs in candidates.items():
        if len(runs) == len(LR_CANDIDATES):
            best = min(runs, key=lambda run: run["val_forces_rmse"])
            cpu = [run.get("cpu_s") for run in runs]
            chosen[f"{tool}/ft_multihead_lr/n{n}/s{seed}"] = {
                **best, "arm": "ft_multihead_lr", "chosen": best["arm"],
                "cpu_s": sum(cpu) if None not in cpu else None,
                "wall_s": sum(run["wall_s"] for run in runs),
            }  # fmt: skip
    return results | chosen


def grouped(results: dict) -> dict:
    groups = defaultdict(list)
    for record in results.values():
        groups[(record["n"], ARMS.index(record["arm"]), record["arm"], record["tool"])].append(record)
    return dict(sorted(groups.items()))


def table(results: dict) -> str:
    lines = [
        "| N dft | arm | tool | seeds | forces RMSE [meV/Å] | forces MAE [meV/Å] | energy MAE [meV/atom] "
        "| parameters | wall [s] | CPU [s] |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (n, _, arm, tool), records in grouped(results).items():
        ok = [r for r in records if "failed" not in r]
        if not ok:
            lines.append(f"| {n or '-'} | {arm} | {tool} | 0 | failed: {records[0]['failed']} | | | | | |")
            continue
        column = lambda name, ok=ok: [r[name] for r in ok]  # noqa: E731
        if arm == "ft_multihead_lr":
            arm += " (" + ", ".join(r["chosen"].removeprefix("ft_multihead_") for r in ok) + ")"
        lines.append(
            f"| {n or '-'} | {arm} | {tool} | {len(ok)} | {median_and_range(column('forces_rmse'))} "
            f"| {median_and_range(column('forces_mae'))} | {median_and_range(column('energy_per_atom_mae'))} "
            f"| {ok[0]['parameters']:,} | {statistics.median(column('wall_s')):.0f} | {cpu_seconds(ok)} |"
        )
    return "\n".join(lines)


def cpu_seconds(records: list[dict]) -> str:
    """Median CPU time of the runs that recorded it (run.py since 2026-12-01): a one-thread run's time on an idle
    core, where the wall time also counts the other runs that shared the cores."""
    cpu = [r["cpu_s"] for r in records if r.get("cpu_s")]
    return f"{statistics.median(cpu):.0f} ({len(cpu)})" if cpu else "-"


def best_arms(results: dict, n: int) -> tuple[tuple, tuple]:
    """(median test force RMSE, tool, arm, seeds) of mfff's best and of mace-torch's best arm at N DFT labels, any
    arm with 3 seeds; the learning-rate candidates count only through `ft_multihead_lr`, which chose by
    validation."""
    medians = []
    for (size, _, arm, tool), records in grouped(results).items():
        ok = [r["forces_rmse"] for r in records if "failed" not in r]
        if size == n and arm not in LR_CANDIDATES and len(ok) >= 3:
            medians.append((statistics.median(ok), tool, arm, len(ok)))
    mfff = min((m for m in medians if m[1].startswith("mfff")), default=None)
    mace = min((m for m in medians if m[1] == "mace-torch"), default=None)
    return mfff, mace


def comparison(results: dict) -> str:
    lines = []
    for n in sorted({r["n"] for r in results.values() if r["n"]}):
        mfff, mace = best_arms(results, n)
        if mfff is None or mace is None:
            lines.append(f"N = {n}: no comparison yet (it needs an arm with 3 seeds from each tool)")
            continue
        (ours, our_tool, our_arm, _), (theirs, _, arm, _) = mfff, mace
        lines.append(f"N = {n}: mfff's best, {our_tool} {our_arm}, {ours:.1f} meV/Å; mace-torch's best, {arm}, "
                     f"{theirs:.1f}: ratio {ours / theirs:.2f} ({100 * (1 - ours / theirs):.0f}% lower)")  # fmt: skip
    return "\n".join(lines)


def total_cpu(record: dict, results: dict) -> float | None:
    """CPU seconds of the model as a user pays for it: the run itself plus, for fine-tunes, the pre-training; None
    where either was not recorded."""
    own = record.get("train_cpu_s") or record.get("cpu_s")
    finetune = record["arm"].startswith("ft_") or record["arm"] == "pretrain_finetune"
    pretrain = record.get("pretrain_cpu_s") if finetune else 0.0
    if finetune and pretrain is None and record["tool"] == "mace-torch":  # a record from before it was copied in
        pretrain = results.get(f"mace-torch/pretrain/n0/s{record['seed']}", {}).get("cpu_s")
    return own + pretrain if own and pretrain is not None else None


def plot(results: dict, path: Path = PLOT) -> None:
    """DFT test force RMSE against training CPU time, one marker per run that recorded it, every DFT-target arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    markers = {"mace-torch": "o", "mfff-mace": "s", "mfff-painn": "^"}
    arms = [a for a in ARMS if a != "pretrain" and a not in LR_CANDIDATES]
    colours = dict(zip(arms, plt.cm.tab10.colors))
    shown = set()
    for record in results.values():
        cpu = None if "failed" in record or record["arm"] not in colours else total_cpu(record, results)
        if cpu is None:
            continue
        shown.add(record["arm"])
        ax.scatter(cpu, record["forces_rmse"], marker=markers.get(record["tool"], "x"), color=colours[record["arm"]],
                   facecolors="none" if record["n"] == 50 else None)  # fmt: skip
    for tool, marker in markers.items():
        ax.scatter([], [], marker=marker, color="grey", label=tool)
    for arm in arms:
        if arm in shown:
            ax.scatter([], [], marker="s", color=colours[arm], label=arm)
    ax.set(xscale="log", yscale="log", xlabel="training CPU time incl. pre-training, one thread [s]",
           ylabel="DFT test force RMSE [meV/Å]", title="open: N = 50 DFT labels, filled: N = 200")  # fmt: skip
    from mfff.analyze.plots import log_axes

    log_axes(ax)  # labelled ticks over the whole range, not only at powers of ten
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS  # e.g. results-2.json of a `--epochs 2` check
    results = with_chosen_lr(json.loads(path.read_text()))
    print(table(results))
    print()
    print(comparison(results))
    plot_path = PLOT if path == RESULTS else path.with_suffix(".png")
    plot(results, plot_path)
    print(f"\nplot: {plot_path}")


if __name__ == "__main__":
    main()
