"""mfff's callbacks: the power-function EMA, early stopping gated on the learning rate, and what a run reports."""

import csv
import math
from types import SimpleNamespace

import pytest
import torch

from mfff.errors import UserError
from mfff.train.callbacks import EMA, EarlyStoppingAfterDecay, power_ema, power_ema_gamma
from tests.train.conftest import train_quick


@pytest.mark.parametrize(("sigma_rel", "gamma"), [(0.05, 16.97), (0.10, 6.94)])  # Karras et al. 2024, sec. 3.1
def test_power_ema_gamma_matches_the_published_values(sigma_rel, gamma):
    assert power_ema_gamma(sigma_rel) == pytest.approx(gamma, abs=0.01)


def _average(gamma, values):
    averaged = [torch.tensor(values[0])]
    update = power_ema(gamma)
    for count, value in enumerate(values[1:], start=1):  # AveragedModel copies the first, then passes the count
        update(averaged, [torch.tensor(value)], torch.tensor(count))
    return float(averaged[0])


def test_power_ema_with_gamma_zero_is_the_running_mean_and_larger_gamma_weights_late_steps():
    values = [float(v) for v in range(1, 101)]
    assert _average(0.0, values) == pytest.approx(sum(values) / len(values))
    # gamma weights step t by about t^gamma: the mean of t^(gamma+1) / t^gamma over 1..T
    expected = sum(t**8.0 for t in values) / sum(t**7.0 for t in values)
    assert _average(7.0, values) == pytest.approx(expected, rel=0.02)
    assert _average(7.0, values) > _average(1.0, values) > _average(0.0, values)


def test_power_ema_copies_flags_instead_of_averaging_them():
    averaged, current = [torch.tensor([True, False])], [torch.tensor([False, True])]
    power_ema(7.0)(averaged, current, torch.tensor(3))
    assert averaged[0].tolist() == [False, True]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "exactly one of decay"),
        ({"decay": 0.99, "sigma_rel": 0.1}, "exactly one of decay"),
        ({"decay": 1.5}, "decay=1.5"),
        ({"sigma_rel": 0.5}, "sigma_rel=0.5"),
    ],
)
def test_ema_settings_are_checked(settings, message):
    with pytest.raises(UserError, match=message):
        EMA(**settings)


def _fake_trainer(lr: float, initial_lr: float, val: float, epoch: int, scheduled: bool = True):
    optimizer = SimpleNamespace(param_groups=[{"lr": lr, "initial_lr": initial_lr}])
    return SimpleNamespace(
        optimizers=[optimizer],
        lr_scheduler_configs=[object()] if scheduled else [],
        callback_metrics={"val/loss": torch.tensor(val)},
        fast_dev_run=False,
        should_stop=False,
        current_epoch=epoch,
        strategy=SimpleNamespace(reduce_boolean_decision=lambda decision, all=False: decision),
    )


def test_early_stopping_counts_patience_only_after_the_learning_rate_decayed():
    stopper = EarlyStoppingAfterDecay(monitor="val/loss", mode="min", patience=3, lr_fraction=0.1)
    trainer = _fake_trainer(lr=1e-3, initial_lr=1e-3, val=1.0, epoch=0)
    stopper._run_early_stopping_check(trainer)
    for epoch in range(1, 30):  # no improvement for 29 epochs, but the rate is still at its peak or halfway down
        trainer = _fake_trainer(lr=1e-3 if epoch < 15 else 5e-4, initial_lr=1e-3, val=2.0, epoch=epoch)
        stopper._run_early_stopping_check(trainer)
        assert not trainer.should_stop, epoch
    assert stopper.best_score == pytest.approx(1.0)  # the best score is kept meanwhile
    for epoch in range(30, 40):  # decayed to 0.05x: three epochs without improvement stop the run
        trainer = _fake_trainer(lr=5e-5, initial_lr=1e-3, val=2.0, epoch=epoch)
        stopper._run_early_stopping_check(trainer)
        if trainer.should_stop:
            break
    assert stopper.stopped_epoch == 32
    restored = EarlyStoppingAfterDecay(monitor="val/loss", lr_fraction=0.1)
    restored.load_state_dict(stopper.state_dict())
    assert restored.peak_lr == pytest.approx(1e-3)


def test_without_a_schedule_early_stopping_counts_from_the_start():
    stopper = EarlyStoppingAfterDecay(monitor="val/loss", mode="min", patience=2, lr_fraction=0.1)
    for epoch, val in enumerate([1.0, 2.0, 2.0, 2.0]):
        trainer = _fake_trainer(lr=1e-3, initial_lr=1e-3, val=val, epoch=epoch, scheduled=False)
        stopper._run_early_stopping_check(trainer)
        if trainer.should_stop:
            break
    assert stopper.stopped_epoch == 2


def test_early_stopping_after_decay_refuses_a_bad_fraction():
    with pytest.raises(UserError, match="lr_fraction=0"):
        EarlyStoppingAfterDecay(monitor="val/loss", lr_fraction=0)


def test_ema_run_reports_the_averaged_weights_of_its_best_checkpoint(tmp_path):
    """The final validation of the best checkpoint must score what validation during training scored for that
    epoch: Lightning's WeightAveraging, reloading a checkpoint, put the raw weights back and scored those."""
    metrics = train_quick(
        tmp_path,
        "strategy=scratch",
        "data.fidelity=gfn2",
        "callbacks.ema.decay=0.9",  # a short memory, so the average differs from the raw weights in 4 epochs
        "callbacks.ema.sigma_rel=null",
        fidelities=("gfn2",),
        n_train=32,
        epochs=4,
    )
    with open(tmp_path / "csv" / "metrics.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("val/gfn2/forces_mae")]
    during_fit = {int(r["epoch"]): float(r["val/gfn2/forces_mae"]) for r in rows}
    best = metrics["best_epoch"]
    final = metrics["metrics"]["val"]["gfn2"]["forces_mae"]
    assert math.isclose(final, during_fit[best], rel_tol=1e-4), (final, during_fit)
    checkpoint = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    key = "potential.backbone.embedding.weight"
    assert not torch.equal(checkpoint["state_dict"][key], checkpoint["current_model_state"][key])
