"""The accuracy benchmark's Markdown table and error-vs-wall-time plot from results.json.

python benchmarks/accuracy/table.py          # prints the table, writes error_vs_wall_time.png
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
PLOT = HERE / "error_vs_wall_time.png"
ARMS = ["scratch", "pretrain", "ft_naive", "ft_naive_e0", "ft_multihead", "pretrain_finetune", "multihead"]


def median_and_range(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


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


def total_wall(record: dict) -> float:
    """Training time of the model as a user pays it: the run itself plus, for fine-tunes, the pre-training."""
    return (record.get("train_wall_s") or record["wall_s"]) + (record.get("pretrain_wall_s") or 0.0)


def plot(results: dict) -> None:
    """DFT test force RMSE against training wall time, one marker per run, for every DFT-target arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = {"mace-torch": "o", "mfff-mace": "s", "mfff-painn": "^"}
    colours = dict(zip([a for a in ARMS if a != "pretrain"], plt.cm.tab10.colors))
    for record in results.values():
        if "failed" in record or record["arm"] == "pretrain" or not record.get("wall_s"):
            continue
        ax.scatter(total_wall(record), record["forces_rmse"], marker=markers.get(record["tool"], "x"),
                   color=colours[record["arm"]], facecolors="none" if record["n"] == 50 else None)  # fmt: skip
    for tool, marker in markers.items():
        ax.scatter([], [], marker=marker, color="grey", label=tool)
    for arm, colour in colours.items():
        ax.scatter([], [], marker="s", color=colour, label=arm)
    ax.set(xscale="log", yscale="log", xlabel="training wall time incl. pre-training, one thread [s]",
           ylabel="DFT test force RMSE [meV/Å]", title="open: N = 50 DFT labels, filled: N = 200")  # fmt: skip
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=120)


def main() -> None:
    results = json.loads(RESULTS.read_text())
    print(table(results))
    plot(results)
    print(f"\nplot: {PLOT}")


if __name__ == "__main__":
    main()
