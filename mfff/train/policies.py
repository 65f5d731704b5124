"""Parameter policies: which of a potential's parameters train in a stage, chosen by `_target_`
(conf/strategy/params/). The policy's config is stored in the checkpoint, so a reloaded model is built the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from mfff.errors import UserError


def freeze_prefixes(model: nn.Module, prefixes: list[str]) -> None:
    """requires_grad=False for every parameter whose name starts with one of `prefixes` (each must match one)."""
    names = [name for name, _ in model.named_parameters()]
    for prefix in prefixes:
        if not any(name.startswith(prefix) for name in names):
            tops = sorted({n.split(".")[0] for n in names})
            raise ValueError(f"no parameters are named {prefix}*; the model has {tops}")
    for name, parameter in model.named_parameters():
        if any(name.startswith(prefix) for prefix in prefixes):
            parameter.requires_grad_(False)


@dataclass(frozen=True)
class ParameterPolicy:
    """Everything trains. Subclasses freeze or add parameters in `apply`, before the model is loaded or trained."""

    name = "full"

    def apply(self, potential: nn.Module) -> None:
        """Freeze (or add) parameters of `potential` (a `mfff.model.potential.Potential`)."""

    def load_weights(self, backbone: nn.Module, state: dict) -> None:
        """Load a plain backbone's weights (a checkpoint's, adapters merged) into `backbone` as `apply` left it."""
        backbone.load_state_dict(state, strict=True)

    def merge(self, potential: nn.Module) -> None:
        """Fold parameters `apply` added (adapters) into the layers they adapt, leaving the plain architecture:
        how a trained model is loaded for evaluation, the calculator and further fine-tuning."""

    def config(self) -> dict:
        """The `_target_` config that rebuilds this policy (stored in the checkpoint's hyper-parameters)."""
        return {"_target_": f"{type(self).__module__}.{type(self).__qualname__}", **asdict(self)}

    def describe(self) -> dict:
        return {"name": self.name, **asdict(self)}


class Full(ParameterPolicy):
    """Every parameter trains."""


@dataclass(frozen=True)
class FrozenBackbone(ParameterPolicy):
    """Only the heads train; the backbone stays bit-identical to the one loaded."""

    name = "frozen_backbone"

    def apply(self, potential):
        freeze_prefixes(potential, ["backbone."])


@dataclass(frozen=True)
class Partial(ParameterPolicy):
    """The element embedding and the first `freeze_blocks` interaction blocks stay fixed; the rest trains."""

    name = "partial"
    freeze_blocks: int = 1

    def apply(self, potential):
        n_blocks = len(potential.backbone.interactions)
        blocks = self.freeze_blocks
        if isinstance(blocks, bool) or not isinstance(blocks, int) or not 0 <= blocks <= n_blocks:
            raise UserError(
                f"params.freeze_blocks={blocks!r} (strategy.params, or strategy.finetune.params) but the backbone has "
                f"{n_blocks} interaction blocks; choose 0..{n_blocks}, or strategy/params=frozen_backbone"
            )
        freeze_prefixes(potential, ["backbone.embedding."] + [f"backbone.interactions.{i}." for i in range(blocks)])
