"""Model builders: how a stage's model starts, from random weights or from a checkpoint, head by head as its
fidelities say (`mfff.train.fidelity.HeadStart`)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from mfff.data.stats import SourceStats
from mfff.errors import UserError
from mfff.records import FILENAME, PretrainRef, RunRecord
from mfff.train.checkpoints import check_compatible, module_from, read_checkpoint, resolve_checkpoint
from mfff.train.fidelity import Fidelity
from mfff.train.module import MultiFidelityModule

log = logging.getLogger(__name__)


def fit_to_data(module: MultiFidelityModule, fidelity: str, stats: SourceStats, readout_loaded: bool, e0=None) -> None:
    """A trained head's reference energies (fitted E0 unless given) and output scale (kept if its readout was
    loaded: it learned with that scale), and the elements it has seen."""
    head = module.potential.heads[fidelity]
    scale = float(head.scale) if readout_loaded else stats.output_scale
    head.set_reference(stats.e0 if e0 is None else e0, scale)
    module.potential.backbone.check_elements(stats.elements)
    module.potential.mark_known_elements(stats.elements)


class FromScratch:
    """Random weights; every head is new, with E0 and scale fitted on its fidelity's training data."""

    def check(self, model_cfg: dict, fidelities: list[Fidelity]) -> None:
        loading = [f.name for f in fidelities if f.head != type(f.head)()]
        if loading:
            raise UserError(f"head {loading[0]!r} starts from a checkpoint, but this stage has none to load")

    def initialise(self, module: MultiFidelityModule, fidelities: list[Fidelity], stats: dict[str, SourceStats]):
        for fidelity in fidelities:
            fit_to_data(module, fidelity.name, stats[fidelity.name], readout_loaded=False)
        total = sum(s.n_train for s in stats.values())
        average = sum(s.avg_neighbours * s.n_train for s in stats.values()) / max(1, total)
        module.potential.backbone.set_data_statistics(average)  # e.g. MACE's message normalisation

    def describe(self) -> dict:
        return {"name": "scratch"}


class FromCheckpoint:
    """The backbone of a checkpoint (loaded strictly; its architecture must be the config's), and heads started
    as their fidelities say. The checkpoint is read when first needed.

    Args:
        checkpoint: a run dir of mfff-train (its best checkpoint) or a .ckpt file.
        key: the config key that names the checkpoint, for messages.
    """

    def __init__(self, checkpoint=None, key: str = "strategy.builder.checkpoint"):
        self.source, self.key = checkpoint, key
        self._loaded: tuple | None = None

    def _load(self) -> tuple:
        if self._loaded is None:
            path = resolve_checkpoint(self.source, self.key)
            saved = read_checkpoint(path)
            # the weights as the plain architecture holds them (a policy's adapters merged in)
            self._loaded = path, saved, module_from(saved).state_dict()
        return self._loaded

    @property
    def checkpoint(self) -> Path:
        return self._load()[0]

    @property
    def saved(self) -> dict:
        return self._load()[1]

    @property
    def state(self) -> dict:
        return self._load()[2]

    @property
    def heads(self) -> list[str]:
        return list(self.saved["hyper_parameters"]["fidelities"])

    def describe(self) -> dict:
        return {"name": "checkpoint", "checkpoint": str(self.source)}

    def check(self, model_cfg: dict, fidelities: list[Fidelity]) -> None:
        for fidelity in fidelities:
            for name in fidelity.head.checkpoint_heads():
                if name not in self.heads:
                    raise UserError(
                        f"head {fidelity.name!r} starts from head {name!r}, which is not a head of {self.checkpoint}; "
                        f"its heads are {', '.join(self.heads)}"
                    )
        check_compatible(self.saved, model_cfg, self.heads, self.checkpoint)

    def _head_state(self, name: str) -> dict:
        return _sub_state(self.state, f"potential.heads.{name}.")

    def initialise(self, module: MultiFidelityModule, fidelities: list[Fidelity], stats: dict[str, SourceStats]):
        state = self.state
        module.policy.load_weights(module.potential.backbone, _sub_state(state, "potential.backbone."))
        module.potential.known_elements |= state["potential.known_elements"].to(torch.bool)
        for fidelity in fidelities:
            start = fidelity.head
            head = module.potential.heads[fidelity.name]
            if start.readout_from is not None:
                head.load_state_dict(self._head_state(start.readout_from), strict=True)
            if start.frozen:  # exactly as loaded: its labels may still train the backbone through it
                head.requires_grad_(False)
                continue
            e0 = self._head_state(start.reference_from)["e0"].numpy() if start.reference_from else None
            fit_to_data(module, fidelity.name, stats[fidelity.name], start.readout_from is not None, e0)
        log.info(
            "started from %s: backbone loaded; %s",
            self.checkpoint,
            "; ".join(f"head {f.name}: {_describe(f)}" for f in fidelities),
        )


def _describe(fidelity: Fidelity) -> str:
    start = fidelity.head
    if start.frozen:
        return f"head {start.readout_from} kept frozen ({fidelity.role})"
    readout = f"readout of head {start.readout_from}" if start.readout_from else "new readout"
    reference = f"E0 kept from head {start.reference_from}" if start.reference_from else "E0 fitted on its data"
    return f"{readout}, {reference}"


def pretrain_record(checkpoint: Path) -> PretrainRef:
    """What the pre-training run recorded (metrics.json beside its checkpoints/), for the fine-tune's metrics."""
    path = Path(checkpoint).parent.parent / FILENAME
    return PretrainRef.of(checkpoint, RunRecord.read(path) if path.is_file() else None)


def _sub_state(state: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
