"""Drive one training run from a composed config: data -> model -> Lightning -> metrics.json."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from mfff.train.checkpoints import check_compatible, read_checkpoint
from mfff.train.module import MultiFidelityModule
from mfff.utils.atomic import atomic_write_text

log = logging.getLogger(__name__)


def instantiate_dict(node) -> list:
    """Dict-keyed callbacks / loggers; a key set to null is switched off."""
    return [hydra.utils.instantiate(value) for value in (node or {}).values() if value is not None]


def build_data(cfg: DictConfig, fidelities: list[str]):
    return hydra.utils.instantiate(cfg.data, fidelities=fidelities)


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


def train(cfg: DictConfig, run_choices: dict | None = None) -> dict:
    pl.seed_everything(int(cfg.seed), workers=True)
    output_dir = Path(cfg.paths.output_dir)
    strategy = hydra.utils.instantiate(cfg.strategy)
    resume = cfg.get("resume_from")
    if resume:  # refuse an incompatible checkpoint before spending time on the data
        check_compatible(
            read_checkpoint(resume), OmegaConf.to_container(cfg.model, resolve=True), strategy.fidelities, resume
        )
    data = build_data(cfg, strategy.fidelities)
    data.setup("fit")
    module = MultiFidelityModule(
        model=cfg.model,
        fidelities=strategy.fidelities,
        loss=cfg.loss,
        optimizer=cfg.optimizer,
        scheduler=cfg.get("scheduler"),
        monitor=cfg.monitor,
    )
    module.bind_data(data.fidelities, data.test_names)
    stats = data.stats()
    module.init_from_data(stats)
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=instantiate_dict(cfg.get("callbacks")),
        logger=instantiate_dict(cfg.get("logger")) or False,
    )
    trainer.fit(module, datamodule=data, ckpt_path=resume or None)
    best = _best_checkpoint(trainer)
    val = trainer.validate(module, datamodule=data, ckpt_path=best, verbose=False)
    test = trainer.test(module, datamodule=data, ckpt_path=best, verbose=False)
    flat = {}
    for result in [*val, *test]:
        flat.update(finite_metrics(result))
    choices = run_choices or {}
    metrics = {
        "strategy": strategy.describe(),
        "backbone": choices.get("model/backbone", cfg.model.backbone._target_.rsplit(".", 1)[-1]),
        "size": choices.get("model/size"),
        "seed": int(cfg.seed),
        "n_train": {f: s["n_train"] for f, s in stats.items()},
        "label_cost_cpu_s": {f: s["label_cost"] for f, s in stats.items()},
        "epochs": int(trainer.current_epoch),
        "best_checkpoint": best,
        "metrics": nest_metrics(flat),
        "overrides": list(choices.get("_overrides", [])),
        "units": {"energy": "meV", "energy_per_atom": "meV/atom", "forces": "meV/Å"},
    }
    if trainer.is_global_zero:
        atomic_write_text(output_dir / "metrics.json", json.dumps(metrics, indent=1) + "\n")
        log.info("wrote %s", output_dir / "metrics.json")
    return metrics


def _best_checkpoint(trainer: pl.Trainer) -> str | None:
    callback = trainer.checkpoint_callback
    path = getattr(callback, "best_model_path", "") if callback is not None else ""
    return path or None
