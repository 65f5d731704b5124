"""Parameter policies: which of a potential's parameters train in a stage, chosen by `_target_`
(conf/strategy/params/). The policy's config is stored in the checkpoint, so a reloaded model is built the same way.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import asdict, dataclass

import torch
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


class LoRALinear(nn.Module):
    """A frozen `nn.Linear` plus a trainable low-rank update, y = W x + b + (alpha / rank) B A x (Hu et al. 2021).
    B starts at zero, so the layer starts exactly as the one it wraps."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.scaling = float(alpha) / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, dtype=base.weight.dtype))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, dtype=base.weight.dtype))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scaling

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        layer = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        layer = layer.to(self.base.weight.dtype)
        layer.weight.copy_(self.base.weight + self.scaling * self.lora_b @ self.lora_a)
        if self.base.bias is not None:
            layer.bias.copy_(self.base.bias)
        return layer


@dataclass(frozen=True)
class LoRA(ParameterPolicy):
    """Low-rank adapters on the backbone's `nn.Linear` layers; the backbone's own weights stay bit-identical and
    the heads train. Loading the checkpoint merges the adapters into the weights.

    Args:
        rank, alpha: the update is (alpha / rank) B A with A (rank x in), B (out x rank).
        layers: shell patterns (fnmatch) of the backbone's layer names to adapt, e.g. ['interactions.1.*'];
            null: every nn.Linear. mace-torch's e3nn layers are not nn.Linear: MACE gets no adapters from this.
    """

    name = "lora"
    rank: int = 4
    alpha: float = 8.0
    layers: list[str] | None = None

    def apply(self, potential):
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise UserError(f"params.rank={self.rank!r} (strategy.params) must be a whole number >= 1")
        freeze_prefixes(potential, ["backbone."])
        backbone = potential.backbone
        linear = [name for name, m in backbone.named_modules() if isinstance(m, nn.Linear)]
        chosen = [n for n in linear if self.layers is None or any(fnmatch.fnmatch(n, p) for p in self.layers)]
        if not chosen:
            raise UserError(
                f"params.layers={self.layers} (strategy.params) matches none of the backbone's nn.Linear layers "
                f"({', '.join(linear) or f'{type(backbone).__name__} has none'})"
            )
        for name in chosen:
            backbone.set_submodule(name, LoRALinear(backbone.get_submodule(name), self.rank, self.alpha))

    def load_weights(self, backbone, state):
        adapted = {name for name, m in backbone.named_modules() if isinstance(m, LoRALinear)}
        renamed = {}
        for key, value in state.items():
            layer, _, leaf = key.rpartition(".")
            renamed[f"{layer}.base.{leaf}" if layer in adapted else key] = value
        missing, unexpected = backbone.load_state_dict(renamed, strict=False)
        if unexpected or any(".lora_" not in key for key in missing):  # only the new adapters start unloaded
            raise RuntimeError(f"LoRA: backbone weights do not fit: missing {missing}, unexpected {unexpected}")

    def merge(self, potential):
        adapted = [name for name, m in potential.backbone.named_modules() if isinstance(m, LoRALinear)]
        for name in adapted:
            potential.backbone.set_submodule(name, potential.backbone.get_submodule(name).merged())
