"""The 3-epoch demo beside 0, 1 and 2 busy processes, with mfff's thread policy (`threads=auto`) and fixed counts.
A fixed-count cell stops repeating once its runs took --control-budget-s (a loaded 2-thread run takes minutes).

    python benchmarks/threads/run.py [--repeats 5] [--out benchmarks/threads/results.json]

Each busy process is a pure-Python spin loop (a stand-in for another job on a shared node). Every run is a fresh
`mfff-train experiment=demo trainer.max_epochs=3` process; its wall time includes start-up. Results are appended
to --out as they finish, so an interrupted benchmark resumes where it stopped. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPIN = "while True: pass"
# (busy processes, threads setting, repeats or None for --repeats)
CELLS = [(busy, threads) for busy in (0, 1, 2) for threads in ("auto", "1", "2")]


def run_demo(threads: str) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    with tempfile.TemporaryDirectory() as run_dir:
        command = [
            sys.executable,
            "-m",
            "mfff.cli.train",
            "experiment=demo",
            "trainer.max_epochs=3",
            "trainer.enable_progress_bar=false",
            f"threads={threads}",
            f"hydra.run.dir={run_dir}",
        ]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    chosen = next(
        (line.split("using ", 1)[1] for line in (result.stdout + result.stderr).splitlines() if "CPU thread" in line),
        "?",
    )
    return wall, chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--control-repeats", type=int, default=3, help="repeats of the fixed thread counts")
    parser.add_argument(
        "--control-budget-s",
        type=float,
        default=450.0,
        help="stop repeating a fixed-thread cell once its runs took this long (a loaded 2-thread run takes minutes)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
    import torch

    results["machine"] = {
        "cpus": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    for busy, threads in CELLS:
        wanted = args.repeats if threads == "auto" else args.control_repeats
        for _ in range(wanted):
            done = [r["wall_s"] for r in results["runs"] if (r["busy"], r["threads"]) == (busy, threads)]
            if len(done) >= wanted or (threads != "auto" and sum(done) >= args.control_budget_s):
                break
            spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(busy)]
            try:
                time.sleep(1.0)  # let the spinners get going, as a job already running would be
                wall, chosen = run_demo(threads)
            finally:
                for p in spinners:
                    p.kill()
                    p.wait()
            results["runs"].append(
                {
                    "busy": busy,
                    "threads": threads,
                    "wall_s": wall,
                    "chosen": chosen,
                    "date": time.strftime("%Y-%m-%d %H:%M"),
                }
            )
            args.out.write_text(json.dumps(results, indent=1) + "\n")
            print(f"busy={busy} threads={threads}: {wall:.1f} s ({chosen})", flush=True)
    print(table(results))


def table(results: dict) -> str:
    lines = [
        "| busy processes | threads | runs | median wall [s] | min-max [s] | vs idle (same setting) |",
        "|---|---|---|---|---|---|",
    ]
    medians = {}
    for busy, threads in CELLS:
        walls = [r["wall_s"] for r in results["runs"] if (r["busy"], r["threads"]) == (busy, threads)]
        if not walls:
            continue
        medians[busy, threads] = statistics.median(walls)
        idle = medians.get((0, threads))
        ratio = f"{medians[busy, threads] / idle:.2f}x" if idle else "-"
        lines.append(
            f"| {busy} | {threads} | {len(walls)} | {medians[busy, threads]:.1f} | "
            f"{min(walls):.1f}-{max(walls):.1f} | {ratio} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
