"""Two mfff-train processes on one run dir: the second is refused at start in one line and touches nothing there."""

import os
import socket
import subprocess
import sys

from mfff.runs.run_lock import LOCK_FILE, run_dir_lock
from tests.train.conftest import QUICK


def test_a_second_run_on_a_busy_run_dir_is_refused_and_leaves_it_untouched(tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "mfff.cli.train", "strategy=scratch", "data.fidelity=gfn2", *QUICK,
               f"hydra.run.dir={run}"]  # fmt: skip
    with run_dir_lock(run):  # this test process is the first run, training in `run`
        before = sorted(p.name for p in run.iterdir())
        second = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert second.returncode == 2, second.stderr[-3000:]
        assert second.stderr.strip().splitlines()[-1] == (
            f"mfff-train: error: run dir {run} is in use by another mfff-train run (pid {os.getpid()} on "
            f"{socket.gethostname()}); wait for it to end, or give this run its own hydra.run.dir"
        )
        # nothing of the first run's is touched: no csv/, checkpoints/ or metrics.json of the second (Hydra itself
        # writes .hydra/ and appends to train.log before mfff starts)
        hydra_own = {".hydra", "train.log"}
        assert sorted({p.name for p in run.iterdir()} - hydra_own) == sorted(set(before) - hydra_own)
        assert (run / LOCK_FILE).read_text().startswith(f"pid {os.getpid()} ")
    # released with its holder: the run dir takes the next run
    with run_dir_lock(run):
        pass
