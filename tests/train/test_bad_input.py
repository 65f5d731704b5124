"""Runs that would be wrong but exit 0, and inputs that used to end in a traceback: each is one line naming the key
and the fix (exit 2), and a diverged run exits 3 with a metrics.json that says where it diverged."""

import json
import logging
import pickle
import re
import subprocess
import sys
import warnings

import ase.io
import numpy as np
import pytest
from ase.build import molecule
from omegaconf.errors import MissingMandatoryValue

from mfff.calculator import MFFFCalculator
from mfff.cli.errors import user_errors
from mfff.data.readers import ASEReader
from mfff.errors import TrainingDiverged, UserError
from mfff.runs.run import train
from tests.helpers import assert_learnt, compose_config, trivial_errors
from tests.train.conftest import quick_overrides

SCRATCH = ["strategy=scratch", "data.fidelity=gfn2"]


def _config(tmp_path, *extra, epochs=1, n_train=16):
    return compose_config("train", [*quick_overrides(tmp_path, ("gfn2",), n_train, epochs), *SCRATCH, *extra])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("cutoff=0", "cutoff=0 must be a positive distance in Å"),
        ("cutoff=-2", "cutoff=-2 must be a positive distance in Å"),
        ("data.batch_size=0", "data.batch_size=0 must be >= 1"),
        ("optimizer.lr=-1", "optimizer.lr=-1 must be a positive learning rate"),
        ("trainer.max_epochs=abc", "trainer.max_epochs='abc' must be a whole number >= -1"),
        ("data.sources.gfn2.n_val=-5", "data.sources.gfn2.n_val=-5 must be a positive count"),
        ("data.sources.gfn2.n_test=-5", "data.sources.gfn2.n_test=-5 must be a positive count"),
        ("data.sources.gfn2.n_train=-5", "data.sources.gfn2.n_train=-5 must be a positive count"),
        ("threads=0", "threads=0 must be 'auto' or a positive whole number"),
    ],
)
def test_impossible_values_are_refused_before_training(tmp_path, override, message):
    with pytest.raises(UserError) as error:
        train(_config(tmp_path, override))
    assert message in str(error.value)
    assert not (tmp_path / "checkpoints").exists()  # refused before anything trained


def test_finetune_without_a_checkpoint(tmp_path):
    with pytest.raises(UserError, match="strategy.from is not set; give a run dir of mfff-train or a .ckpt file"):
        train(_config(tmp_path, "strategy=finetune"))


def test_a_diverged_run_raises_and_records_where(tmp_path):
    with pytest.raises(TrainingDiverged) as error:
        train(_config(tmp_path, "optimizer.lr=1e4", "scheduler=none", "trainer.gradient_clip_val=null", epochs=3))
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "diverged" and record["metrics"] == {}
    assert record["diverged"]["stage"] == "scratch" and record["diverged"]["epoch"] == error.value.epoch
    assert 0 <= record["diverged"]["step"] < 3 * 2  # 16 structures in batches of 8: 2 steps an epoch
    assert "training diverged in stage scratch at epoch" in str(error.value)
    assert str(tmp_path / "metrics.json") in str(error.value)


def test_the_cli_turns_errors_into_one_line_and_an_exit_code(capsys):
    for raised, code, line in [
        (UserError("data.batch_size=0 must be >= 1"), 2, "mfff-train: error: data.batch_size=0 must be >= 1"),
        (TrainingDiverged(4, 77, stage="scratch"), 3, "mfff-train: error: training diverged in stage scratch at"),
        (MissingMandatoryValue("Missing mandatory value: strategy.from"), 2, "mfff-train: error: "),
    ]:
        with pytest.raises(SystemExit) as exit_:
            with user_errors("mfff-train"):
                raise RuntimeError("a wrapper, as Hydra's") from raised
        assert exit_.value.code == code
        err = capsys.readouterr().err
        assert err.startswith(line) and len(err.strip().splitlines()) == 1
    with user_errors("mfff-train", in_sweep=True):  # a sweep goes on past a diverged job
        raise TrainingDiverged(1, 2, stage="scratch")
    with pytest.raises(KeyError):  # a bug is not dressed up as bad input
        with user_errors("mfff-train"):
            raise KeyError("bug")


