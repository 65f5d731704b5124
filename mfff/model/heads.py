"""Per-fidelity readout: an MLP on backbone features, scaled, plus that fidelity's per-element E0."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mfff.data.reference import N_ELEMENTS
from mfff.model.interfaces import Head


class MLPHead(Head):
    """atomic energy = scale * MLP(h) + E0[Z]; E0 and scale are fitted on the fidelity's training data.

    E0 (eV, by Z) and `scale` (eV/Å, the training force RMS) are buffers: checkpointed with the head, not trained.
    """

    def __init__(self, n_features: int, hidden: int | None = None, n_layers: int = 2):
        super().__init__()
        hidden = hidden or max(n_features // 2, 1)
        layers, width = [], n_features
        for _ in range(n_layers - 1):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        self.register_buffer("e0", torch.zeros(N_ELEMENTS))
        self.register_buffer("scale", torch.ones(()))

    @torch.no_grad()
    def set_reference(self, e0: np.ndarray, scale: float) -> None:
        self.e0.copy_(torch.as_tensor(e0, dtype=self.e0.dtype))
        self.scale.fill_(float(scale))

    def forward(self, features: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        return self.scale * self.mlp(features).squeeze(-1) + self.e0[numbers]
