"""End-to-end training on the built-in data: the loss falls, metrics.json is complete, seeds reproduce."""

import csv
import json
import math
import subprocess
import sys

from mfff.train.metrics import METRIC_NAMES
from tests.helpers import assert_sane_scale, compose_config, trivial_errors
from tests.train.conftest import quick_overrides, train_quick


def _epoch_losses(run_dir):
    with open(run_dir / "csv" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    return [float(r["train/loss_epoch"]) for r in rows if r.get("train/loss_epoch")]


def test_loss_decreases_and_metrics_json_is_complete(multihead_run):
    run_dir, metrics = multihead_run
    losses = _epoch_losses(run_dir)
    assert len(losses) == 4 and losses[-1] < 0.7 * losses[0], losses
    assert metrics["strategy"]["name"] == "multihead" and metrics["strategy"]["fidelities"] == ["gfn1", "gfn2"]
    assert metrics["strategy"]["use_forces"] is True and metrics["strategy"]["sampling"]["mode"] == "proportional"
    assert metrics["n_train"] == {"gfn1": 48, "gfn2": 48}
    assert metrics["seed"] == 0 and metrics["backbone"] == "painn" and metrics["size"] == "s"
    assert metrics["label_cost_cpu_s"]["gfn1"] > 0
    assert 0 < metrics["wall_s"] < 600  # the stage's wall time, data to test metrics
    for stage in ("val", "test", "test_mol"):
        for fidelity in ("gfn1", "gfn2"):
            values = metrics["metrics"][stage][fidelity]
            assert set(values) == set(METRIC_NAMES), (stage, fidelity)
            assert all(math.isfinite(v) and v > 0 for v in values.values())
            assert values["forces_mae"] <= values["forces_rmse"] and values["energy_mae"] <= values["energy_rmse"]
    for fidelity in ("gfn1", "gfn2"):
        trivial = trivial_errors(compose_config("train", quick_overrides(run_dir, ("gfn1", "gfn2"))), fidelity)
        for name in ("forces_mae", "energy_per_atom_mae"):
            assert_sane_scale(metrics["metrics"]["test"][fidelity][name], trivial[name], f"{fidelity} {name}")
    assert (run_dir / "checkpoints" / "best.ckpt").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()


def test_same_seed_same_metrics_other_seed_other_metrics(multihead_run, tmp_path):
    _, first = multihead_run
    again = train_quick(tmp_path / "again", epochs=4)
    assert again["metrics"] == first["metrics"]
    other = train_quick(tmp_path / "other", "seed=1", epochs=4)
    assert other["seed"] == 1 and other["metrics"] != first["metrics"]


def test_overrides_reach_the_run(tmp_path):
    metrics = train_quick(
        tmp_path,
        "model/backbone=schnet",
        "strategy=scratch",
        "data.fidelity=dft",
        "seed=1",
        fidelities=("dft",),
        n_train=100,
        epochs=2,
    )
    assert metrics["strategy"]["name"] == "scratch" and metrics["strategy"]["fidelities"] == ["dft"]
    assert metrics["n_train"] == {"dft": 100} and metrics["epochs"] == 2 and metrics["seed"] == 1
    assert metrics["backbone"] == "schnet"
    assert set(metrics["metrics"]["test"]) == {"dft", "_all"}
    assert metrics["label_cost_cpu_s"]["dft"] > 100 * 0.5  # DFT labels cost seconds each


def test_float64_on_request(tmp_path):
    import torch

    metrics = train_quick(
        tmp_path,
        "model.dtype=float64",
        "strategy=scratch",
        "data.fidelity=gfn2",
        fidelities=("gfn2",),
        n_train=16,
        epochs=1,
    )
    state = torch.load(metrics["best_checkpoint"], weights_only=False)["state_dict"]
    assert state["potential.backbone.embedding.weight"].dtype == torch.float64
    assert math.isfinite(metrics["metrics"]["test"]["gfn2"]["forces_mae"])


def test_energy_only_fidelity_trains_on_energies(tmp_path):
    metrics = train_quick(tmp_path, fidelities=("cc", "gfn2"), n_train=32, epochs=2)
    assert "forces_mae" not in metrics["metrics"]["val"]["cc"]
    assert math.isfinite(metrics["metrics"]["val"]["cc"]["energy_mae"])


def test_mfff_eval_reproduces_the_test_metrics(multihead_run, tmp_path):
    run_dir, metrics = multihead_run
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mfff.cli.eval",
            f"ckpt={metrics['best_checkpoint']}",
            f"hydra.run.dir={tmp_path}",
            "trainer.enable_progress_bar=false",
            "data.sources.gfn1.n_test=32",
            "data.sources.gfn2.n_test=32",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "eval_metrics.json").read_text())
    assert report["fidelities"] == ["gfn1", "gfn2"]  # only the fidelities the checkpoint has heads for
    for stage in ("test", "test_mol"):
        for fidelity in ("gfn1", "gfn2"):
            for name, value in metrics["metrics"][stage][fidelity].items():
                assert math.isclose(report["metrics"][stage][fidelity][name], value, rel_tol=1e-5), (stage, name)


def test_ema_and_plateau_schedule(tmp_path):
    import torch

    metrics = train_quick(
        tmp_path,
        "scheduler=plateau",
        "strategy=scratch",
        "data.fidelity=gfn2",
        fidelities=("gfn2",),
        n_train=32,
        epochs=2,
    )
    assert math.isfinite(metrics["metrics"]["test"]["gfn2"]["forces_mae"])
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    averaged, current = checkpoint["state_dict"], checkpoint["current_model_state"]
    key = "potential.backbone.embedding.weight"
    assert not torch.equal(averaged[key], current[key])  # the checkpoint holds the EMA weights, not the raw ones
    assert checkpoint["lr_schedulers"][0]["patience"] == 5
