"""A data set 10x the built-in one, trained on from memory and streamed from disk: memory and throughput.

    python benchmarks/speed/streaming.py              # builds runs/builtin_x10.db once (~1 min), then 3 settings
    python benchmarks/speed/streaming.py --table      # the table of streaming.json

The data: every frame of the built-in dataset (all four fidelities' labels) ten times, each copy after the first
turned by its own random rotation, with the forces turned alike: the labels stay exactly those of a real
calculation on that geometry. Written with `mfff.data.readers.ase_db.write_database` to an ASE SQLite db.

Each setting runs in a fresh process (so its peak memory is its own): mfff's data module reads the GFN2 source from
the db, either whole (`reader.lazy=false`: every structure in memory, neighbour lists cached) or streamed
(`reader.lazy=true`: only atomic numbers, energy and tags in memory, each structure read from the db when its batch
is built), with 0 or 1 data workers; then one epoch of PaiNN-s training (mfff's step and optimiser, batch 32, one
thread) over the 10x training set. Recorded: the resident memory after start-up and model (`base`), after the data
module's setup, and its peak over the epoch; the setup time; structures/s over the epoch and the share of it spent
waiting for batches. Results: `streaming.json`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from mfff.utils.atomic import atomic_write_text  # noqa: E402

RESULTS = HERE / "streaming.json"
DATABASE = HERE / "runs" / "builtin_x10.db"
COPIES = 10
SETTINGS = {"memory": (False, 0), "streamed": (True, 0), "streamed, 1 worker": (True, 1)}


def rotated_copies(frames, copies: int, seed: int = 0):
    """Each frame `copies` times: as it is, then turned by random rotations (positions and every force array)."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    for copy in range(copies):
        for atoms in frames:
            atoms = atoms.copy()
            if copy:
                turn = Rotation.random(random_state=rng).as_matrix()
                atoms.positions = atoms.positions @ turn.T
                for key in [k for k in atoms.arrays if k.startswith("forces")]:
                    atoms.arrays[key] = atoms.arrays[key] @ turn.T
            atoms.info["copy"] = copy
            yield atoms


def build_database() -> None:
    from mfff.data import builtin
    from mfff.data.readers.ase_db import write_database
    from mfff.data.readers.ase_file import read_frames

    if DATABASE.exists():
        return
    frames = read_frames(builtin.path("builtin"))
    start = time.perf_counter()
    count = write_database(rotated_copies(frames, COPIES), DATABASE)
    print(f"wrote {count} frames ({DATABASE.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - start:.0f} s")


def memory_mib() -> dict:
    """Resident memory now and its peak so far (Linux /proc)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {"rss": int(fields["VmRSS"].split()[0]) / 1024, "peak": int(fields["VmHWM"].split()[0]) / 1024}


def measure(setting: str, threads: int, batch: int) -> dict:
    """One setting, in this process: data module on the db, one training epoch."""
    import torch
    from step_profile import SECTIONS, build, timed_epoch

    from mfff.utils.instantiate import instantiate

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    lazy, workers = SETTINGS[setting]
    reader = {"_target_": "mfff.data.readers.ASEReader", "path": str(DATABASE), "energy_key": "energy_gfn2",
              "forces_key": "forces_gfn2", "cost_key": "cost_gfn2", "lazy": lazy}  # fmt: skip
    base = memory_mib()["rss"]
    start = time.perf_counter()
    cfg, data, potential, loss_fn = build("painn", "s", batch, workers, "gfn2", reader=reader)
    setup_s = time.perf_counter() - start
    after_setup = memory_mib()["rss"]
    optimizer = instantiate(cfg.optimizer)(params=potential.parameters())
    epoch = timed_epoch(data, potential, loss_fn, optimizer)
    total = sum(epoch["times"].values())
    source = data.sources["gfn2"]
    return {
        "setting": setting, "lazy": lazy, "workers": workers, "threads": threads, "batch": batch,
        "structures_read": len(source.all_structures()), "structures_trained": epoch["structures"],
        "database_mib": DATABASE.stat().st_size / 2**20, "setup_s": setup_s, "base_mib": base,
        "after_setup_mib": after_setup, "peak_mib": memory_mib()["peak"],
        "structures_per_s": epoch["structures"] / total, "data_share": epoch["times"]["data"] / total,
        "ms_per_step": {name: 1e3 * epoch["times"][name] / epoch["steps"] for name in SECTIONS},
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {threads} thread(s)", "torch": torch.__version__,
    }  # fmt: skip


def table(records: list[dict]) -> str:
    lines = ["| data | workers | structures read | setup s | memory after setup (MiB over base) | peak (MiB) | "
             "structures/s | data share |", "|---" * 8 + "|"]  # fmt: skip
    for r in records:
        held = r["after_setup_mib"] - r["base_mib"]
        lines.append(f"| {'streamed from the db' if r['lazy'] else 'in memory'} | {r['workers']} | "
                     f"{r['structures_read']:,} | {r['setup_s']:.0f} | {held:.0f} | {r['peak_mib']:.0f} | "
                     f"{r['structures_per_s']:.0f} | **{100 * r['data_share']:.1f}%** |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--table", action="store_true", help="print the table of streaming.json and stop")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the child process of one setting
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.threads, args.batch)))
        return
    records = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    if not args.table:
        build_database()
        for setting in args.settings:
            child = [sys.executable, __file__, "--measure", setting, f"--threads={args.threads}",
                     f"--batch={args.batch}"]  # fmt: skip
            output = subprocess.run(child, check=True, capture_output=True, text=True).stdout
            record = json.loads(output.strip().splitlines()[-1])
            print(setting, f"{record['structures_per_s']:.0f} structures/s, peak {record['peak_mib']:.0f} MiB")
            records = [r for r in records if r["setting"] != setting] + [record]
            atomic_write_text(RESULTS, json.dumps(records, indent=1) + "\n")
    print(table(records))


if __name__ == "__main__":
    main()
