"""A run stopped by SIGTERM (what SLURM sends before it kills a job) saves its state, says where, exits non-zero,
and continues from there with resume."""

import json
import os
import signal
import subprocess
import sys
import time

from mfff.train.checkpoints import read_checkpoint
from tests.train.conftest import QUICK


def test_sigterm_saves_a_checkpoint_exits_4_and_the_run_resumes(tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "mfff.cli.train", "strategy=scratch", "data.fidelity=gfn2",
               "data.sources.gfn2.n_train=32", "data.sources.gfn2.n_val=16", "data.sources.gfn2.n_test=16",
               "trainer.max_epochs=40", *QUICK, f"hydra.run.dir={run}"]  # fmt: skip
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not (run / "checkpoints" / "last.ckpt").is_file():  # an epoch is done: training is under way
        assert process.poll() is None and time.monotonic() < deadline, "training never got going"
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 4, stderr[-3000:]
    (line,) = [x for x in stderr.splitlines() if x.startswith("mfff-train: error:")]
    saved = run / "checkpoints" / "interrupted.ckpt"
    assert "interrupted by SIGTERM in stage scratch at epoch" in line and f"resume={saved}" in line
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "interrupted" and record["interrupted"]["checkpoint"] == str(saved)
    stopped_at = record["interrupted"]["epoch"]
    assert 1 <= stopped_at < 40 and read_checkpoint(saved)["global_step"] == record["interrupted"]["step"] > 0
    resumed = subprocess.run([*command, f"resume={saved}"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=900)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "finished" and record["epochs"] > stopped_at
