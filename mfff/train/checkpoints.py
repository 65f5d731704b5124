"""Finding, reading and checking checkpoints: run dirs are accepted wherever a .ckpt is, files are loaded without
running pickled code, and a checkpoint of another architecture or with other settings is refused with both named."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import torch

from mfff.errors import UserError
from mfff.records import FILENAME, RunRecord
from mfff.train.settings import Role

log = logging.getLogger(__name__)


def resolve_checkpoint(source, key: str, prefer: str = "best") -> Path:
    """A .ckpt file, or a run dir of mfff-train: its best checkpoint (metrics.json's, else checkpoints/best.ckpt),
    or with prefer='last' its checkpoints/last.ckpt (to resume where it stopped)."""
    if source is None or str(source) in ("", "???"):
        raise UserError(f"{key} is not set; give a run dir of mfff-train or a .ckpt file")
    path = Path(str(source)).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise UserError(f"{key}={path} does not exist; give a run dir of mfff-train or a .ckpt file")
    candidates = [path / "checkpoints" / "best.ckpt", path / "checkpoints" / "last.ckpt"]
    metrics = path / FILENAME
    if metrics.is_file():
        best = RunRecord.read(metrics).best_checkpoint
        if best:
            candidates.insert(0, Path(best))
    if prefer == "last":
        candidates.reverse()
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise UserError(
        f"{key}={path} is a directory without a checkpoint (looked for {', '.join(str(c) for c in candidates)}); "
        "point it at a run dir of mfff-train that saved one, or at a .ckpt file"
    )


def read_checkpoint(path, mmap: bool = False) -> dict:
    """Load a checkpoint written by mfff-train, or fail naming the path and what is wrong with it.
    `mmap`: map the file instead of reading it, so tensors are read only when used (to look at its step)."""
    checkpoint = read_tensors(path, mmap)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint.get("hyper_parameters", {}):
        raise UserError(f"{path} was not written by mfff-train (no model hyper-parameters inside)")
    return checkpoint


def read_tensors(path, mmap: bool = False):
    """A PyTorch file's contents, unpickling only tensors and plain values (torch's weights_only), so a foreign
    file cannot run code; a missing or unreadable file is named."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; give a run dir of mfff-train or a .ckpt file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        if "Unsupported global" not in str(err):  # garbage, rather than pickled objects torch refuses
            raise UserError(f"{path} is not a readable PyTorch checkpoint; was it written by mfff-train?") from None
        raise UserError(
            f"{path} is not a checkpoint written by mfff-train: it holds Python objects beyond tensors and plain "
            "values, which mfff does not unpickle (that could run code from the file)"
        ) from None
    except Exception as err:  # torch raises various types for files that are no checkpoint at all
        raise UserError(
            f"{path} is not a readable PyTorch checkpoint ({type(err).__name__}); was it written by mfff-train?"
        ) from err


def load_module(source, key: str = "ckpt", map_location="cpu"):
    """The trained `MultiFidelityModule` of a run dir or .ckpt, in eval mode."""
    path = resolve_checkpoint(source, key)
    module = module_from(read_checkpoint(path))
    module.checkpoint_path = path
    return module.to(map_location).eval()


def module_from(checkpoint: dict):
    """The `MultiFidelityModule` of a checkpoint already read, with its policy's adapters folded into the weights:
    the plain architecture, as fast as it."""
    from mfff.train.module import MultiFidelityModule

    hyper_parameters = dict(checkpoint["hyper_parameters"])
    for legacy in ("frozen", "use_forces"):  # older checkpoints' training-only settings; evaluation needs neither
        hyper_parameters.pop(legacy, None)
    module = MultiFidelityModule(**hyper_parameters)
    module.load_state_dict(checkpoint["state_dict"])
    module.policy.merge(module.potential)
    return module


def architecture(model_cfg: dict) -> dict:
    """The parts of a model config that determine parameter shapes."""
    return {"backbone": dict(model_cfg["backbone"]), "head": dict(model_cfg["head"])}


def check_compatible(checkpoint: dict, model_cfg: dict, fidelities: list[str], path) -> None:
    saved = checkpoint["hyper_parameters"]
    theirs, ours = architecture(saved["model"]), architecture(model_cfg)
    if theirs != ours:
        raise UserError(
            f"checkpoint {path} holds a different architecture:\n  checkpoint: {theirs}\n  config:     "
            f"{ours}\nuse the checkpoint's model/backbone and model/size, or another checkpoint"
        )
    if sorted(saved.get("fidelities", [])) != sorted(fidelities):
        raise UserError(
            f"checkpoint {path} has heads {saved.get('fidelities')} but the config trains {sorted(fidelities)}"
        )


def differences(saved, current, prefix: str = "") -> list[str]:
    """'key: saved -> current' for every leaf that differs between two nested dicts."""
    if isinstance(saved, dict) and isinstance(current, dict):
        return [
            line
            for k in sorted(set(saved) | set(current), key=str)
            for line in differences(saved.get(k), current.get(k), f"{prefix}.{k}" if prefix else str(k))
        ]
    return [] if saved == current else [f"{prefix}: {saved!r} (checkpoint) -> {current!r} (now)"]


def check_resume(checkpoint: dict, settings: dict, path) -> None:
    """Resuming continues the checkpoint's run: a change to a setting that determines the weights
    (`mfff.train.settings`, stored in the checkpoint) is refused, since Lightning restores the old optimiser, schedule
    and data order; a longer or shorter run (LENGTH settings) is applied, and said so."""
    saved = checkpoint["hyper_parameters"].get("settings") or {}
    if saved.get("schema") != settings["schema"]:
        log.warning("resume=%s: the checkpoint was written by another mfff version (settings schema %s, now %s); "
                    "its settings are not compared", path, saved.get("schema", 1), settings["schema"])  # fmt: skip
        return
    changed = differences(saved[Role.WEIGHTS.value], settings[Role.WEIGHTS.value]) + differences(
        saved[Role.STAGE.value], settings[Role.STAGE.value], "stage"
    )
    if changed:
        raise UserError(
            f"resume={path}: this run's settings differ from the checkpoint's, and resuming would keep the "
            "checkpoint's: " + "; ".join(changed) + ". Resume with the checkpoint's settings, or start a new run "
            f"from its weights with strategy=finetune strategy.from={path}"
        )
    for line in differences(saved[Role.LENGTH.value], settings[Role.LENGTH.value]):
        log.info("resume: %s; the learning-rate schedule is stretched to the new length", line)
