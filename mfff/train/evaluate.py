"""Evaluate a checkpoint on every fidelity of a dataset that it has a head for."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig

from mfff.data.errors import DataError
from mfff.train.checkpoints import read_checkpoint
from mfff.train.module import MultiFidelityModule
from mfff.train.stage import finite_metrics, nest_metrics
from mfff.utils.atomic import atomic_write_text


def evaluate(cfg: DictConfig) -> dict:
    path = Path(cfg.ckpt)
    read_checkpoint(path)  # a clear error for a missing or foreign file before Lightning tries
    module = MultiFidelityModule.load_from_checkpoint(path, map_location="cpu")
    fidelities = [f for f in cfg.data.sources if f in module.fidelities]
    if not fidelities:
        raise DataError(
            f"checkpoint {path} has heads {module.fidelities} but data.sources has "
            f"{list(cfg.data.sources)}: no fidelity in common to evaluate"
        )
    data = hydra.utils.instantiate(
        cfg.data, fidelities=fidelities, cutoff=module.potential.backbone.cutoff, dtype=module.dtype_name
    )  # graphs as the model was trained
    data.setup("test")
    module.bind_data(data.fidelities, data.test_names)
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[])
    flat = {}
    for result in trainer.test(module, datamodule=data, verbose=False):
        flat.update(finite_metrics(result))
    report = {
        "checkpoint": str(path),
        "fidelities": data.fidelities,
        "metrics": nest_metrics(flat),
        "units": {"energy": "meV", "energy_per_atom": "meV/atom", "forces": "meV/Å"},
    }
    atomic_write_text(Path(cfg.paths.output_dir) / "eval_metrics.json", json.dumps(report, indent=1) + "\n")
    return report
