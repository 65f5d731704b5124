"""The LightningModule: a potential trained on several fidelities with one shared `_step`."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from mfff.data.batch import Batch
from mfff.data.datamodule import MultiFidelityDataModule
from mfff.errors import TrainingDiverged, UserError
from mfff.model.build import build_potential
from mfff.model.compiled import CompiledPotential
from mfff.train.loss import MultiFidelityLoss
from mfff.train.metrics import FidelityMetrics
from mfff.train.policies import Full, freeze_prefixes
from mfff.utils.instantiate import instantiate


def _plain(cfg):
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


class MultiFidelityModule(pl.LightningModule):
    """Args:
    model: {backbone: {_target_...}, head: {_target_...}, dtype: float32|float64, compile: bool}.
    fidelities: names of the heads, in any order (stored sorted).
    loss: kwargs of `MultiFidelityLoss`.
    optimizer: {_target_: torch.optim.AdamW, _partial_: true, lr: ...}.
    scheduler: a `mfff.train.schedules` object config, or None.
    trained: heads whose fidelities enter the loss (default all); the others are only evaluated and stay frozen.
    policy: which parameters train, a `mfff.train.policies` config (default: all of them).
    bases: {fidelity: {fidelity, labeller}} for heads that learned a difference to a base method (Δ-learning):
        what the calculator and mfff-eval add back.
    settings: what determines the weights (`mfff.train.settings.stage_settings`): what `resume` compares.
    """

    def __init__(
        self,
        model,
        fidelities: list[str],
        loss=None,
        optimizer=None,
        scheduler=None,
        monitor: str = "val/loss",
        trained: list[str] | None = None,
        policy: dict | None = None,
        settings: dict | None = None,
        bases: dict | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(
            self.hparams_of(model, fidelities, loss, optimizer, scheduler, monitor, trained, policy, settings, bases)
        )
        self.fidelities = sorted(fidelities)
        self.potential = build_potential(self.hparams.model, self.fidelities)
        self.policy = instantiate(self.hparams.policy) if self.hparams.policy else Full()
        self.policy.apply(self.potential)
        self.dtype_name = self.hparams.model.get("dtype", "float32")
        if self.dtype_name == "float64":
            self.potential.double()
        # model.compile: the forward pass (forces included) compiled once for training and once for evaluation
        self.compiled = CompiledPotential(self.potential) if self.hparams.model.get("compile") else None
        self.loss_fn = MultiFidelityLoss(self.fidelities, **(self.hparams.loss or {}), trained=self.hparams.trained)
        # heads that do not train are frozen too, so they stay exactly as loaded
        freeze_prefixes(self.potential, [f"heads.{f}." for f in self.fidelities if f not in self.hparams.trained])
        # the first step whose training loss was NaN/inf (-1: none); checked once an epoch, not every step. A plain
        # tensor, not a buffer: DDP would overwrite every rank's with rank 0's
        self.first_nonfinite_step = torch.tensor(-1)
        self.stage_name: str | None = None  # set by whoever runs it, for messages
        self.bind_data({stage: self.fidelities for stage in ("train", "val", "test")})

    @staticmethod
    def hparams_of(
        model,
        fidelities,
        loss=None,
        optimizer=None,
        scheduler=None,
        monitor="val/loss",
        trained=None,
        policy=None,
        settings=None,
        bases=None,
    ) -> dict:
        """The hyper-parameters as the checkpoint stores them (plain, sorted), to compare a run with a checkpoint."""
        return {
            "model": _plain(model),
            "fidelities": sorted(fidelities),
            "loss": _plain(loss),
            "optimizer": _plain(optimizer),
            "scheduler": _plain(scheduler),
            "monitor": monitor,
            "trained": sorted(trained) if trained is not None else sorted(fidelities),
            "policy": _plain(policy),
            "bases": _plain(bases) or {},
            "settings": _plain(settings),
        }

    # ------------------------------------------------------------------------------------------- data binding
    def bind_data(self, stage_fidelities: dict[str, list[str]]) -> None:
        """One metrics object for each stage and fidelity that has data there.

        Args:
            stage_fidelities: {'train': [...], 'val': [...], <test set name>: [...]}, the data module's
                `stage_fidelities()`. Its batches carry the head index of each structure's fidelity.
        """
        missing = sorted({f for names in stage_fidelities.values() for f in names} - set(self.fidelities))
        if missing:
            raise UserError(
                f"fidelity {missing[0]!r} in the data has no head in this model (heads: "
                f"{', '.join(self.fidelities)}); train a head for it or drop it from strategy.fidelities"
            )
        self.stage_names = dict(enumerate(s for s in stage_fidelities if s not in ("train", "val")))
        # heads that do not train have no train metrics
        self.stage_heads = {
            stage: [(self.fidelities.index(f), f) for f in names if stage != "train" or f in self.hparams.trained]
            for stage, names in stage_fidelities.items()
        }
        # created up front, never lazily, so every DDP rank syncs the same metric states
        self.metrics = torch.nn.ModuleDict(
            {f"{stage}__{f}": FidelityMetrics() for stage, heads in self.stage_heads.items() for _, f in heads}
        )

    # --------------------------------------------------------------------------------------------- the step
    def forward(self, batch: Batch, head: str | None = None):
        return (self.compiled or self.potential)(batch, compute_forces=True, head=head)

    def _step(self, batch: Batch, stage: str) -> torch.Tensor:
        with torch.enable_grad():  # forces are -dE/dx, also during validation and test
            out = self(batch)
        losses = self.loss_fn(batch, out)
        # every fidelity of the stage, present in this batch or not (its rows weigh 0): no host sync to find out,
        # and no metric is computed without an update
        for index, fidelity in self.stage_heads[stage]:
            self.metrics[f"{stage}__{fidelity}"].update(batch, out, index)
        self.log(
            f"{stage}/loss",
            losses["loss"].detach() if stage != "train" else losses["loss"],
            batch_size=batch.n_graphs,
            on_step=stage == "train",
            on_epoch=True,
            prog_bar=stage != "test",
            add_dataloader_idx=False,
            sync_dist=stage != "train",
        )
        return losses["loss"]

    def training_step(self, batch, batch_idx):
        loss = self._step(batch, "train")
        first = self.first_nonfinite_step.to(loss.device)
        unseen = (first < 0) & ~torch.isfinite(loss.detach())
        self.first_nonfinite_step = torch.where(unseen, self.global_step, first)
        return loss

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        self._step(batch, self.stage_names.get(dataloader_idx, f"test{dataloader_idx}"))

    def _log_epoch_metrics(self, stages) -> None:
        # in the same order on every DDP rank (not a set's, which differs between processes): compute() all-gathers
        for stage in [s for s in self.stage_heads if s in stages]:
            for _, fidelity in self.stage_heads[stage]:
                metrics = self.metrics[f"{stage}__{fidelity}"]
                for name, value in metrics.compute().items():
                    # compute() already reduced the metric states over ranks; sync_dist only averages equal values
                    self.log(f"{stage}/{fidelity}/{name}", value, add_dataloader_idx=False, sync_dist=True)
                metrics.reset()

    def on_train_epoch_end(self):
        self._log_epoch_metrics({"train"})
        diverged = bool(self.first_nonfinite_step >= 0)
        if self.trainer.strategy.reduce_boolean_decision(diverged, all=False):  # every rank stops together
            raise TrainingDiverged(self.current_epoch, int(self.first_nonfinite_step), stage=self.stage_name)

    def on_validation_epoch_end(self):
        self._log_epoch_metrics({"val"})

    def on_test_epoch_end(self):
        self._log_epoch_metrics(set(self.stage_names.values()))

    # ------------------------------------------------------------------------------------------- optimiser
    def trainable_parameters(self):
        return [p for p in self.parameters() if p.requires_grad]

    def configure_optimizers(self):
        optimizer = instantiate(self.hparams.optimizer)(params=self.trainable_parameters())
        if not self.hparams.scheduler:
            return optimizer
        schedule = instantiate(self.hparams.scheduler)
        total = stepping_batches(self.trainer) if schedule.needs_length else None
        return {"optimizer": optimizer, "lr_scheduler": schedule.build(optimizer, total, self.hparams.monitor)}


def stepping_batches(trainer: pl.Trainer) -> int:
    """Optimiser steps in the whole run, for the schedule; Lightning's `estimated_stepping_batches` is the same figure,
    but it builds the training loader before a resumed run's state is restored, so the loader's mid-epoch state is
    then never loaded (and data workers prefetch the wrong epoch)."""
    data = trainer.datamodule
    if trainer.max_epochs in (None, -1):  # Lightning's "no epoch limit"
        if trainer.max_steps not in (None, -1):
            return int(trainer.max_steps)
        raise UserError(
            "trainer.max_epochs=-1 (no limit) leaves the learning-rate schedule without a length; set "
            "trainer.max_steps=<steps> or trainer.max_epochs=<epochs>, or use scheduler=plateau (with early stopping)"
        )
    if not isinstance(data, MultiFidelityDataModule):
        return int(trainer.estimated_stepping_batches)
    batches = data.steps_per_epoch(trainer.world_size)
    limit = trainer.limit_train_batches
    batches = min(batches, int(limit)) if isinstance(limit, int) else int(batches * limit)
    steps = math.ceil(batches / trainer.accumulate_grad_batches) * max(trainer.max_epochs, 1)
    return min(steps, trainer.max_steps) if trainer.max_steps != -1 else steps
