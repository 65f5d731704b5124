"""A single-node SLURM (munged, slurmctld, slurmd) on this machine, with its state and logs in one directory.

What CI uses to test mfff's submitit launcher against a real scheduler. Run by hand:

    python tests/slurm/local_slurm.py start /tmp/slurm   # prints `export SLURM_CONF=...`
    python tests/slurm/local_slurm.py stop /tmp/slurm

Needs Debian's `slurmctld slurmd slurm-client munge` (`.ci/run` installs them) and root, as slurmd does.
No accounting daemon: submitit's `sacct` poll warns "Bypassing sacct error" and reads the state from squeue.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DAEMONS = ("slurmd", "slurmctld", "munged")  # stopped in this order: the node, the controller, then auth
PARTITION = "debug"


class SlurmUnavailable(RuntimeError):
    """SLURM could not be brought up here; the message says which step failed and shows its log."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 - 1024  # leave the OS 1 GiB, as a real node would
    raise SlurmUnavailable("cannot read MemTotal from /proc/meminfo")


def slurm_conf(root: Path, node: str, cpus: int) -> str:
    """The smallest slurm.conf that runs jobs here: no cgroups, no accounting daemon, everything under `root`."""
    return f"""\
ClusterName=mfff-local
SlurmctldHost={node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root / "munge" / "munge.socket"}
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "slurmctld.log"}
SlurmdLogFile={root / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=10
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={_memory_mb()} State=UNKNOWN
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def _log_tail(path: Path, lines: int = 15) -> str:
    if not path.is_file():
        return f"({path} was not written)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _wait(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise SlurmUnavailable(f"{what} within {timeout:.0f} s; last lines of {log}:\n{_log_tail(log)}")


def _run(cmd: list[str], env: dict, log: Path) -> None:
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SlurmUnavailable(
            f"`{' '.join(cmd)}` exited {result.returncode}: {result.stderr.strip()}\nlast lines of {log}:\n"
            f"{_log_tail(log)}"
        )


def environment(root: Path) -> dict[str, str]:
    """os.environ with SLURM_CONF pointing at this cluster, for sbatch/squeue/sacct and the jobs they start."""
    return {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}


def start(root: Path, timeout: float = 60.0) -> dict[str, str]:
    """Write the configs, start the three daemons and wait until the node is idle; returns the client env."""
    missing = [name for name in (*DAEMONS, "sbatch", "sinfo") if shutil.which(name) is None]
    if missing:
        raise SlurmUnavailable(
            f"not installed: {', '.join(missing)}; install Debian's slurmctld slurmd slurm-client munge "
            "(apt-get install -y slurmctld slurmd slurm-client munge), as .ci/run does"
        )
    if os.geteuid() != 0:
        raise SlurmUnavailable("slurmd must run as root to start jobs as their user; run the slurm tests as root")
    root = root.resolve()
    for sub in ("munge", "state", "spool"):
        (root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    root.chmod(0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o400)
    node = socket.gethostname().split(".")[0]
    (root / "slurm.conf").write_text(slurm_conf(root, node, os.cpu_count() or 1))
    env = environment(root)

    munge_log = root / "munge" / "munged.log"
    _run(
        [
            "munged", "--force", f"--key-file={key}", f"--socket={root / 'munge' / 'munge.socket'}",
            f"--pid-file={root / 'munged.pid'}", f"--log-file={munge_log}", f"--seed-file={root / 'munge' / 'seed'}",
        ],
        env, munge_log,
    )  # fmt: skip
    _run(["slurmctld", "-i"], env, root / "slurmctld.log")  # -i: ignore state from an earlier run in this dir
    _run(["slurmd"], env, root / "slurmd.log")

    def node_idle() -> bool:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True)
        return out.returncode == 0 and out.stdout.strip().rstrip("*") in {"idle", "mixed", "allocated"}

    _wait(node_idle, timeout, "the node did not come up idle", root / "slurmd.log")
    return env


def stop(root: Path, timeout: float = 20.0) -> None:
    """Stop the daemons started in `root` by the PIDs they wrote; SIGKILL any left after `timeout`."""
    for name in DAEMONS:
        pid_file = root / f"{name}.pid"
        if not pid_file.is_file():
            continue
        pid = int(pid_file.read_text().split()[0])
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("root", type=Path, help="directory for the configs, state and logs")
    args = parser.parse_args()
    if args.action == "stop":
        stop(args.root)
        return
    try:
        env = start(args.root)
    except SlurmUnavailable as error:
        sys.exit(f"local SLURM did not start: {error}")
    print(f"export SLURM_CONF={env['SLURM_CONF']}")


if __name__ == "__main__":
    main()
