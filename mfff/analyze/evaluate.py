"""Evaluate a checkpoint on the test sets of every fidelity of a dataset that it has a head for."""

from __future__ import annotations

import json
import math
from pathlib import Path

from omegaconf import DictConfig

from mfff.errors import UserError
from mfff.runs.fit import nest_metrics
from mfff.runs.quiet import quiet_lightning
from mfff.runs.report import UNITS, metrics_table
from mfff.train.checkpoints import load_module
from mfff.utils.atomic import atomic_write_text
from mfff.utils.instantiate import instantiate


def evaluate(cfg: DictConfig) -> dict:
    """Test sets are those of `data` as configured here: every structure of each test set unless
    data.sources.<name>.n_test is set (a training run's metrics.json used that run's n_test)."""
    module = load_module(cfg.ckpt, "ckpt")
    path = module.checkpoint_path
    fidelities = [f for f in cfg.data.sources if f in module.fidelities]
    if not fidelities:
        raise UserError(
            f"checkpoint {path} has heads {module.fidelities} but data.sources has "
            f"{list(cfg.data.sources)}: no fidelity in common to evaluate"
        )
    data = instantiate(
        cfg.data,
        key="data",
        fidelities=fidelities,
        heads=module.fidelities,
        bases={name: base["fidelity"] for name, base in module.hparams.bases.items() if name in fidelities},
        cutoff=module.potential.backbone.cutoff,
        dtype=module.dtype_name,
    )  # graphs as the model was trained
    data.setup("test")
    module.bind_data(data.stage_fidelities())
    quiet_lightning()
    trainer = instantiate(cfg.trainer, callbacks=[])
    flat = {}
    for result in trainer.test(module, datamodule=data, verbose=False):
        flat.update({k: float(v) if math.isfinite(float(v)) else None for k, v in result.items()})
    return {
        "checkpoint": str(path),
        "fidelities": data.fidelities,
        "test_sizes": {f: {n: len(items) for n, items in s.tests.items()} for f, s in data.sources.items()},
        "metrics": nest_metrics(flat),
        "units": UNITS,
    }


def write_report(report: dict, output_dir: Path) -> Path:
    path = Path(output_dir) / "eval_metrics.json"
    atomic_write_text(path, json.dumps(report, indent=1) + "\n")
    return path


def format_report(report: dict, path: Path) -> str:
    sizes = "; ".join(
        f"{fidelity}: " + ", ".join(f"{name} {n}" for name, n in sorted(tests.items()))
        for fidelity, tests in sorted(report["test_sizes"].items())
    )
    return "\n".join(
        [
            f"mfff-eval: {report['checkpoint']} on every structure of the test sets ({sizes} structures):",
            metrics_table(report["metrics"]),
            f"wrote {path}",
        ]
    )
