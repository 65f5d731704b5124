"""A full disk during training: one line naming the directory, the last good checkpoint kept, the run recorded as
interrupted, and `resume=auto` finishing it once there is space. The disk is a real tmpfs, filled by the run."""

import json
import subprocess
import sys

import pytest

from mfff.cli.errors import fail_on_full_disk
from mfff.errors import Interrupted

# one PaiNN-s checkpoint is about 1 MB: best and last of epoch 0 fit in 2.6 MB, a third write does not
SIZE = "2600k"


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:  # not root: as the slurm tests, this one needs a machine it may mount on
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def _train(run_dir, cache, *extra):
    command = [sys.executable, "-m", "mfff.cli.train", "debug=quick", "strategy=scratch", "data.fidelity=gfn2",
               "trainer.max_epochs=3", "threads=1", f"hydra.run.dir={run_dir}", f"paths.cache_dir={cache}",
               *extra]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_a_full_disk_stops_the_run_in_one_line_and_resume_auto_finishes_it(small_disk, tmp_path):
    run_dir = small_disk / "run"
    stopped = _train(run_dir, tmp_path / "cache")
    assert stopped.returncode == 4, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr
    last = run_dir / "checkpoints" / "last.ckpt"
    assert stopped.stderr.strip().splitlines()[-1] == (
        f"mfff-train: error: stopped by a full disk: no space left on device in {run_dir}, in stage scratch at epoch "
        f"1 (step 12): kept the last good checkpoint {last}; free space there, then continue with the same command "
        f"and resume=auto, or resume={last}"
    )
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "interrupted"
    assert record["interrupted"]["signal"] == "ENOSPC" and record["interrupted"]["checkpoint"] == str(last)
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))  # no torn temporary file left behind
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # space freed
    resumed = _train(run_dir, tmp_path / "cache", "resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "finished" and record["epochs"] == 3 and record["resumed_from"] == str(last)


def test_a_full_disk_outside_training_is_one_line(capsys):
    """torch.save reports a full disk as a RuntimeError whose context is the OSError (as measured on a tmpfs)."""
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError as err:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from err
    except RuntimeError as wrapped:
        with pytest.raises(SystemExit) as exit_:
            fail_on_full_disk("mfff-train", wrapped)
    assert exit_.value.code == 4
    assert capsys.readouterr().err.startswith("mfff-train: error: no space left on device in ")
    stopped = Interrupted("ENOSPC", "scratch", 3, 40, "/runs/x/checkpoints/best.ckpt",
                          disk="no space left on device in /runs/x")  # fmt: skip
    stopped.record_written = False
    assert str(stopped).endswith("resume=auto, or resume=/runs/x/checkpoints/best.ckpt (metrics.json could not be "
                                 "written either)")  # fmt: skip
