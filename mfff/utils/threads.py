"""How many CPU threads a process uses: the CPUs it may run on, the other work it starts, and the current load.

Why not torch's default (one thread per core): with small molecular graphs, two threads buy nothing on an idle
2-core machine, and beside two busy processes the threads wait on each other's time slices (the demo took 9x
longer; benchmarks/threads). So the default, `auto`, takes the CPUs this process may use (SLURM's allocation,
the affinity mask, a cgroup quota), divides them among the processes it starts (DDP ranks, data workers), and
leaves out the CPUs other processes are keeping busy right now. An explicit number, or OMP_NUM_THREADS set by
the user, wins over `auto`.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mfff.errors import UserError

ENV_VARIABLE = "OMP_NUM_THREADS"


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str

    def __str__(self) -> str:
        return f"{self.threads} CPU thread{'s' if self.threads != 1 else ''} ({self.reason})"


def usable_cpus() -> tuple[int, str]:
    """The CPUs this process may use, and where that number comes from."""
    slurm = os.environ.get("SLURM_CPUS_PER_TASK")
    if slurm and slurm.isdigit() and int(slurm) > 0:
        return int(slurm), "SLURM_CPUS_PER_TASK"
    cpus, source = len(os.sched_getaffinity(0)), "affinity"
    quota = cgroup_cpu_quota()
    if quota is not None and quota < cpus:
        return max(1, math.floor(quota)), "cgroup cpu.max"
    return cpus, source


def cgroup_cpu_quota(path: Path = Path("/sys/fs/cgroup/cpu.max")) -> float | None:
    """CPUs allowed by a cgroup v2 quota ('max 100000' means none)."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _cpu_times(cpus: set[int]) -> tuple[float, float]:
    """(idle, total) jiffies summed over `cpus`, from /proc/stat."""
    idle = total = 0.0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        numbers = [float(v) for v in values[:8]]
        idle += numbers[3] + numbers[4]  # idle + iowait
        total += sum(numbers)
    return idle, total


def idle_cpus(seconds: float = 0.25) -> float | None:
    """How many of this process's CPUs sat idle over `seconds` (None where /proc/stat cannot tell)."""
    try:
        cpus = os.sched_getaffinity(0)
        idle0, total0 = _cpu_times(cpus)
        time.sleep(seconds)
        idle1, total1 = _cpu_times(cpus)
    except (OSError, ValueError):
        return None
    if total1 <= total0:
        return None
    return len(cpus) * (idle1 - idle0) / (total1 - total0)


def choose_threads(requested="auto", processes: int = 1, workers: int = 0, key: str = "threads") -> ThreadChoice:
    """The thread count per process.

    Args:
        requested: 'auto' or a positive number (`key` names the config entry for the error message).
        processes: processes this job runs on the node (e.g. DDP ranks on one machine), sharing the CPUs.
        workers: data-loader worker processes each of them starts.
    """
    if requested not in (None, "auto"):
        try:
            threads = int(requested)
        except (TypeError, ValueError):
            threads = 0
        if threads < 1 or str(threads) != str(requested).strip():
            raise UserError(f"{key}={requested!r} must be 'auto' or a positive whole number of threads")
        return ThreadChoice(threads, f"{key}={threads}")
    if os.environ.get(ENV_VARIABLE, "").strip().isdigit() and int(os.environ[ENV_VARIABLE]) > 0:
        return ThreadChoice(int(os.environ[ENV_VARIABLE]), f"{ENV_VARIABLE} is set")
    cpus, source = usable_cpus()
    share = max(1, cpus // max(1, processes) - max(0, workers))
    parts = [f"{cpus} usable CPUs ({source})"]
    if processes > 1:
        parts.append(f"{processes} processes")
    if workers > 0:
        parts.append(f"{workers} data workers each")
    idle = idle_cpus() if share > 1 else None
    if idle is not None:
        free = max(1, round(idle / max(1, processes)))
        if free < share:
            parts.append(f"only {idle:.1f} CPUs idle")
            share = free
    return ThreadChoice(share, "auto: " + ", ".join(parts) + f"; set {key}=N to override")


def apply_threads(choice: ThreadChoice) -> None:
    """Use `choice.threads` in torch (if loaded), in OpenMP libraries loaded from now on (tblite, PySCF), and in
    the processes this one starts (DDP ranks)."""
    os.environ[ENV_VARIABLE] = str(choice.threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(choice.threads)
