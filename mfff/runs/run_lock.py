"""One mfff-train process per run dir: a second one would interleave its logs, checkpoints and metrics.json with the
first's. The lock is an `flock`, so a killed run leaves none behind (resume=auto can continue at once)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path

from pytorch_lightning.utilities import rank_zero_only

from mfff.errors import UserError

LOCK_FILE = ".mfff-train.lock"


@contextlib.contextmanager
def run_dir_lock(output_dir: Path):
    """Hold the run dir for this process (rank 0 only: the other DDP ranks of the same run share it)."""
    if rank_zero_only.rank != 0:
        yield
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise UserError(
                f"run dir {output_dir} is in use by another mfff-train run ({holder}); wait for it to end, or give "
                "this run its own hydra.run.dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
