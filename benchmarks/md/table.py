"""The MD benchmark's tables (markdown) from results.json: `python benchmarks/md/table.py [results.json]`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# (what is compared, the arm, the arm it is divided by)
RATIOS = [
    ("neighbour-list skin (1 Å vs rebuilt every step)", "mfff PaiNN-s", "mfff PaiNN-s, no skin"),
    ("compiled vs eager PaiNN-s", "mfff PaiNN-s, compiled", "mfff PaiNN-s"),
    ("exported PaiNN-s (metatomic-ase) vs native", "PaiNN-s exported, metatomic-ase", "mfff PaiNN-s"),
    ("exported MACE-s (metatomic-ase) vs native", "mfff MACE-s exported, metatomic-ase", "mfff MACE-s"),
    ("mfff MACE-s vs mace-torch's MACECalculator", "mfff MACE-s", "mace-torch MACECalculator, same size"),
]


def tables(results: dict) -> str:
    lines = [
        "| model | dtype | molecule | NVE ps | drift, meV/atom/ps | max deviation, meV/atom |",
        "|---|---|---|---|---|---|",
    ]
    for r in results["drift"]:
        lines.append(f"| {r['model']} | {r['dtype']} | {r['molecule']} | {r['ps']:g} "
                     f"| {r['drift_meV_per_atom_ps']:+.4f} | {r['max_deviation_meV_per_atom']:.3f} |")  # fmt: skip
    speed = {(r["arm"], r["system"]): r["median_steps_per_s"] for r in results["speed"]}
    # the smallest system first ("ethanol (9 atoms)" before "... (198 atoms, ...)")
    systems = sorted({r["system"] for r in results["speed"]}, key=lambda s: int(s.split("(")[1].split()[0]))
    setup = {r["arm"]: r["setup_s"] for r in results["speed"] if "setup_s" in r}
    lines += ["", "| arm | " + " | ".join(f"{s}, steps/s" for s in systems) + " | set-up, s |",
              "|---|" + "---|" * (len(systems) + 1)]  # fmt: skip
    for arm in dict.fromkeys(r["arm"] for r in results["speed"]):
        lines.append(f"| {arm} | " + " | ".join(_number(speed.get((arm, s))) for s in systems)
                     + f" | {_number(setup.get(arm))} |")  # fmt: skip
    lines += [
        "",
        "| comparison | " + " | ".join(f"{s}, ratio" for s in systems) + " |",
        "|---|" + "---|" * len(systems),
    ]
    for what, arm, base in RATIOS:
        ratios = [speed[(arm, s)] / speed[(base, s)] if (arm, s) in speed and (base, s) in speed else None
                  for s in systems]  # fmt: skip
        lines.append(f"| {what} | " + " | ".join("-" if r is None else f"{r:.2f}x" for r in ratios) + " |")
    if results.get("neighbour_list"):
        lines += ["", "| system | skin, Å | neighbour list, ms/step | rebuilds / steps |", "|---|---|---|---|"]
        for r in results["neighbour_list"]:
            lines.append(f"| {r['system']} | {r['skin']:g} | {r['median_ms_per_step']:.2f} | "
                         f"{r['rebuilds']} / {r['steps']} |")  # fmt: skip
    return "\n".join(lines)


def _number(value) -> str:
    return "-" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results.json"
    print(tables(json.loads(path.read_text())))