def test_forces_of_the_wrong_shape(tmp_path):
    frames = [molecule("H2O"), molecule("H2O")]
    for atoms, columns in zip(frames, (3, 2)):
        atoms.info["energy_dft"] = -10.0
        atoms.new_array("forces_dft", np.zeros((3, columns)))
    ase.io.write(tmp_path / "bad.extxyz", frames)
    with pytest.raises(
        UserError, match=r"structure 1 in .*bad.extxyz: forces \(reader.forces_key\) have shape \(3, 2\)"
    ):
        ASEReader(tmp_path / "bad.extxyz", energy_key="energy_dft", forces_key="forces_dft").read()


def test_a_file_that_is_no_checkpoint(tmp_path):
    (tmp_path / "random.ckpt").write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(UserError, match="random.ckpt is not a readable PyTorch checkpoint"):
        MFFFCalculator(tmp_path / "random.ckpt", head="dft")
    (tmp_path / "pickled.ckpt").write_bytes(pickle.dumps({"state_dict": UserError("not a tensor")}, protocol=2))
    with pytest.raises(UserError, match="mfff does not unpickle"):
        MFFFCalculator(tmp_path / "pickled.ckpt", head="dft")


def test_an_unwritable_run_dir_is_one_line(tmp_path):
    (tmp_path / "a_file").write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "mfff.cli.train", *SCRATCH, f"hydra.run.dir={tmp_path}/a_file/run"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines() == [
        f"mfff-train: error: cannot write to hydra.run.dir={tmp_path}/a_file/run (Not a directory); "
        "choose a writable directory, e.g. hydra.run.dir=outputs/myrun"
    ]


