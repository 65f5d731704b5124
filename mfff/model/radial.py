"""Radial basis functions and the smooth cutoff shared by the backbones."""

from __future__ import annotations

import math

import torch
from torch import nn


class CosineCutoff(nn.Module):
    def __init__(self, cutoff: float):
        super().__init__()
        self.cutoff = float(cutoff)

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        value = 0.5 * (torch.cos(distance * math.pi / self.cutoff) + 1.0)
        return value * (distance < self.cutoff).to(distance.dtype)


class GaussianBasis(nn.Module):
    """SchNet's Gaussians on a uniform grid from 0 to the cutoff."""

    def __init__(self, cutoff: float, n_basis: int):
        super().__init__()
        self.register_buffer("centers", torch.linspace(0.0, cutoff, n_basis))
        self.width = float(cutoff / (n_basis - 1))

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * ((distance[:, None] - self.centers) / self.width) ** 2)


class BesselBasis(nn.Module):
    """sin(n π r / rc) / r, as in PaiNN and DimeNet."""

    def __init__(self, cutoff: float, n_basis: int):
        super().__init__()
        self.register_buffer("frequencies", torch.arange(1, n_basis + 1) * math.pi / cutoff)

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        return torch.sin(distance[:, None] * self.frequencies) / distance[:, None]
