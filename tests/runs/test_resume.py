"""Resuming continues the same run: from a run dir (its last checkpoint), with its CSV history kept, a longer run
applied, and any setting the checkpoint would silently override refused."""

import csv

import pytest
import torch

from mfff.analyze.evaluate import evaluate
from mfff.errors import UserError
from mfff.runs.resume import latest_checkpoint
from mfff.runs.run import train
from tests.helpers import compose_config
from tests.train.conftest import quick_overrides

SCRATCH = ["strategy=scratch", "data.fidelity=gfn2", "scheduler=none"]


def _train(run_dir, *extra, epochs):
    return train(compose_config("train", [*quick_overrides(run_dir, ("gfn2",), 16, epochs), *SCRATCH, *extra]))


def _epochs_in_history(run_dir) -> list[int]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as handle:
        return sorted({int(row["epoch"]) for row in csv.DictReader(handle) if row.get("train/loss_epoch")})


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("first")
    return run_dir, _train(run_dir, epochs=2)


def test_resume_from_the_run_dir_continues_history_and_length(first_run, tmp_path):
    run_dir, _ = first_run
    copy = tmp_path / "run"
    __import__("shutil").copytree(run_dir, copy)
    assert _epochs_in_history(copy) == [0, 1]
    record = _train(copy, f"resume={copy}", epochs=4)
    assert record.epochs == 4 and record.steps == 4 * 2  # 16 structures in batches of 8
    assert _epochs_in_history(copy) == [0, 1, 2, 3]  # the first two epochs' rows are still there


@pytest.mark.parametrize(
    ("override", "difference"),
    [
        ("optimizer.lr=0.02", "optimizer.lr: 0.005 (checkpoint) -> 0.02 (now)"),
        ("scheduler=plateau", "scheduler._target_: None (checkpoint) -> 'mfff.train.schedules.Plateau' (now)"),
        ("loss.forces_weight=1.0", "loss.forces_weight: 10.0 (checkpoint) -> 1.0 (now)"),
        ("data.sources.gfn2.n_train=24", "data.sources.gfn2.n_train: 16 (checkpoint) -> 24 (now)"),
    ],
)
def test_resume_refuses_settings_the_checkpoint_would_override(first_run, tmp_path, override, difference):
    run_dir, _ = first_run
    with pytest.raises(UserError) as error:
        _train(tmp_path, f"resume={run_dir}", override, epochs=3)
    assert difference in str(error.value)
    assert "start a new run from its weights with strategy=finetune" in str(error.value)
    assert not (tmp_path / "checkpoints").exists()


def test_eval_takes_a_run_dir(first_run, tmp_path):
    run_dir, record = first_run
    cfg = compose_config("eval", [f"ckpt={run_dir}", f"paths.output_dir={tmp_path}", "data.sources.gfn2.n_test=32"])
    report = evaluate(cfg)
    assert report["checkpoint"] == record.best_checkpoint
    assert report["test_sizes"]["gfn2"] == {"test": 32, "test_mol": 32}
    assert report["metrics"]["test"]["gfn2"]["forces_mae"] == pytest.approx(
        record.metrics["test"]["gfn2"]["forces_mae"], rel=1e-4
    )


def test_latest_checkpoint_is_the_later_step_and_a_tie_goes_to_the_signals(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    payload = {"weights": torch.zeros(1000), "hyper_parameters": {"model": {}}}  # what read_checkpoint requires
    torch.save({"global_step": 12, **payload}, tmp_path / "last.ckpt")
    assert latest_checkpoint(tmp_path) == tmp_path / "last.ckpt"
    torch.save({"global_step": 9, **payload}, tmp_path / "interrupted.ckpt")  # a stale one from an earlier stop
    assert latest_checkpoint(tmp_path) == tmp_path / "last.ckpt"
    torch.save({"global_step": 14, **payload}, tmp_path / "interrupted.ckpt")  # mid-epoch, after last.ckpt
    assert latest_checkpoint(tmp_path) == tmp_path / "interrupted.ckpt"
    torch.save({"global_step": 12, **payload}, tmp_path / "interrupted.ckpt")  # saved at the epoch's end
    assert latest_checkpoint(tmp_path) == tmp_path / "interrupted.ckpt"
    (tmp_path / "last.ckpt").write_bytes(b"torn")  # not a checkpoint: the error names the file
    with pytest.raises(UserError, match="last.ckpt is not a readable PyTorch checkpoint"):
        latest_checkpoint(tmp_path)
