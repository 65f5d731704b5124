"""mfff's training callbacks: an EMA of the weights, and early stopping that waits for the learning rate to decay.
(Saving on a signal: `mfff.runs.preemption`.)"""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, WeightAveraging
from pytorch_lightning.trainer.states import TrainerFn
from torch import Tensor
from torch.optim.swa_utils import get_ema_multi_avg_fn

from mfff.errors import UserError


class EMA(WeightAveraging):
    """An exponential moving average of the weights, updated after every optimiser step. Validation during
    training, the checkpoints (`state_dict`; the raw weights are kept under `current_model_state` to resume) and
    the final model are the average.

    Give one of:
    - `decay`: a constant decay per step (mace-torch, nequip and fairchem use 0.99-0.999). Its memory is a fixed
      number of steps, so it lags far behind in short runs with few steps per epoch (50 labels: 4 steps an epoch);
    - `sigma_rel`: a power-function EMA (Karras et al. 2024, arXiv 2312.02696), whose width is this fraction of the
      steps taken so far, the same share of any run's length: decay_t = (1 - 1/t)^(gamma + 1).

    Lightning's WeightAveraging swaps its running average in whenever a validation epoch starts, and puts a
    checkpoint's raw weights into the module whenever one is loaded. Outside `fit` both would replace the averaged
    weights of the checkpoint that `trainer.validate/test(ckpt_path=...)` evaluates; here they happen only while
    fitting."""

    def __init__(self, decay: float | None = None, sigma_rel: float | None = None):
        if (decay is None) == (sigma_rel is None):
            raise UserError(
                f"callbacks.ema: give exactly one of decay (e.g. 0.99) and sigma_rel (e.g. 0.1), got decay={decay}, "
                f"sigma_rel={sigma_rel}; e.g. callbacks.ema.decay=0.99 callbacks.ema.sigma_rel=null"
            )
        if decay is not None and not 0.0 < decay < 1.0:
            raise UserError(f"callbacks.ema.decay={decay}: must lie between 0 and 1 (e.g. 0.99)")
        if sigma_rel is not None and not 0.0 < sigma_rel < 0.28:
            raise UserError(f"callbacks.ema.sigma_rel={sigma_rel}: must lie between 0 and 0.28 (e.g. 0.1)")
        average = get_ema_multi_avg_fn(decay) if decay is not None else power_ema(power_ema_gamma(sigma_rel))
        super().__init__(multi_avg_fn=average, use_buffers=True)
        self.decay, self.sigma_rel = decay, sigma_rel

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        # Lightning's version puts the raw weights back into the module, right for resuming a fit; validating or
        # testing a checkpoint must keep the averaged weights it holds
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_validation_epoch_end(trainer, pl_module)


def power_ema_gamma(sigma_rel: float) -> float:
    """The exponent gamma of a power-function EMA whose relative width is sigma_rel (Karras et al. 2024, eq. 3):
    sigma_rel^2 = (gamma + 1) / ((gamma + 2)^2 (gamma + 3)), decreasing in gamma; solved by bisection."""

    def width(gamma: float) -> float:
        return math.sqrt((gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3)))

    low, high = 0.0, 1e6  # width(0) = 0.289, the widest such an average can be
    for _ in range(200):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if width(middle) > sigma_rel else (low, middle)
    return 0.5 * (low + high)


def power_ema(gamma: float):
    """`multi_avg_fn` for AveragedModel: the t-th update moves the average by 1 - (1 - 1/t)^(gamma + 1) towards the
    weights (t = 1 copies them). Stays on the device: no host sync per step."""

    @torch.no_grad()
    def update(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        if not torch.is_floating_point(averaged[0]):  # AveragedModel groups by dtype: flags and counts are copied
            torch._foreach_copy_(averaged, current)
            return
        t = num_averaged.to(averaged[0].dtype) + 1
        weight = 1 - (1 - 1 / t) ** (gamma + 1)
        torch._foreach_lerp_(averaged, current, weight)

    return update


class EarlyStoppingAfterDecay(EarlyStopping):
    """Early stopping whose patience only counts once the learning rate has decayed to `lr_fraction` of its peak,
    so a run never stops while its schedule still holds the rate high (during a warm-up, or before a cosine or
    plateau schedule has annealed). Until then the best score is still tracked. Without a schedule
    (`scheduler=none`) it is Lightning's EarlyStopping."""

    def __init__(self, *args, lr_fraction: float = 0.1, **kwargs):
        if not 0.0 < lr_fraction <= 1.0:
            raise UserError(f"callbacks.early_stopping.lr_fraction={lr_fraction}: must lie in (0, 1] (e.g. 0.1)")
        super().__init__(*args, **kwargs)
        self.lr_fraction = lr_fraction
        self.peak_lr = 0.0
        self._counting = True

    def annealed(self, trainer: pl.Trainer) -> bool:
        group = trainer.optimizers[0].param_groups[0]
        lr = float(group["lr"])
        self.peak_lr = max(self.peak_lr, lr, float(group.get("initial_lr", 0.0)))
        return lr <= self.lr_fraction * self.peak_lr

    def _run_early_stopping_check(self, trainer: pl.Trainer) -> None:
        # without a schedule the rate never decays: then patience counts from the start, as in Lightning
        scheduled = bool(trainer.optimizers) and bool(trainer.lr_scheduler_configs)
        self._counting = self.annealed(trainer) if scheduled else True
        super()._run_early_stopping_check(trainer)

    def _evaluate_stopping_criteria(self, current: Tensor) -> tuple[bool, str | None]:
        reason_before = self.stopping_reason
        should_stop, reason = super()._evaluate_stopping_criteria(current)
        if not self._counting and self.wait_count > 0:  # no improvement, but the rate is still high: keep going
            self.wait_count, self.stopping_reason = 0, reason_before
            return False, None
        return should_stop, reason

    def state_dict(self) -> dict:
        return {**super().state_dict(), "peak_lr": self.peak_lr}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.peak_lr = state_dict.get("peak_lr", 0.0)
