"""Evaluate a trained model (run dir, checkpoint or inference file) on the test sets of every fidelity it has a
head for."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from tqdm import tqdm

from mfff.data.readers.base import existing_file
from mfff.errors import UserError
from mfff.inference.files import load
from mfff.runs.fit import nest_metrics
from mfff.runs.progress import show_bar
from mfff.runs.report import UNITS, metrics_table
from mfff.train.checkpoints import resolve_checkpoint
from mfff.train.metrics import FidelityMetrics
from mfff.utils.atomic import atomic_write_text
from mfff.utils.instantiate import instantiate


def evaluate(cfg: DictConfig) -> dict:
    """Test sets are those of `data` as configured here: every structure of each test set unless
    data.sources.<name>.n_test is set (a training run's metrics.json used that run's n_test). The model is the
    inference model (`mfff.load`: run dirs, checkpoints and inference files), its errors the training's metrics."""
    path = resolve_checkpoint(cfg.ckpt, "ckpt")
    model = load(path, key="ckpt", device=_device(cfg.trainer.get("accelerator", "auto")))
    data_cfg = test_file_data(cfg, model.heads) if cfg.get("test") else cfg.data
    fidelities = [f for f in data_cfg.sources if f in model.heads]
    if not fidelities:
        raise UserError(
            f"checkpoint {path} has heads {model.heads} but data.sources has "
            f"{list(data_cfg.sources)}: no fidelity in common to evaluate"
        )
    data = instantiate(
        data_cfg,
        key="data",
        fidelities=fidelities,
        heads=model.heads,
        bases={name: base["fidelity"] for name, base in model.bases.items() if name in fidelities},
        cutoff=model.cutoff,
        dtype=str(model.dtype).removeprefix("torch."),
    )  # graphs as the model was trained
    data.setup("test")
    data.leave_out_unpredictable(model.potential.elements)
    bar = show_bar(cfg.trainer.get("enable_progress_bar", True))  # a bar only on a terminal, as in mfff-train
    flat = {}
    for name, loader in zip(data.test_names, data.test_dataloader()):
        errors = {f: FidelityMetrics() for f in fidelities if name in data.sources[f].tests}
        for batch in tqdm(loader, desc=f"mfff-eval {name}", disable=not bar, leave=False):
            batch = batch.to(model.potential.known_elements.device)
            with torch.enable_grad():  # forces are -dE/dx
                out = model.potential(batch, compute_forces=True)
            for fidelity, metrics in errors.items():
                metrics.update(batch, out, model.heads.index(fidelity))
        for fidelity, metrics in errors.items():
            flat.update(
                {f"{name}/{fidelity}/{k}": v if math.isfinite(v) else None for k, v in metrics.compute().items()}
            )
    return {
        "checkpoint": str(path),
        "fidelities": data.fidelities,
        "test_sizes": {f: {n: len(items) for n, items in s.tests.items()} for f, s in data.sources.items()},
        "metrics": nest_metrics(flat),
        "units": UNITS,
    }


def _device(accelerator: str) -> str:
    """The device of trainer.accelerator (mfff-eval runs no Lightning trainer, but keeps its setting)."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


def test_file_data(cfg: DictConfig, heads: list[str]) -> DictConfig:
    """`test=<file>`: the data config of one test-only source, labelled by `head` (the checkpoint's only head
    unless named), read with `reader`'s keys and units."""
    existing_file(cfg.test, "test")
    head = cfg.get("head") or (heads[0] if len(heads) == 1 else None)
    if head is None:
        raise UserError(
            f"test={cfg.test}: the checkpoint has heads {', '.join(heads)}; say which fidelity the file's labels are "
            f"with head=<one of them>"
        )
    if head not in heads:
        raise UserError(f"head={head} is not a head of the checkpoint; its heads: {', '.join(heads)}")
    cfg = copy.deepcopy(cfg)  # the data config's interpolations (${seed}, ...) need their root
    with open_dict(cfg):
        cfg.data.fidelity = head
        cfg.data.sources = {
            head: {
                "_target_": "mfff.data.sources.FidelitySource",
                "fidelity": head,
                "test": cfg.test,
                "reader": {"_target_": "mfff.data.readers.ASEReader", **OmegaConf.to_container(cfg.reader)},
            }
        }
    return cfg.data


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
