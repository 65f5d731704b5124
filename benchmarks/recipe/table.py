"""The recipe study's Markdown table from results.json: mean and spread over seeds per arm, backbone, strategy, N.

python benchmarks/recipe/table.py [--arms before after ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"


def spread(values: list[float]) -> str:
    mean = statistics.mean(values)
    if len(values) == 1:
        return f"{mean:.1f}"
    return f"{mean:.1f} ± {statistics.stdev(values):.1f}"


def table(results: dict, arms: list[str] | None) -> str:
    groups = defaultdict(list)
    for record in results.values():
        if arms is None or record["arm"] in arms:
            groups[(record["backbone"], record["strategy"], record["n_train"], record["arm"])].append(record)
    order = {arm: i for i, arm in enumerate(arms or [])}
    lines = [
        "| backbone | strategy | N dft | recipe | seeds | forces MAE [meV/Å] | forces RMSE [meV/Å] "
        "| energy MAE [meV/atom] | best epoch | wall [s] |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (backbone, strategy, n, arm), records in sorted(
        groups.items(), key=lambda item: (item[0][0], item[0][1], item[0][2], order.get(item[0][3], 99), item[0][3])
    ):
        column = lambda name, records=records: [r[name] for r in records]  # noqa: E731
        best = ", ".join(str(r["best_epoch"]) for r in sorted(records, key=lambda r: r["seed"]))
        lines.append(
            f"| {backbone} | {strategy} | {n} | {arm} | {len(records)} | {spread(column('forces_mae'))} "
            f"| {spread(column('forces_rmse'))} | {spread(column('energy_per_atom_mae'))} | {best} "
            f"| {statistics.median(column('wall_s')):.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="+", help="these arms, in this order (default: all)")
    args = parser.parse_args()
    print(table(json.loads(RESULTS.read_text()), args.arms))


if __name__ == "__main__":
    main()
