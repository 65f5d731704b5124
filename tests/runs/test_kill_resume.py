"""A killed run resumed with resume=auto ends where the uninterrupted run ends: the same final metrics (1e-6
relative; on this CPU in deterministic mode they are bitwise equal), for SIGTERM and SIGUSR1 (saved mid-epoch, the
training loader resumed where it stopped) and kill -9 (from the last epoch's checkpoint), in one stage and in each
stage of pretrain_finetune."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mfff.errors import Interrupted
from mfff.runs.run import train
from tests.helpers import compose_config
from tests.train.conftest import QUICK

ROOT = Path(__file__).resolve().parents[2]
DETERMINISTIC = ["threads=1", "trainer.deterministic=true", "data.num_workers=0"]
SCRATCH = ["strategy=scratch", "data.fidelity=gfn2", "data.sources.gfn2.n_train=32", "data.sources.gfn2.n_val=16",
           "data.sources.gfn2.n_test=16", "trainer.max_epochs=5", *QUICK, *DETERMINISTIC]  # fmt: skip
# 4 steps an epoch in both stages (32 structures, batch 8)
TWO_STAGE = ["strategy=pretrain_finetune", "data.fidelity=dft", "data.sources.gfn2.n_train=32",
             "data.sources.gfn2.n_val=16", "data.sources.gfn2.n_test=16", "data.sources.dft.n_train=32",
             "data.sources.dft.n_val=16", "data.sources.dft.n_test=16", "trainer.max_epochs=6", *QUICK,
             *DETERMINISTIC]  # fmt: skip
# the processes killed from outside pause at the start of each epoch from KILL_AT on: the watcher sees KILL_AT epochs
# saved and kills while the run is still at that point, however fast the machine (else it may finish between looks)
KILL_AT = 2
PACE = ["+callbacks.pace._target_=tests.runs.signal_at.Pace", f"+callbacks.pace.epoch={KILL_AT}"]


def flat(metrics: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def assert_same_result(resumed: dict, reference: dict) -> None:
    assert resumed["status"] == "finished" and resumed["epochs"] == reference["epochs"]
    assert resumed["steps"] == reference["steps"] and resumed["best_epoch"] == reference["best_epoch"]
    for part in ("metrics", "pretrain"):
        got, want = flat(resumed.get(part) or {}), flat(reference.get(part) or {})
        numbers = {k for k, v in want.items() if isinstance(v, float) and not k.endswith(("wall_s", "cpu_s"))}
        assert numbers and set(got) >= numbers or part == "pretrain"
        for key in numbers:
            assert math.isclose(got[key], want[key], rel_tol=1e-6), (part, key, got[key], want[key])


def train_here(run_dir: Path, overrides: list[str]) -> dict:
    """The run's record as metrics.json holds it, like the records of the killed processes."""
    return json.loads(train(compose_config("train", [f"paths.output_dir={run_dir}", *overrides])).to_json())


@pytest.fixture(scope="module")
def scratch_reference(tmp_path_factory):
    return train_here(tmp_path_factory.mktemp("scratch_reference"), SCRATCH)


@pytest.fixture(scope="module")
def two_stage_reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_stage_reference")
    return train_here(root / "run", [*TWO_STAGE, f"paths.cache_dir={root / 'cache'}"])


