"""The trained potential for use: backbone and heads (adapters merged), each head's elements and cutoff, and the
base method a Δ-learning head adds to. A plain `nn.Module`: no Lightning or Hydra object inside."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from ase.data import chemical_symbols
from torch import nn

from mfff.data import keys as K
from mfff.data.batch import Batch
from mfff.errors import UserError
from mfff.model.potential import Potential


@dataclass(frozen=True)
class HeadInfo:
    """What one head (one fidelity) predicts for."""

    name: str
    elements: tuple[int, ...]  # atomic numbers of its training data
    cutoff: float  # Å, the backbone's
    base: dict | None = None  # Δ-learning: {fidelity, labeller} of the method whose energies the head adds to

    @property
    def symbols(self) -> list[str]:
        return [chemical_symbols[z] for z in self.elements]


class InferenceModel(nn.Module):
    """Energies, forces and stress of chosen heads, e.g. `model(batch, head="dft", stress=True)`.

    Args:
        potential: the trained backbone and heads, in the plain architecture (any adapters merged).
        architecture: the {backbone, head} `_target_` configs that rebuild `potential` (kept for saving).
        bases: {head: {fidelity, labeller}} for Δ-learning heads.
    """

    def __init__(self, potential: Potential, architecture: dict, bases: dict | None = None):
        super().__init__()
        self.potential = potential.eval()
        self.architecture = architecture
        self.bases = {name: base for name, base in (bases or {}).items() if name in potential.heads}

    @property
    def heads(self) -> list[str]:
        return self.potential.fidelities

    @property
    def cutoff(self) -> float:
        return float(self.potential.backbone.cutoff)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.potential.parameters()).dtype

    def head_info(self, head: str) -> HeadInfo:
        """A head's elements: those of the model's training data that the head's reference energies cover (a
        head fitted E0 for exactly the elements of its own data)."""
        self.potential.head_index(head)
        covered = self.potential.heads[head].e0 != 0
        elements = tuple(z for z in self.potential.elements if bool(covered[z])) or tuple(self.potential.elements)
        return HeadInfo(head, elements, self.cutoff, self.bases.get(head))

    def keep(self, heads: list[str]) -> InferenceModel:
        """The model with these heads only (the others dropped): what `load(..., head=)` returns."""
        for head in heads:
            self.potential.head_index(head)
        if sorted(heads) == self.heads:
            return self
        kept = Potential(self.potential.backbone, {head: self.potential.heads[head] for head in heads})
        kept.known_elements.copy_(self.potential.known_elements)
        return InferenceModel(kept, self.architecture, self.bases)

    def choose_head(self, head: str | None) -> str:
        """The named head (checked), or the only one."""
        if head is None:
            if len(self.heads) > 1:
                raise UserError(f"the model has heads {', '.join(self.heads)}: choose one with head=<name>")
            return self.heads[0]
        self.potential.head_index(head)
        return head

    def forward(
        self, batch: Batch, head: str | None = None, forces: bool = True, stress: bool = False
    ) -> dict[str, torch.Tensor]:
        """{energy (n_graphs,) eV, forces (n_atoms, 3) eV/Å, stress (n_graphs, 3, 3) eV/Å^3} of one head, without
        a Δ-learning head's base method (the calculator adds that)."""
        out = self.potential(batch, compute_forces=forces, head=self.choose_head(head), compute_stress=stress)
        return {
            name: out[key]
            for name, key in (("energy", K.PRED_ENERGY), ("forces", K.PRED_FORCES), ("stress", K.PRED_STRESS))
            if key in out
        }