def test_a_sweep_runs_every_job_and_exits_3_when_one_diverged(tmp_path):
    overrides = [o for o in quick_overrides(tmp_path, ("gfn2",), 48, 25) if "output_dir" not in o]
    result = subprocess.run(
        [
            sys.executable, "-m", "mfff.cli.train", "-m", *SCRATCH, *overrides,
            "optimizer.lr=5e-3,1e4", "scheduler=none", "trainer.gradient_clip_val=null",
            f"hydra.sweep.dir={tmp_path}/sweep",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr[-3000:]
    records = [json.loads((tmp_path / "sweep" / str(n) / "metrics.json").read_text()) for n in (0, 1)]
    assert [r["status"] for r in records] == ["finished", "diverged"]
    trivial = trivial_errors(compose_config("train", quick_overrides(tmp_path, ("gfn2",))), "gfn2", "val")
    # 25 epochs of 48 structures learn: measured 0.32x the trivial model's val forces
    assert_learnt(records[0]["metrics"]["val"]["gfn2"]["forces_mae"], trivial["forces_mae"],
                  "the finished job's val forces", at_most=0.5)  # fmt: skip
    last = result.stderr.strip().splitlines()[-1]
    assert (
        last
        == f"mfff-train: error: 1 job(s) of this sweep diverged (the others finished): {tmp_path}/sweep/1/metrics.json"
    )


def test_a_run_ends_with_its_test_errors_and_without_noise(tmp_path, caplog, capsys):
    caplog.set_level(logging.INFO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = train(
            _config(
                tmp_path,
                "strategy=multihead",
                "strategy.fidelities=[gfn1,gfn2]",
                "data.sources.gfn1.n_train=16",
                "data.sources.gfn1.n_val=16",
                epochs=1,
            )
        )
    noise = ("was called before the ``update``", "LeafSpec", "smaller than the logging interval")
    assert not [str(w.message) for w in caught if any(n in str(w.message) for n in noise)]
    assert "litlogger" not in caplog.text and "using 1 CPU thread" in caplog.text
    # not on a terminal (pytest captures stderr): a line per epoch instead of a progress bar; the best checkpoint
    # is named once, not restored aloud by validate and test again
    assert re.search(r"epoch 1/1: train/loss [\d.e+-]+, val/loss [\d.e+-]+ \([\d.]+ s\)", caplog.text), caplog.text
    assert "Restoring states from the checkpoint path" not in caplog.text
    assert caplog.text.count("evaluating the best checkpoint") == 1
    printed = capsys.readouterr().out
    assert "test set  fidelity  energy MAE [meV]  energy/atom MAE [meV/atom]  forces MAE [meV/Å]" in printed
    forces = record.metrics["test_mol"]["gfn1"]["forces_mae"]
    assert re.search(rf"test_mol\s+gfn1\s+[\d.]+\s+[\d.]+\s+{forces:.1f}", printed)
    assert f"metrics:    {tmp_path / 'metrics.json'}" in printed
    assert f"checkpoint: {record.best_checkpoint}" in printed
    assert record.stopped == "max_epochs=1 reached" and record.best_epoch == 0
    assert "(max_epochs=1 reached). Test errors of the best checkpoint (epoch 0):" in printed


def test_metrics_json_says_why_the_run_stopped_and_which_epoch_was_best(tmp_path):
    # min_delta so large that no epoch counts as an improvement: patience runs out 2 epochs after counting starts
    never_improves = ["callbacks.early_stopping.patience=2", "+callbacks.early_stopping.min_delta=1e9"]
    record = train(_config(tmp_path / "gated", *never_improves, epochs=20))
    stop = re.fullmatch(
        r"early stopping at epoch (\d+): val/loss did not improve for 2 epochs once the learning rate had decayed to "
        r"0.1x its peak",
        record.stopped,
    )
    assert stop, record.stopped
    # warm-up cosine over 20 epochs falls to 0.1x its peak after 81% of the steps: counting starts at epoch 16
    assert int(stop[1]) == 17 and record.epochs == 18 and 0 <= record.best_epoch <= 17
    ungated = "callbacks.early_stopping.lr_fraction=1.0"  # counts from the start, as Lightning's EarlyStopping
    ungated = train(_config(tmp_path / "ungated", *never_improves, ungated, epochs=20))
    assert ungated.stopped.startswith("early stopping at epoch 2: ") and ungated.epochs == 3
    constant = train(_config(tmp_path / "constant", *never_improves, "scheduler=none", epochs=20))
    assert constant.stopped.startswith("early stopping at epoch 2: ")  # no schedule: nothing to wait for
    # the best checkpoint long before the stop (its callback states predate it): still reported as an early stop
    early_best = train(_config(tmp_path / "early", *never_improves, "callbacks.model_checkpoint.mode=max", epochs=20))
    assert early_best.stopped == record.stopped and early_best.epochs == 18
    assert early_best.best_epoch < 10


def test_a_bad_finetune_setting_is_refused_before_the_pretraining(tmp_path):
    cfg = compose_config(
        "train",
        [
            *quick_overrides(tmp_path, ("gfn2", "dft"), 16, 1),
            "strategy=pretrain_finetune",
            "+strategy.finetune.trainer.max_epochs=abc",
            f"paths.cache_dir={tmp_path}/cache",
        ],
    )
    with pytest.raises(UserError, match="trainer.max_epochs='abc' must be a whole number >= -1"):
        train(cfg)
    assert not (tmp_path / "cache").exists()  # nothing was pre-trained


def test_the_progress_bar_is_shown_only_on_a_terminal(monkeypatch):
    from mfff.runs.progress import show_bar

    for terminal in (True, False):
        monkeypatch.setattr(sys.stderr, "isatty", lambda terminal=terminal: terminal)
        assert show_bar(True) is terminal and show_bar(False) is False