@pytest.mark.parametrize(("name", "step"), [("SIGTERM", 6), ("SIGUSR1", 6)])
def test_a_signal_mid_epoch_saves_and_resume_auto_ends_as_the_uninterrupted_run(
    scratch_reference, tmp_path, name, step
):
    signal_at = ["+callbacks.signal_at._target_=tests.runs.signal_at.SignalAt", f"+callbacks.signal_at.step={step}",
                 f"+callbacks.signal_at.name={name}"]  # fmt: skip
    with pytest.raises(Interrupted) as stopped:
        train_here(tmp_path, [*SCRATCH, *signal_at])
    # step 6 is the 3rd of epoch 1's 4 batches; SIGUSR1 is acted on at the next batch end
    assert (stopped.value.signal, stopped.value.epoch) == (name, 1)
    assert stopped.value.step == (6 if name == "SIGTERM" else 7)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "interrupted" and record["interrupted"]["checkpoint"].endswith("interrupted.ckpt")
    assert "resume=auto" in str(stopped.value)
    # the same command (callbacks are settings a resume checks); the signal's step has passed and it does not fire again
    resumed = train_here(tmp_path, [*SCRATCH, *signal_at, "resume=auto"])
    assert_same_result(resumed, scratch_reference)
    assert not (tmp_path / "checkpoints" / "interrupted.ckpt").exists()  # a finished run is not resumed from it


def _start(run_dir: Path, overrides: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "mfff.cli.train", f"hydra.run.dir={run_dir}", *overrides]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command, cwd=run_dir.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def _epochs_saved(checkpoint_dir: Path) -> int:
    """Epochs finished according to the last-epoch checkpoint (0 before the first)."""
    last = checkpoint_dir / "last.ckpt"
    if not last.is_file():
        return 0
    import torch

    try:
        return int(torch.load(last, map_location="cpu", weights_only=True)["epoch"]) + 1
    except Exception:  # being replaced right now (the rename is atomic, the read may race it): ask again
        return 0


def kill_when(process: subprocess.Popen, checkpoint_dirs, epochs: int, how: int) -> str:
    """Send `how` once a checkpoint dir matching `checkpoint_dirs()` has `epochs` finished epochs; the stderr."""
    deadline = time.monotonic() + 600
    while not any(_epochs_saved(d) >= epochs for d in checkpoint_dirs()):
        assert process.poll() is None, f"finished before it could be killed: {process.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, "training never got that far"
        time.sleep(0.02)
    os.kill(process.pid, how)
    _, stderr = process.communicate(timeout=300)
    return stderr


