"""SchNet (Schütt et al., 2018): continuous-filter convolutions on interatomic distances."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from mfff.data.reference import N_ELEMENTS
from mfff.model.interfaces import Backbone
from mfff.model.radial import CosineCutoff, GaussianBasis


class ShiftedSoftplus(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softplus(x) - math.log(2.0)


class SchNetInteraction(nn.Module):
    def __init__(self, n_features: int, n_basis: int):
        super().__init__()
        self.filter = nn.Sequential(
            nn.Linear(n_basis, n_features), ShiftedSoftplus(), nn.Linear(n_features, n_features)
        )
        self.into = nn.Linear(n_features, n_features, bias=False)
        self.out = nn.Sequential(
            nn.Linear(n_features, n_features), ShiftedSoftplus(), nn.Linear(n_features, n_features)
        )

    def forward(self, h, edge_index, rbf, envelope):
        receiver, sender = edge_index[0], edge_index[1]
        messages = self.into(h)[sender] * self.filter(rbf) * envelope[:, None]
        aggregated = torch.zeros_like(h).index_add_(0, receiver, messages)
        return h + self.out(aggregated)


class SchNet(Backbone):
    compilable = True  # model.compile=true: traced and compiled for any batch (tests/model/test_compiled.py)

    def __init__(self, n_features: int = 64, n_interactions: int = 3, n_basis: int = 32, cutoff: float = 5.0):
        super().__init__()
        self.n_features, self.cutoff = n_features, float(cutoff)
        self.embedding = nn.Embedding(N_ELEMENTS, n_features)
        self.rbf = GaussianBasis(cutoff, n_basis)
        self.envelope = CosineCutoff(cutoff)
        self.interactions = nn.ModuleList(SchNetInteraction(n_features, n_basis) for _ in range(n_interactions))

    def forward(self, numbers, edge_index, edge_vectors):
        distance = torch.linalg.norm(edge_vectors, dim=1)
        rbf, envelope = self.rbf(distance), self.envelope(distance)
        h = self.embedding(numbers)
        for block in self.interactions:
            h = block(h, edge_index, rbf, envelope)
        return h
