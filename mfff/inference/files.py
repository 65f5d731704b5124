"""Inference files: a trained model saved small and versioned (architecture, weights with adapters merged, heads,
Δ-learning bases; no optimiser or trainer state), and `load`, which reads one, a run dir or a training checkpoint."""

from __future__ import annotations

import io
from pathlib import Path

import torch

import mfff
from mfff.errors import UserError
from mfff.inference.model import InferenceModel
from mfff.model.build import build_potential
from mfff.train.checkpoints import architecture, module_from, read_tensors, resolve_checkpoint
from mfff.utils.atomic import atomic_write_bytes

FORMAT = "mfff-inference"
VERSION = 1  # raise it when a field changes meaning; `load` refuses files of a newer version
DTYPES = ("float32", "float64")


def save(model: InferenceModel, path) -> Path:
    """Write `model` to `path` atomically (a reader sees the old file or the new one)."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "mfff_version": mfff.__version__,
        "architecture": model.architecture,
        "heads": model.heads,
        "bases": model.bases,
        "state_dict": {name: value.detach().cpu() for name, value in model.potential.state_dict().items()},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def load(
    source, head: str | None = None, dtype: str | None = None, device: str = "cpu", key: str = "model"
) -> InferenceModel:
    """The potential of an inference file, a run dir of mfff-train (its best checkpoint) or a .ckpt file.

    Args:
        head: keep only this head (the fidelity the model predicts); None keeps them all.
        dtype: 'float32' or 'float64'; None keeps the dtype the model was trained in.
        key: what names `source` in messages (a config key).
    """
    if dtype not in (None, *DTYPES):
        raise UserError(f"dtype={dtype!r}: choose float32 or float64 (or None, the model's own)")
    path = resolve_checkpoint(source, key)
    contents = read_tensors(path)
    if isinstance(contents, dict) and contents.get("format") == FORMAT:
        model = _from_inference_file(contents, path)
    elif isinstance(contents, dict) and "model" in contents.get("hyper_parameters", {}):
        model = _from_training_checkpoint(contents)
    else:
        raise UserError(f"{path} is neither a checkpoint of mfff-train nor an mfff inference file (mfff.save)")
    if head is not None:
        model = model.keep([head])
    if dtype is not None:
        model = model.to(getattr(torch, dtype))
    return model.to(device).eval()


def _from_inference_file(contents: dict, path: Path) -> InferenceModel:
    if contents["version"] > VERSION:
        raise UserError(
            f"{path} is an inference file of version {contents['version']} (mfff {contents.get('mfff_version')}); "
            f"this mfff reads up to version {VERSION}: upgrade mfff"
        )
    potential = build_potential(contents["architecture"], contents["heads"])
    state = contents["state_dict"]
    potential.to(next(iter(v for v in state.values() if v.is_floating_point())).dtype)
    potential.load_state_dict(state, strict=True)
    return InferenceModel(potential, contents["architecture"], contents["bases"])


def _from_training_checkpoint(checkpoint: dict) -> InferenceModel:
    module = module_from(checkpoint)  # a policy's adapters merged into the weights
    saved = checkpoint["hyper_parameters"]
    return InferenceModel(module.potential, architecture(saved["model"]), dict(saved.get("bases") or {}))
