"""MACE (Batatia et al., 2022) from mace-torch's own modules, giving per-atom invariant features to mfff's heads.

mace-torch's `MACE` model is built as mace-torch builds it (its defaults: residual interactions, Bessel radial basis
with a polynomial envelope, spherical harmonics up to `max_ell`, body order `correlation` + 1). mfff keeps its
embedding, radial and angular embeddings, interactions and products, and drops its readouts and atomic energies:
mfff's per-fidelity heads read the invariant (0e) features of every layer, concatenated (MACE's descriptor), and
hold each fidelity's E0.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings

import torch
from ase.data import chemical_symbols
from torch import nn

from mfff.data.reference import N_ELEMENTS
from mfff.errors import UserError
from mfff.model.interfaces import Backbone

BUILT_IN_ELEMENTS = (1, 6, 7, 8)  # H, C, N, O: the built-in dataset
_NO_WEIGHTS_ONLY = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


@contextlib.contextmanager
def _quiet_e3nn():
    """e3nn 0.4.4 compiles its modules with TorchScript, which torch 2.13 deprecates: warnings a user can do nothing
    about, raised while a MACE is built."""
    with warnings.catch_warnings():
        for text in (
            "`torch.jit.script` is deprecated",
            "The TorchScript type system doesn't support instance-level annotations",
            "Environment variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD detected",
        ):
            warnings.filterwarnings("ignore", message=re.escape(text))
        yield


def _import_mace():
    """mace-torch and e3nn, imported with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 only while they load: e3nn 0.4.4 loads
    its constants with a plain torch.load, and mace-torch's __init__ sets the variable for the whole process, which
    would make every later torch.load without an explicit weights_only unpickle arbitrary objects."""
    previous = os.environ.get(_NO_WEIGHTS_ONLY)
    os.environ[_NO_WEIGHTS_ONLY] = "1"
    try:
        # mace-torch prints that the optional cuequivariance GPU kernels are missing; mfff does not use them
        with contextlib.redirect_stdout(io.StringIO()), _quiet_e3nn():
            from e3nn import o3
            from mace.modules import MACE, interaction_classes
    except ImportError as err:
        raise UserError("model/backbone=mace needs mace-torch: pip install 'mfff[mace]'") from err
    finally:
        if previous is None:
            os.environ.pop(_NO_WEIGHTS_ONLY, None)
        else:
            os.environ[_NO_WEIGHTS_ONLY] = previous
    return o3, MACE, interaction_classes


class MACEBlock(nn.Module):
    """One MACE layer: an interaction (equivariant messages) then a product (higher body order)."""

    def __init__(self, interaction: nn.Module, product: nn.Module, first: bool):
        super().__init__()
        self.interaction, self.product, self.first = interaction, product, first

    def forward(
        self,
        node_attrs: torch.Tensor,
        node_feats: torch.Tensor,
        edge_attrs: torch.Tensor,
        edge_feats: torch.Tensor,
        edge_index: torch.Tensor,
        cutoff: torch.Tensor | None,
    ) -> torch.Tensor:
        node_feats, skip = self.interaction(
            node_attrs=node_attrs,
            node_feats=node_feats,
            edge_attrs=edge_attrs,
            edge_feats=edge_feats,
            edge_index=edge_index,
            cutoff=cutoff,
            first_layer=self.first,
        )
        return self.product(node_feats=node_feats, sc=skip, node_attrs=node_attrs)


def mace_torch_model(n_channels, max_L, n_interactions, correlation, max_ell, n_basis, n_polynomial_cutoff,
                     radial_mlp, cutoff, elements) -> nn.Module:  # fmt: skip
    """mace-torch's own `MACE` model of these settings, readouts included (random weights): what the backbone
    takes its layers from, and the peer in the MD speed benchmark."""
    o3, MACEModel, interaction_classes = _import_mace()
    hidden = o3.Irreps("+".join(f"{n_channels}x{ell}{'e' if ell % 2 == 0 else 'o'}" for ell in range(max_L + 1)))
    with _quiet_e3nn():
        return MACEModel(
            r_max=float(cutoff),
            num_bessel=n_basis,
            num_polynomial_cutoff=n_polynomial_cutoff,
            max_ell=max_ell,
            interaction_cls=interaction_classes["RealAgnosticResidualInteractionBlock"],
            interaction_cls_first=interaction_classes["RealAgnosticResidualInteractionBlock"],
            num_interactions=n_interactions,
            num_elements=len(elements),
            hidden_irreps=hidden,
            MLP_irreps=o3.Irreps("16x0e"),
            atomic_energies=torch.zeros(len(elements)).numpy(),
            avg_num_neighbors=1.0,
            atomic_numbers=list(elements),
            correlation=correlation,
            gate=torch.nn.functional.silu,
            radial_MLP=list(radial_mlp),
        )


class MACE(Backbone):
    """Args:
    n_channels, max_L: hidden irreps `n_channels x (0e + 1o + ... up to max_L)`; max_L=0 is the invariant model.
    elements: atomic numbers the model can take (MACE has per-element weights); extend for your data.
    avg_num_neighbors: message normalisation; None = fitted on the training data at the start of training
        (as mace-torch does), then stored in the checkpoint.
    """

    def __init__(
        self,
        n_channels: int = 32,
        max_L: int = 0,
        n_interactions: int = 2,
        correlation: int = 3,
        max_ell: int = 3,
        n_basis: int = 8,
        n_polynomial_cutoff: int = 5,
        radial_mlp: tuple[int, ...] = (64, 64, 64),
        cutoff: float = 5.0,
        elements: tuple[int, ...] = BUILT_IN_ELEMENTS,
        avg_num_neighbors: float | None = None,
    ):
        super().__init__()
        self.elements = sorted(int(z) for z in elements)
        model = mace_torch_model(n_channels, max_L, n_interactions, correlation, max_ell, n_basis,
                                 n_polynomial_cutoff, radial_mlp, cutoff, self.elements)  # fmt: skip
        self.cutoff, self.n_channels = float(cutoff), n_channels
        self.n_features = n_channels * n_interactions  # the 0e channels of every layer
        self.embedding = model.node_embedding
        self.radial_embedding = model.radial_embedding
        self.spherical_harmonics = model.spherical_harmonics
        self.interactions = nn.ModuleList(
            MACEBlock(interaction, product, first=i == 0)
            for i, (interaction, product) in enumerate(zip(model.interactions, model.products))
        )
        element_index = torch.full((N_ELEMENTS,), -1, dtype=torch.long)
        element_index[self.elements] = torch.arange(len(self.elements))
        self.register_buffer("element_index", element_index, persistent=False)
        self.register_buffer("atomic_numbers", torch.tensor(self.elements), persistent=False)
        # a buffer, so the value fitted on the training data travels with the checkpoint
        self.register_buffer("avg_num_neighbors", torch.tensor(float(avg_num_neighbors or 1.0)))
        self.fit_avg_num_neighbors = avg_num_neighbors is None
        self.register_load_state_dict_post_hook(lambda module, keys: module._share_avg_num_neighbors())
        self._share_avg_num_neighbors()

    def _share_avg_num_neighbors(self) -> None:
        for block in self.interactions:
            block.interaction.avg_num_neighbors = float(self.avg_num_neighbors)

    def set_data_statistics(self, avg_neighbours: float) -> None:
        """mace-torch's normalisation: the average number of neighbours within the cutoff in the training data."""
        if self.fit_avg_num_neighbors:
            self.avg_num_neighbors.fill_(float(avg_neighbours))
            self._share_avg_num_neighbors()

    @torch.jit.unused  # an exported (TorchScript) model declares its elements to the engine instead
    def check_elements(self, elements) -> None:
        unknown = sorted({int(z) for z in elements} - set(self.elements))
        if unknown:
            raise UserError(
                f"element(s) {', '.join(chemical_symbols[z] for z in unknown)} are not in model.backbone.elements "
                f"({', '.join(chemical_symbols[z] for z in self.elements)}); add their atomic numbers there"
            )

    def _node_attrs(self, numbers: torch.Tensor) -> torch.Tensor:
        # training data was checked once, when it was bound (no per-step host sync)
        if not self.training and not torch.jit.is_scripting():
            self.check_elements(torch.unique(numbers).tolist())
        return nn.functional.one_hot(self.element_index[numbers], len(self.elements)).to(self.avg_num_neighbors.dtype)

    def forward(self, numbers, edge_index, edge_vectors):
        # mace-torch's convention: edge_index = (sender, receiver), vectors point from sender to receiver;
        # mfff's is (receiver, sender) with vectors from receiver to sender. Messages reach the same atoms.
        edge_index, vectors = edge_index.flip(0), -edge_vectors
        lengths = torch.linalg.norm(vectors, dim=1, keepdim=True)
        node_attrs = self._node_attrs(numbers)
        node_feats = self.embedding(node_attrs)
        edge_attrs = self.spherical_harmonics(vectors)
        edge_feats, cutoff = self.radial_embedding(lengths, node_attrs, edge_index, self.atomic_numbers)
        invariants = []
        for block in self.interactions:
            node_feats = block(node_attrs, node_feats, edge_attrs, edge_feats, edge_index, cutoff)
            invariants.append(node_feats[:, : self.n_channels])  # the 0e channels come first
        return torch.cat(invariants, dim=1)
