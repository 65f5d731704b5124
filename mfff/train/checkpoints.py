"""Strict checkpoint compatibility: a checkpoint of another architecture is refused with both configs named."""

from __future__ import annotations

from pathlib import Path

import torch

from mfff.data.errors import DataError


def read_checkpoint(path) -> dict:
    """Load a checkpoint written by mfff-train, or fail naming the path and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist; give the path to a .ckpt file written by mfff-train")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises various types for non-checkpoints
        raise DataError(f"{path} is not a readable PyTorch checkpoint: {err}") from err
    if "model" not in checkpoint.get("hyper_parameters", {}):
        raise DataError(f"{path} was not written by mfff-train (no model hyper-parameters inside)")
    return checkpoint


def architecture(model_cfg: dict) -> dict:
    """The parts of a model config that determine parameter shapes."""
    return {"backbone": dict(model_cfg["backbone"]), "head": dict(model_cfg["head"])}


def check_compatible(checkpoint: dict, model_cfg: dict, fidelities: list[str], path) -> None:
    saved = checkpoint["hyper_parameters"]
    theirs, ours = architecture(saved["model"]), architecture(model_cfg)
    if theirs != ours:
        raise DataError(
            f"checkpoint {path} holds a different architecture:\n  checkpoint: {theirs}\n  config:     "
            f"{ours}\nuse the checkpoint's model/backbone and model/size, or another checkpoint"
        )
    if sorted(saved.get("fidelities", [])) != sorted(fidelities):
        raise DataError(
            f"checkpoint {path} has heads {saved.get('fidelities')} but the config trains {sorted(fidelities)}"
        )
