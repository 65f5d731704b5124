"""One training stage (data -> model -> Lightning fit/validate/test) in its own output dir."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict

from mfff.data.errors import DataError
from mfff.train.checkpoints import check_compatible, read_checkpoint
from mfff.train.module import MultiFidelityModule
from mfff.train.transfer import Transfer

log = logging.getLogger(__name__)


@dataclass
class Stage:
    """What one stage trains.

    Args:
        heads: the model's heads; train: the fidelities it trains on (their heads train, the others stay frozen);
        evaluate: fidelities loaded for validation/test only; transfer: start from a pre-trained checkpoint;
        config: deltas merged over the root config for this stage, e.g. {'trainer': {'max_epochs': 50}}.
    """

    name: str
    train: list[str]
    heads: list[str] | None = None
    evaluate: list[str] = field(default_factory=list)
    use_forces: bool = True
    sampling: dict | None = None
    transfer: Transfer | None = None
    config: dict = field(default_factory=dict)

    def __post_init__(self):
        self.heads = sorted(self.heads or self.train)


@dataclass
class StageResult:
    metrics: dict  # nested: {'val': {'dft': {'forces_mae': ...}}, 'test': ...}
    stats: dict  # per trained fidelity: n_train, label_cost, ...
    best_checkpoint: str | None
    epochs: int
    steps: int
    is_global_zero: bool = True


def instantiate_dict(node) -> list:
    """Dict-keyed callbacks / loggers; a key set to null is switched off."""
    return [hydra.utils.instantiate(value) for value in (node or {}).values() if value is not None]


def finite_metrics(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}


def nest_metrics(flat: dict) -> dict:
    """{'val/dft/forces_mae': x} -> {'val': {'dft': {'forces_mae': x}}}; stage-level values under '_all'."""
    nested: dict = {}
    for key, value in flat.items():
        parts = key.split("/")
        if len(parts) == 3:
            nested.setdefault(parts[0], {}).setdefault(parts[1], {})[parts[2]] = value
        elif len(parts) == 2:
            nested.setdefault(parts[0], {}).setdefault("_all", {})[parts[1]] = value
    return nested


def stage_config(cfg: DictConfig, output_dir: Path, deltas: dict) -> DictConfig:
    """The root config with this stage's output dir (every path interpolates it) and its deltas merged in."""
    staged = cfg.copy()
    with open_dict(staged):
        staged.paths.output_dir = str(output_dir)
        for key, delta in (deltas or {}).items():
            if delta:
                staged[key] = OmegaConf.merge(staged[key], delta) if staged.get(key) is not None else delta
    return staged


def run_stage(cfg: DictConfig, stage: Stage, output_dir: Path, resume: str | None = None) -> StageResult:
    cfg = stage_config(cfg, output_dir, stage.config)
    pl.seed_everything(int(cfg.seed), workers=True)
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    if resume:  # refuse an incompatible checkpoint before spending time on the data
        check_compatible(read_checkpoint(resume), model_cfg, stage.heads, resume)
    if stage.transfer is not None:
        stage.transfer.check(model_cfg)
    data = hydra.utils.instantiate(
        cfg.data,
        fidelities=stage.train,
        eval_fidelities=stage.evaluate,
        use_forces=stage.use_forces,
        sampling=stage.sampling,
        _convert_="all",
    )
    data.setup("fit")
    module = MultiFidelityModule(
        model=cfg.model,
        fidelities=stage.heads,
        loss=_loss_for(cfg, stage.heads),
        optimizer=cfg.optimizer,
        scheduler=cfg.get("scheduler"),
        monitor=cfg.monitor,
        trained=stage.train,
        frozen=stage.transfer.frozen(_backbone_blocks(model_cfg)) if stage.transfer else None,
        use_forces=stage.use_forces,
    )
    module.bind_data(data.fidelities, data.test_names)
    stats = data.stats()
    if stage.transfer is not None:
        stage.transfer.apply(module, stats)
    else:
        module.init_from_data(stats)
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=instantiate_dict(cfg.get("callbacks")),
        logger=instantiate_dict(cfg.get("logger")) or False,
    )
    log.info("stage %s: training %s (heads %s) in %s", stage.name, stage.train, stage.heads, output_dir)
    trainer.fit(module, datamodule=data, ckpt_path=resume or None)
    best = _best_checkpoint(trainer)
    flat = {}
    for result in [
        *trainer.validate(module, datamodule=data, ckpt_path=best, verbose=False),
        *trainer.test(module, datamodule=data, ckpt_path=best, verbose=False),
    ]:
        flat.update(finite_metrics(result))
    return StageResult(
        nest_metrics(flat), stats, best, int(trainer.current_epoch), int(trainer.global_step), trainer.is_global_zero
    )


def _loss_for(cfg: DictConfig, heads: list[str]) -> dict:
    """The loss settings; per-fidelity weights of sources this stage does not train are dropped (one config can
    serve a sweep over head sets), names that are no source at all are refused (typos)."""
    loss = OmegaConf.to_container(cfg.loss, resolve=True)
    per_fidelity = loss.get("per_fidelity") or {}
    unknown = sorted(set(per_fidelity) - set(cfg.data.sources))
    if unknown:
        raise DataError(
            f"loss.per_fidelity names {unknown}, which are not in data.sources ({', '.join(sorted(cfg.data.sources))})"
        )
    loss["per_fidelity"] = {f: w for f, w in per_fidelity.items() if f in heads}
    return loss


def _backbone_blocks(model_cfg: dict) -> int:
    return len(hydra.utils.instantiate(model_cfg["backbone"]).interactions)


def _best_checkpoint(trainer: pl.Trainer) -> str | None:
    callback = trainer.checkpoint_callback
    path = getattr(callback, "best_model_path", "") if callback is not None else ""
    return path or None
