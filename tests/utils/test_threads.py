"""The thread policy: explicit settings win; `auto` shares the usable CPUs and leaves out the busy ones."""

import os
import subprocess
import sys
import time

import pytest

from mfff.errors import UserError
from mfff.utils import threads
from mfff.utils.threads import cgroup_cpu_quota, choose_threads


@pytest.fixture
def no_env(monkeypatch):
    for name in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"):
        monkeypatch.delenv(name, raising=False)


def test_an_explicit_count_wins(no_env, monkeypatch):
    assert choose_threads(3).threads == 3 and choose_threads("4").threads == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert choose_threads("auto").threads == 5 and "OMP_NUM_THREADS" in choose_threads("auto").reason
    assert choose_threads(2).threads == 2  # the config beats the environment


@pytest.mark.parametrize("value", [0, -1, 1.5, "two", True])
def test_a_bad_count_names_the_key(value):
    with pytest.raises(UserError, match="threads=.* must be 'auto' or a positive whole number of threads"):
        choose_threads(value)


def test_auto_shares_the_allocation_among_ranks_and_workers(no_env, monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")
    monkeypatch.setattr(threads, "idle_cpus", lambda seconds=0.25: 8.0)
    choice = choose_threads("auto", processes=2, workers=1)
    assert choice.threads == 3  # 8 CPUs / 2 ranks, less one data worker each
    assert "8 usable CPUs (SLURM_CPUS_PER_TASK)" in choice.reason and "2 processes" in choice.reason
    monkeypatch.setattr(threads, "idle_cpus", lambda seconds=0.25: 2.2)  # other jobs keep most CPUs busy
    choice = choose_threads("auto", processes=1)
    assert choice.threads == 2 and "only 2.2 CPUs idle" in choice.reason
    monkeypatch.setattr(threads, "idle_cpus", lambda seconds=0.25: 0.1)
    assert choose_threads("auto").threads == 1  # never zero


def test_cgroup_quota(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_quota(tmp_path / "cpu.max") == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path / "cpu.max") is None
    assert cgroup_cpu_quota(tmp_path / "absent") is None


def test_busy_cpus_are_measured_and_left_out(no_env):
    cpus = len(os.sched_getaffinity(0))
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cpus)]
    try:
        time.sleep(0.5)
        idle = threads.idle_cpus(0.5)
        choice = choose_threads("auto")
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert idle is not None and idle < 0.5 * cpus
    assert choice.threads == 1 or cpus == 1
