"""Start a model from a pre-trained checkpoint: strict backbone load, explicit head choices, reference energies."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mfff.data.errors import DataError
from mfff.train.checkpoints import check_compatible, read_checkpoint
from mfff.train.module import MultiFidelityModule, reference_scale

log = logging.getLogger(__name__)

TRAIN_MODES = ("full", "frozen_backbone", "partial")
HEAD_MODES = ("new", "reuse")
REFERENCE_MODES = ("refit", "keep")


def pretrain_record(checkpoint: Path) -> dict:
    """What the pre-training run recorded (metrics.json beside its checkpoints/), for the fine-tune's metrics."""
    record: dict = {"checkpoint": str(checkpoint)}
    metrics = checkpoint.parent.parent / "metrics.json"
    if metrics.is_file():
        saved = json.loads(metrics.read_text())
        record.update(
            {
                k: saved[k]
                for k in ("strategy", "n_train", "label_cost_cpu_s", "epochs", "wall_s", "metrics")
                if k in saved
            }
        )
    return record


@dataclass
class Transfer:
    """How a fine-tuning model is initialised from a pre-trained checkpoint.

    Args:
        target: the fidelity being fine-tuned (its head trains).
        train: 'full', 'frozen_backbone' (heads only) or 'partial' (embedding + first `freeze_blocks` blocks frozen).
        head: 'reuse' starts the target head from the pre-trained head `source_head`; 'new' starts a fresh one.
        reference: 'refit' fits the target head's per-element E0 on the fine-tuning data; 'keep' keeps the
            pre-trained head's E0 (which belongs to another method's absolute energies).
        retain: pre-trained heads kept unchanged in the new model (to evaluate forgetting).
    """

    checkpoint: Path
    target: str
    train: str = "full"
    freeze_blocks: int = 0
    head: str = "reuse"
    source_head: str | None = None
    reference: str = "refit"
    retain: list[str] = field(default_factory=list)

    def __post_init__(self):
        for key, value, allowed in (
            ("train", self.train, TRAIN_MODES),
            ("head", self.head, HEAD_MODES),
            ("reference", self.reference, REFERENCE_MODES),
        ):
            if value not in allowed:
                raise DataError(f"strategy.{key}={value!r} is unknown; choose one of {', '.join(allowed)}")
        self.saved = read_checkpoint(self.checkpoint)
        self.saved_heads = list(self.saved["hyper_parameters"]["fidelities"])
        if self.source_head is None:
            self.source_head = self._default_source_head()
        for key, name in (("strategy.source_head", self.source_head), *(("strategy.retain", r) for r in self.retain)):
            if name not in self.saved_heads:
                raise DataError(
                    f"{key}={name!r} is not a head of {self.checkpoint}; its heads are {', '.join(self.saved_heads)}"
                )

    def _default_source_head(self) -> str:
        if self.target in self.saved_heads:
            return self.target
        if len(self.saved_heads) == 1:
            return self.saved_heads[0]
        raise DataError(
            f"{self.checkpoint} has heads {', '.join(self.saved_heads)}; name the one to start from with "
            "strategy.source_head=<fidelity>"
        )

    @property
    def heads(self) -> list[str]:
        return sorted({self.target, *self.retain})

    def frozen(self, n_blocks: int) -> list[str]:
        """Parameter-name prefixes that stay fixed while fine-tuning."""
        if self.train == "full":
            return []
        if self.train == "frozen_backbone":
            return ["potential.backbone."]
        if not 0 <= self.freeze_blocks <= n_blocks:
            raise DataError(
                f"strategy.freeze_blocks={self.freeze_blocks} but the backbone has {n_blocks} interaction blocks; "
                f"choose 0..{n_blocks} (or strategy.train=frozen_backbone)"
            )
        return ["potential.backbone.embedding."] + [
            f"potential.backbone.interactions.{i}." for i in range(self.freeze_blocks)
        ]

    def check(self, model_cfg: dict) -> None:
        check_compatible(self.saved, model_cfg, self.saved_heads, self.checkpoint)

    def apply(self, module: MultiFidelityModule, stats: dict[str, dict]) -> None:
        """Load the pre-trained weights into `module` (strictly), then set the target head's references."""
        state = self.saved["state_dict"]
        module.potential.backbone.load_state_dict(_sub_state(state, "potential.backbone."), strict=True)
        module.potential.known_elements |= state["potential.known_elements"].to(torch.bool)
        for name in self.retain:
            if name != self.target:
                module.potential.heads[name].load_state_dict(_sub_state(state, f"potential.heads.{name}."))
        head = module.potential.heads[self.target]
        source = _sub_state(state, f"potential.heads.{self.source_head}.")
        if self.head == "reuse":
            head.load_state_dict(source, strict=True)
        target_stats = stats[self.target]
        # a reused readout keeps the output scale it learned with; a new one gets this fidelity's scale
        scale = float(head.scale) if self.head == "reuse" else reference_scale(target_stats)
        e0 = target_stats["e0"] if self.reference == "refit" else source["e0"].numpy()
        head.set_reference(e0, scale)
        module.potential.mark_known_elements(target_stats["elements"])
        log.info(
            "fine-tune from %s: backbone loaded (%s); head %s %s; E0 %s; retained heads: %s",
            self.checkpoint,
            self.train if self.train != "partial" else f"partial, {self.freeze_blocks} blocks frozen",
            self.target,
            f"reuses head {self.source_head}" if self.head == "reuse" else "is new",
            "re-fitted on the fine-tuning data" if self.reference == "refit" else f"kept from head {self.source_head}",
            ", ".join(self.retain) or "none",
        )


def _sub_state(state: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
