"""PaiNN (Schütt et al., 2021): equivariant message passing with scalar and vector features."""

from __future__ import annotations

import torch
from torch import nn

from mfff.data.reference import N_ELEMENTS
from mfff.model.interfaces import Backbone
from mfff.model.radial import BesselBasis, CosineCutoff

_EPS = 1e-8  # keeps the norm of zero vectors differentiable (vector features start at zero)


class PaiNNMessage(nn.Module):
    def __init__(self, n_features: int, n_basis: int):
        super().__init__()
        self.n = n_features
        self.phi = nn.Sequential(nn.Linear(n_features, n_features), nn.SiLU(), nn.Linear(n_features, 3 * n_features))
        self.filter = nn.Linear(n_basis, 3 * n_features)  # applied by PaiNN.forward, once for all blocks

    def forward(
        self,
        s: torch.Tensor,
        v: torch.Tensor | None,
        edge_index: torch.Tensor,
        filters: torch.Tensor,
        unit: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """filters: this block's filter(rbf) times the cutoff envelope, (n_edges, 3 n). v=None: all zeros (the
        first block), whose v[sender] term is skipped rather than multiplied by zero."""
        receiver, sender = edge_index[0], edge_index[1]
        x = self.phi(s)[sender] * filters
        ds, dv_v, dv_r = torch.split(x, self.n, dim=1)
        dv = dv_r[:, None, :] * unit[:, :, None]
        if v is None:
            v = dv.new_zeros((s.shape[0], 3, self.n))
        else:
            dv = dv + v[sender] * dv_v[:, None, :]
        return s.index_add(0, receiver, ds), v.index_add(0, receiver, dv)


class PaiNNUpdate(nn.Module):
    def __init__(self, n_features: int):
        super().__init__()
        self.n, self.eps = n_features, _EPS  # an attribute: TorchScript reads no module-level floats
        self.u = nn.Linear(n_features, n_features, bias=False)
        self.w = nn.Linear(n_features, n_features, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(2 * n_features, n_features), nn.SiLU(), nn.Linear(n_features, 3 * n_features)
        )

    def forward(self, s, v):
        uv, wv = self.u(v), self.w(v)
        norm = torch.sqrt(torch.sum(wv**2, dim=1) + self.eps)
        a_vv, a_sv, a_ss = torch.split(self.mlp(torch.cat([s, norm], dim=1)), self.n, dim=1)
        v = v + a_vv[:, None, :] * uv
        s = s + a_sv * torch.sum(uv * wv, dim=1) + a_ss
        return s, v


class PaiNNBlock(nn.Module):
    def __init__(self, n_features: int, n_basis: int):
        super().__init__()
        self.message = PaiNNMessage(n_features, n_basis)
        self.update = PaiNNUpdate(n_features)

    def forward(
        self,
        s: torch.Tensor,
        v: torch.Tensor | None,
        edge_index: torch.Tensor,
        filters: torch.Tensor,
        unit: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        s, v_out = self.message(s, v, edge_index, filters, unit)
        return self.update(s, v_out)


class PaiNN(Backbone):
    compilable = True  # model.compile=true: traced and compiled for any batch (tests/model/test_compiled.py)

    def __init__(self, n_features: int = 64, n_interactions: int = 3, n_basis: int = 20, cutoff: float = 5.0):
        super().__init__()
        self.n_features, self.cutoff = n_features, float(cutoff)
        self.embedding = nn.Embedding(N_ELEMENTS, n_features)
        self.rbf = BesselBasis(cutoff, n_basis)
        self.envelope = CosineCutoff(cutoff)
        self.interactions = nn.ModuleList(PaiNNBlock(n_features, n_basis) for _ in range(n_interactions))

    def forward(self, numbers, edge_index, edge_vectors):
        distance = torch.linalg.norm(edge_vectors, dim=1)
        unit = edge_vectors / distance[:, None]
        rbf, envelope = self.rbf(distance), self.envelope(distance)
        # every block's filter in one product with the envelope (as SchNetPack does), not one per block; each block
        # keeps its own filter layer, so freezing or adapting a block still reaches it
        filters = torch.cat([block.message.filter(rbf) for block in self.interactions], dim=1) * envelope[:, None]
        s, v = self.embedding(numbers), None
        block_filters = filters.split(3 * self.n_features, dim=1)
        for k, block in enumerate(self.interactions):  # enumerate, not zip: TorchScript iterates a ModuleList so
            s, v = block(s, v, edge_index, block_filters[k], unit)
        return s
