"""Sweeps run as real SLURM jobs through hydra-submitit-launcher (hydra/launcher=slurm_cpu) on a single-node SLURM
started for the test; a job warned with SIGUSR1 ahead of its time limit saves, requeues itself and finishes from its
checkpoint."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.train.conftest import QUICK

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["strategy=scratch", "data.fidelity=gfn2", "data.sources.gfn2.n_train=32", "data.sources.gfn2.n_val=16",
         "data.sources.gfn2.n_test=16", "threads=1", *QUICK]  # fmt: skip
LAUNCHER = ["hydra/launcher=slurm_cpu", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2",
            "hydra.launcher.timeout_min=30"]  # fmt: skip


def scontrol_job(job_id: str, env: dict) -> dict:
    out = subprocess.run(["scontrol", "show", "job", job_id], env=env, capture_output=True, text=True, check=True)
    return dict(re.findall(r"(\w+)=(\S+)", out.stdout))


def final_state(job_id: str, env: dict, timeout: float = 60.0) -> dict:
    """The job as `scontrol` shows it once it has ended. submitit's master returns as soon as a job has written its
    result, while SLURM still shows the job RUNNING (or COMPLETING) until its process has exited."""
    deadline = time.monotonic() + timeout
    while (state := scontrol_job(job_id, env))["JobState"] in ("PENDING", "RUNNING", "COMPLETING"):
        assert time.monotonic() < deadline, f"job {job_id} still {state['JobState']} after {timeout:.0f} s"
        time.sleep(0.2)
    return state


@pytest.fixture
def sweep():
    """Starts `mfff-train -m` sweeps through the SLURM launcher; a sweep still waiting when its test ends is killed."""
    started = []

    def start(sweep_dir: Path, overrides: list[str], env: dict) -> subprocess.Popen:
        command = [sys.executable, "-m", "mfff.cli.train", "-m", *LAUNCHER, f"hydra.sweep.dir={sweep_dir}", *overrides]
        started.append(subprocess.Popen(command, cwd=sweep_dir.parent, env={**env, "PYTHONPATH": str(ROOT)},
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))  # fmt: skip
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.slurm
def test_a_two_job_sweep_runs_as_slurm_jobs(local_slurm, sweep, tmp_path):
    process = sweep(tmp_path / "sweep", [*SMALL, "trainer.max_epochs=2", "seed=0,1"], local_slurm)
    stdout, stderr = process.communicate(timeout=900)
    assert process.returncode == 0, stderr[-3000:]
    job_ids = set()
    for job in (0, 1):
        record = json.loads((tmp_path / "sweep" / str(job) / "metrics.json").read_text())
        assert record["status"] == "finished" and record["seed"] == job and record["epochs"] == 2
        assert record["metrics"]["test"]["gfn2"]["forces_mae"] > 0
        slurm = record["slurm"]
        assert slurm["node"] and slurm["restarts"] == 0
        # the scheduler's own view of the job metrics.json names
        state = final_state(slurm["job_id"], local_slurm)
        assert state["JobState"] == "COMPLETED" and state["Partition"] == "debug", state
        assert (tmp_path / "sweep" / ".submitit" / slurm["job_id"]).is_dir()  # submitit's log folder of that job
        job_ids.add(slurm["job_id"])
    assert len(job_ids) == 2


@pytest.mark.slurm
def test_sigusr1_before_the_time_limit_requeues_the_job_which_resumes_from_its_checkpoint(local_slurm, sweep, tmp_path):
    process = sweep(tmp_path / "sweep", [*SMALL, "trainer.max_epochs=60", "seed=0", "resume=auto"], local_slurm)
    run = tmp_path / "sweep" / "0"
    deadline = time.monotonic() + 600
    while not (run / "checkpoints" / "last.ckpt").is_file():  # training is under way
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the job never started training"
        time.sleep(0.2)
    jobs = subprocess.run(["squeue", "-h", "-o", "%i"], env=local_slurm, capture_output=True, text=True, check=True)
    (job_id,) = jobs.stdout.split()
    # what SLURM sends signal_delay_s before the time limit (sbatch --signal=USR1@...), to the job's tasks
    subprocess.run(["scancel", "--signal=USR1", job_id], env=local_slurm, check=True)
    # SLURM holds a requeued batch job for 2 minutes; let it start again at once
    while scontrol_job(job_id, local_slurm)["JobState"] != "PENDING":
        assert process.poll() is None and time.monotonic() < deadline, "the job was not requeued"
        time.sleep(0.5)
    # but not within the second slurmd revoked the old run's credential: it compares whole seconds, refuses the new
    # one ("Job credential revoked") and the job ends for good (seen once: the sweep then waited forever)
    time.sleep(2.0)
    update = subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], env=local_slurm,
                            capture_output=True, text=True)  # fmt: skip
    assert update.returncode == 0, (update.stderr, scontrol_job(job_id, local_slurm))
    stdout, stderr = process.communicate(timeout=900)
    assert process.returncode == 0, stderr[-3000:]
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "finished" and record["epochs"] == 60
    assert record["slurm"]["job_id"] == job_id and record["slurm"]["restarts"] == 1  # the same job, run again
    assert record["resumed_from"] == str(run / "checkpoints" / "interrupted.ckpt")
    log = (tmp_path / "sweep" / ".submitit" / job_id / f"{job_id}_0_log.err").read_text()
    assert "requeued as SLURM job" in log or "received SIGUSR1" in log
