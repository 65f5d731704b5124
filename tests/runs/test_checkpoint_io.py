"""Checkpoint writes are atomic: a write that dies part-way leaves the previous checkpoint whole, and no stray file."""

import pytest
import torch

from mfff.runs.checkpoint_io import AtomicCheckpointIO


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    real_save = torch.save

    def dies_half_way(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a zip")  # what a kill mid-write leaves behind
        raise KeyboardInterrupt  # a BaseException, like the SystemExit of a signal

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    saved = torch.load(path, weights_only=True)
    assert saved["epoch"] == 1 and torch.equal(saved["w"], torch.ones(3))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # the temporary file is gone
    io.save_checkpoint({"epoch": 3, "w": torch.zeros(3)}, path)
    assert torch.load(path, weights_only=True)["epoch"] == 3


def test_the_temporary_file_is_beside_the_checkpoint(tmp_path, monkeypatch):
    """Beside it, so the final rename stays on one filesystem (Lightning's writer uses the system temp dir)."""
    import mfff.utils.atomic as atomic

    renames = []
    real_replace = atomic.os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda src, dst: renames.append((src, dst)) or real_replace(src, dst))
    AtomicCheckpointIO().save_checkpoint({"epoch": 0}, tmp_path / "best.ckpt")
    ((source, target),) = renames
    assert str(source).startswith(str(tmp_path / ".best.ckpt.")) and str(target) == str(tmp_path / "best.ckpt")


def test_storage_options_are_refused():
    with pytest.raises(TypeError, match="storage_options"):
        AtomicCheckpointIO().save_checkpoint({}, "x.ckpt", storage_options={"a": 1})


WRITER = """
import sys, torch
from mfff.runs.checkpoint_io import AtomicCheckpointIO
io, step = AtomicCheckpointIO(), 0
while True:  # a new 16 MB checkpoint again and again, until killed
    step += 1
    io.save_checkpoint({"step": step, "w": torch.full((4_000_000,), float(step))}, sys.argv[1])
    print(step, flush=True)
"""


def test_kill_9_during_writes_never_leaves_a_torn_checkpoint(tmp_path):
    """A real process saving a checkpoint over and over is killed at random points, mostly mid-write (a write takes
    tens of ms): each time the file is a whole checkpoint, of a step it reported saved or the one after."""
    import os
    import random
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    path = tmp_path / "last.ckpt"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    rng = random.Random(0)
    for _ in range(3):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env, stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip()  # one checkpoint saved: writing is under way
        time.sleep(rng.uniform(0.05, 0.4))
        writer.send_signal(signal.SIGKILL)
        reported = writer.communicate()[0].split()
        saved = torch.load(path, weights_only=True)
        assert torch.equal(saved["w"], torch.full((4_000_000,), float(saved["step"])))
        assert saved["step"] >= int(reported[-1]) if reported else saved["step"] >= 1
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".last.ckpt.")) == ["last.ckpt"]
    # the killed writes' temporary files go with the next save
    AtomicCheckpointIO().save_checkpoint({"step": 0}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
