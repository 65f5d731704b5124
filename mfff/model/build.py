"""A potential from its architecture config: what training, checkpoints and inference files all build from."""

from __future__ import annotations

from mfff.model.potential import Potential
from mfff.utils.instantiate import instantiate


def build_potential(model_cfg, fidelities: list[str]) -> Potential:
    """Backbone from `model.backbone` (with `model.size` merged in), one `model.head` per fidelity."""
    backbone = instantiate(model_cfg["backbone"])
    heads = {f: instantiate(model_cfg["head"], n_features=backbone.n_features) for f in fidelities}
    return Potential(backbone, heads)