def resume_auto(run_dir: Path, overrides: list[str]) -> dict:
    result = subprocess.run([sys.executable, "-m", "mfff.cli.train", f"hydra.run.dir={run_dir}", *overrides,
                             "resume=auto"], cwd=run_dir.parent, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((run_dir / "metrics.json").read_text())


def test_kill_9_after_some_epochs_resumes_from_the_last_epoch_to_the_same_result(scratch_reference, tmp_path):
    run = tmp_path / "run"
    paced = [*SCRATCH, *PACE]
    process = _start(run, paced)
    kill_when(process, lambda: [run / "checkpoints"], epochs=KILL_AT, how=signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL and not (run / "metrics.json").exists()
    assert_same_result(resume_auto(run, paced), scratch_reference)
    # resume=auto on a finished run does not train it again
    finished = (run / "metrics.json").read_bytes()
    again = subprocess.run([sys.executable, "-m", "mfff.cli.train", f"hydra.run.dir={run}", *paced, "resume=auto"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert again.returncode == 0 and "finished before with this config; skipped" in again.stdout, again.stderr[-2000:]
    assert (run / "metrics.json").read_bytes() == finished


@pytest.mark.parametrize(
    "order",
    # the second order repeats the first's two kills in the other stages: `-m slow` (the default suite's time, issue 22)
    [("SIGTERM", "SIGKILL"), pytest.param(("SIGKILL", "SIGTERM"), marks=pytest.mark.slow)],
)
def test_pretrain_finetune_killed_in_each_stage_resumes_to_the_same_result(two_stage_reference, tmp_path, order):
    """A real process stopped in the pre-training (its checkpoints are in the cache's partial entry), resumed, then
    stopped again in the fine-tune, and resumed to the end."""
    run, cache = tmp_path / "run", tmp_path / "cache"
    overrides = [*TWO_STAGE, *PACE, f"paths.cache_dir={cache}"]
    stages = {"pretrain": lambda: list((cache / "pretrain").glob("*.partial/checkpoints")),
              "finetune": lambda: [run / "checkpoints"]}  # fmt: skip
    for (stage, dirs), how in zip(stages.items(), order, strict=True):
        process = _start(run, overrides + (["resume=auto"] if stage == "finetune" else []))
        stderr = kill_when(process, dirs, epochs=KILL_AT, how=getattr(signal, how))
        if how == "SIGTERM":
            assert process.returncode == 4, stderr[-3000:]  # saved, exits non-zero, says how to go on
            assert f"interrupted by SIGTERM in stage {stage}" in stderr and "resume=auto" in stderr
            record = json.loads((run / "metrics.json").read_text())
            assert record["status"] == "interrupted" and record["interrupted"]["stage"] == stage
        else:
            assert process.returncode == -signal.SIGKILL
    resumed = resume_auto(run, overrides)
    assert resumed["pretrain"]["cache"] == "reused"  # the resumed pre-training finished in the middle run
    assert_same_result(resumed, two_stage_reference)


def test_the_schedule_length_is_counted_without_building_the_loader():
    """`stepping_batches` gives Lightning's `estimated_stepping_batches` from the data module's epoch length, so the
    training loader is first built after a resumed run's state is restored (else its mid-epoch state is lost)."""
    from types import SimpleNamespace

    from mfff.data.datamodule import MultiFidelityDataModule
    from mfff.train.module import stepping_batches

    def trainer(**changes):
        data = MultiFidelityDataModule.__new__(MultiFidelityDataModule)  # only its epoch length is read
        data.steps_per_epoch = lambda world: 14 // world
        settings = dict(datamodule=data, world_size=2, limit_train_batches=1.0, accumulate_grad_batches=2,
                        max_epochs=3, max_steps=-1)  # fmt: skip
        return SimpleNamespace(**{**settings, **changes})

    assert stepping_batches(trainer()) == 4 * 3  # 7 batches a rank, 2 to a step
    assert stepping_batches(trainer(max_steps=10)) == 10
    assert stepping_batches(trainer(limit_train_batches=5)) == 3 * 3
    assert stepping_batches(trainer(limit_train_batches=0.5)) == 2 * 3


def test_sigusr1_to_one_ddp_rank_stops_both_at_the_same_step_and_the_run_resumes(tmp_path):
    """Two real DDP processes; only rank 0 is signalled. The ranks agree to stop at the same batch end (else the other
    would wait in its next all-reduce forever), save one checkpoint mid-epoch, exit 4, and resume=auto finishes."""
    run = tmp_path / "run"
    overrides = ["trainer=ddp", "trainer.accelerator=cpu", "strategy=scratch", "data.fidelity=gfn2",
                 "data.sources.gfn2.n_train=64", "data.sources.gfn2.n_val=16", "data.sources.gfn2.n_test=16",
                 "trainer.max_epochs=3", *QUICK, "threads=1"]  # fmt: skip  # 4 steps an epoch on each rank
    signal_at = ["+callbacks.signal_at._target_=tests.runs.signal_at.SignalAt", "+callbacks.signal_at.step=5",
                 "+callbacks.signal_at.name=SIGUSR1", "+callbacks.signal_at.rank=0"]  # fmt: skip
    command = [sys.executable, "-m", "mfff.cli.train", f"hydra.run.dir={run}", *overrides]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    stopped = subprocess.run([*command, *signal_at], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=600)  # fmt: skip
    assert stopped.returncode == 4, stopped.stderr[-3000:]
    record = json.loads((run / "metrics.json").read_text())["interrupted"]
    assert (record["signal"], record["epoch"], record["step"]) == ("SIGUSR1", 1, 6)  # acted on at the next batch end
    import torch

    assert torch.load(record["checkpoint"], map_location="cpu", weights_only=True)["global_step"] == 6
    resumed = subprocess.run([*command, *signal_at, "resume=auto"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = json.loads((run / "metrics.json").read_text())
    assert final["status"] == "finished" and final["steps"] == 12 and final["resumed_from"] == record["checkpoint"]
