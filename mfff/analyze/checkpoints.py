"""What analyses need from trained models (`mfff.load`: run dirs, checkpoints, inference files): per-atom features at
a layer (for similarity) and test-set predictions (for parity plots and errors by molecule), on structures of the
data config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mfff.data.batch import Collater
from mfff.errors import UserError
from mfff.inference.files import load
from mfff.inference.model import InferenceModel
from mfff.utils.instantiate import instantiate

BATCH = 64
PRETRAINED = ":pretrain"  # `<run dir>:pretrain`: the pre-trained checkpoint that run started from


def checkpoint_source(source: str, key: str) -> str:
    """A run dir or .ckpt as given, or for `<run dir>:pretrain` the pre-training checkpoint its metrics.json names
    (a pretrain_finetune run's cached pre-training, a finetune run's `strategy.from`)."""
    from mfff.records import FILENAME, RunRecord

    if not source.endswith(PRETRAINED):
        return source
    run_dir = Path(source[: -len(PRETRAINED)])
    record = RunRecord.read(run_dir / FILENAME)
    if record.pretrain is None or not record.pretrain.checkpoint:
        raise UserError(f"{key}: {run_dir} did not start from a pre-training (its {FILENAME} names none); drop "
                        f"{PRETRAINED} to compare the run's own checkpoint")  # fmt: skip
    return record.pretrain.checkpoint


def test_structures(data_cfg, fidelity: str, split: str, limit: int | None = None) -> list:
    """The first `limit` structures of a test set (`split`, e.g. 'test') of one source of the data config."""
    if fidelity not in data_cfg.sources:
        raise UserError(f"fidelity {fidelity!r} has no source in data.sources ({', '.join(data_cfg.sources)})")
    data = instantiate(data_cfg, key="data", fidelities=[fidelity], dtype="float64")  # structures only: no dtype
    data.setup("test")
    tests = data.sources[fidelity].tests
    if split not in tests:
        raise UserError(f"{fidelity} has no test set {split!r}; it has {', '.join(sorted(tests)) or 'none'}")
    return tests[split][:limit]


def _batches(model: InferenceModel, structures: list, what: str):
    collate = Collater(model.cutoff, dtype=str(model.dtype).removeprefix("torch."))
    chunks = [structures[k : k + BATCH] for k in range(0, len(structures), BATCH)]
    for chunk in tqdm(chunks, desc=what, unit="batch", leave=False):
        loaded = [s.load() for s in chunk]  # a streamed structure is read once, for the batch and its labels
        yield loaded, collate([(s, 0) for s in loaded])


def load_checkpoints(sources: list[str], key: str) -> list[InferenceModel]:
    """The models of `sources` (run dirs, .ckpt or inference files), refused unless they share one architecture:
    features of different backbones or sizes live in different spaces, layer by layer."""
    models = [load(s, key=key) for s in tqdm(sources, desc="loading checkpoints", leave=False)]
    shapes = [m.architecture["backbone"] for m in models]
    for source, shape in zip(sources[1:], shapes[1:]):
        if shape != shapes[0]:
            raise UserError(
                f"{key}: {source} has another backbone or size than {sources[0]} ({shape.get('_target_')} "
                f"{_size(shape)} vs {shapes[0].get('_target_')} {_size(shapes[0])}); compare checkpoints of one "
                "architecture"
            )
    return models


def _size(shape: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(shape.items()) if k != "_target_" and not isinstance(v, dict))


def atom_features(model: InferenceModel, structures: list, layer: str | None = None) -> np.ndarray:
    """(atoms, features) of the backbone's output, or of its submodule `layer` (e.g. 'blocks.0'; for a module that
    returns several tensors, the first per-atom one: the invariant features)."""
    backbone = model.potential.backbone
    try:
        target = backbone.get_submodule(layer) if layer else backbone
    except AttributeError as err:
        names = ", ".join(n for n, _ in backbone.named_modules() if n and n.count(".") < 2)
        raise UserError(f"similarity.layer={layer!r} is not a module of the backbone; it has: {names}") from err
    captured, parts = [], []
    handle = target.register_forward_hook(lambda _m, _i, output: captured.append(output))
    try:
        with torch.no_grad():
            for _, batch in _batches(model, structures, "features"):
                captured.clear()
                model.potential(batch, compute_forces=False, check_elements=False)
                parts.append(_per_atom(captured[-1], int(batch.numbers.shape[0]), layer))
    finally:
        handle.remove()
    return np.concatenate(parts)


def _per_atom(output, n_atoms: int, layer: str | None) -> np.ndarray:
    candidates = output if isinstance(output, (tuple, list)) else [output]
    for tensor in candidates:
        if isinstance(tensor, torch.Tensor) and tensor.dim() >= 2 and tensor.shape[0] == n_atoms:
            return tensor.reshape(n_atoms, -1).double().numpy()
    raise UserError(f"similarity.layer={layer!r} gives no per-atom features (no tensor with one row per atom)")


@dataclass
class Predictions:
    energy_per_atom: np.ndarray  # (structures, 2): label, predicted, eV/atom
    forces: np.ndarray  # (force components, 2): label, predicted, eV/Å
    groups: list[str]  # the molecule of each structure
    force_groups: list[str]  # the molecule of each force component


def predictions(model: InferenceModel, structures: list, fidelity: str) -> Predictions:
    """The model's `fidelity` head on the structures, beside their labels (unlabelled ones left out)."""
    energies, forces, groups, force_groups = [], [], [], []
    for chunk, batch in _batches(model, structures, f"predicting {fidelity}"):
        out = model(batch, head=fidelity)
        predicted_forces = out["forces"].detach().double().numpy()
        predicted_energy = out["energy"].detach().double().numpy()
        start = 0
        for s, energy in zip(chunk, predicted_energy):
            n = len(s)
            if s.has_energy:
                energies.append((s.energy / n, energy / n))
                groups.append(s.group)
            if s.forces is not None:
                kept = np.isfinite(s.forces).all(axis=1)
                pairs = np.stack([s.forces[kept].ravel(), predicted_forces[start : start + n][kept].ravel()], 1)
                forces.append(pairs)
                force_groups += [s.group] * len(pairs)
            start += n
    return Predictions(np.array(energies).reshape(-1, 2), np.concatenate(forces) if forces else np.zeros((0, 2)),
                       groups, force_groups)  # fmt: skip
