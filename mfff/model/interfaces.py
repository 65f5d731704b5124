"""The two model interfaces: a backbone makes per-atom features, a head turns them into atomic energies."""

from __future__ import annotations

import abc

import torch
from torch import nn


class Backbone(nn.Module, abc.ABC):
    """Per-atom invariant features from atomic numbers and edge vectors.

    Subclasses set `n_features` (int), `cutoff` (float, Å), `embedding` (the element embedding) and `interactions`
    (an nn.ModuleList of message-passing blocks, in order), so fine-tuning can freeze the embedding and the first k
    blocks by name. (Not declared as class annotations: TorchScript, which the metatomic export needs, cannot read
    them.)
    """

    # model.compile=true traces the forward pass with symbolic sizes; a backbone that turns a size into a Python
    # number would be traced for one batch shape only, so compilation is allowed where it was checked to work
    compilable: bool = False

    @abc.abstractmethod
    def forward(self, numbers: torch.Tensor, edge_index: torch.Tensor, edge_vectors: torch.Tensor) -> torch.Tensor:
        """(n_atoms,), (2, n_edges), (n_edges, 3) -> (n_atoms, n_features)."""

    def check_elements(self, elements) -> None:  # noqa: B027 (a hook: most backbones take every element)
        """Raise a UserError for atomic numbers this backbone cannot embed. Called once on the training data's
        elements, so the training step itself never has to read its inputs' values (a host sync on a GPU)."""

    def set_data_statistics(self, avg_neighbours: float) -> None:  # noqa: B027 (a hook: most backbones need none)
        """Take statistics of the training data before training from scratch (MACE normalises its messages by the
        average neighbour count)."""


class Head(nn.Module, abc.ABC):
    """Atomic energies (eV) of one fidelity from backbone features: a learned readout times `scale`, plus the
    fidelity's per-element reference energies `e0`. Both are fitted on the fidelity's training data by the model
    builders (`set_reference`) and checkpointed with the head, as buffers: `e0` (119,) eV by atomic number, `scale`
    () the readout's output scale (eV/Å: the training force RMS)."""

    @abc.abstractmethod
    def set_reference(self, e0, scale: float) -> None:
        """Set `e0` (an array by atomic number) and `scale`."""

    @abc.abstractmethod
    def forward(self, features: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        """(n_atoms, n_features), (n_atoms,) -> (n_atoms,)."""
