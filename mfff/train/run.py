"""Drive one training run from a composed config: strategy -> stage(s) -> metrics.json in the run dir."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from mfff.train.strategies import Strategy
from mfff.utils.atomic import atomic_write_text

log = logging.getLogger(__name__)


def train(cfg: DictConfig, run_choices: dict | None = None) -> dict:
    output_dir = Path(cfg.paths.output_dir)
    strategy: Strategy = hydra.utils.instantiate(cfg.strategy, _convert_="all")
    outcome = strategy.run(cfg, output_dir, cfg.get("resume_from") or None)
    result, choices = outcome.result, run_choices or {}
    metrics = {
        "strategy": strategy.describe(),
        "backbone": choices.get("model/backbone", cfg.model.backbone._target_.rsplit(".", 1)[-1]),
        "size": choices.get("model/size"),
        "seed": int(cfg.seed),
        "n_train": outcome.n_train,
        "label_cost_cpu_s": outcome.label_cost,
        "epochs": result.epochs,
        "steps": result.steps,
        "best_checkpoint": result.best_checkpoint,
        "metrics": result.metrics,
        "pretrain": outcome.pretrain,
        "overrides": list(choices.get("_overrides", [])),
        "units": {"energy": "meV", "energy_per_atom": "meV/atom", "forces": "meV/Å"},
    }
    if result.is_global_zero:
        atomic_write_text(output_dir / "metrics.json", json.dumps(metrics, indent=1) + "\n")
        log.info("wrote %s", output_dir / "metrics.json")
    return metrics
