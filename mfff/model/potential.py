"""The potential: a backbone, one head per fidelity (ModuleDict, sorted), energies and forces = -dE/dx."""

from __future__ import annotations

import torch
from ase.data import chemical_symbols
from torch import nn

from mfff.data import keys as K
from mfff.data.batch import Batch
from mfff.data.reference import N_ELEMENTS
from mfff.errors import UserError
from mfff.model.interfaces import Backbone, Head


class Potential(nn.Module):
    """Each structure's energy comes from the head of its fidelity (or from one named head for all)."""

    def __init__(self, backbone: Backbone, heads: dict[str, Head]):
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict({name: heads[name] for name in sorted(heads)})
        self.register_buffer("known_elements", torch.zeros(N_ELEMENTS, dtype=torch.bool))

    @property
    def fidelities(self) -> list[str]:
        return list(self.heads)

    def mark_known_elements(self, elements) -> None:
        self.known_elements[list(elements)] = True

    @property
    def elements(self) -> list[int]:
        """Atomic numbers of the training data (all of them, for a model that never recorded its elements)."""
        known = self.known_elements if self.known_elements.any() else torch.ones_like(self.known_elements)
        return torch.nonzero(known).flatten().tolist()

    def check_elements(self, numbers: torch.Tensor) -> None:
        """A clear error for elements the training data never had (a host sync: eval only)."""
        if self.known_elements.any() and not bool(self.known_elements[numbers].all()):
            unknown = sorted({int(z) for z in numbers[~self.known_elements[numbers]]})
            known = [chemical_symbols[z] for z in self.elements]
            raise UserError(
                f"element(s) {', '.join(chemical_symbols[z] for z in unknown)} never appeared in this "
                f"model's training data ({', '.join(known)}); it cannot predict them"
            )

    def _atomic_by_head(self, features: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Each head on its own atoms only: atoms sorted by head, split by the collater's host-side counts (no
        device read), and put back in place. A head without atoms in the batch still runs, on none, so every head's
        parameters join each step's graph (DDP needs that)."""
        if len(batch.head_atoms) > len(self.heads):
            raise UserError(f"the batch has structures of head index {len(batch.head_atoms) - 1}, but the model "
                            f"has {len(self.heads)} heads ({', '.join(self.heads)})")  # fmt: skip
        counts = list(batch.head_atoms) + [0] * (len(self.heads) - len(batch.head_atoms))
        order = torch.argsort(batch.fidelity[batch.batch], stable=True)
        parts = zip(self.heads.values(), features[order].split(counts), batch.numbers[order].split(counts))
        atomic_sorted = torch.cat([h(part, numbers) for h, part, numbers in parts])
        return torch.empty_like(atomic_sorted).index_copy(0, order, atomic_sorted)

    def head_index(self, fidelity: str) -> int:
        if fidelity not in self.heads:
            raise UserError(f"the model has no head for fidelity {fidelity!r}; its heads are {', '.join(self.heads)}")
        return self.fidelities.index(fidelity)

    def forward(
        self,
        batch: Batch,
        compute_forces: bool = True,
        head: str | None = None,
        check_elements: bool = True,
        compute_stress: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Returns pred_energy (n_graphs,) in eV and, if asked, pred_forces (n_atoms, 3) in eV/Å and pred_stress
        (n_graphs, 3, 3) in eV/Å^3 (periodic cells only; ASE's sign: (1/V) dE/d strain).
        check_elements=False: the caller checked them (a compiled forward pass cannot)."""
        if check_elements and not self.training:
            self.check_elements(batch.numbers)
        positions = batch.positions
        if compute_forces and not positions.requires_grad:
            positions = positions.detach().requires_grad_(True)
        receiver, sender = batch.edge_index
        vectors = positions[sender] - positions[receiver] + batch.edge_shifts
        if compute_stress:
            # a homogeneous strain moves every edge vector r to r (1 + e); the energy depends on positions only
            # through edge vectors, so dE/de (the virial) is the gradient at e = 0
            strain = positions.new_zeros((batch.n_graphs, 3, 3), requires_grad=True)
            symmetric = 0.5 * (strain + strain.transpose(1, 2))
            vectors = vectors + torch.einsum("ei,eij->ej", vectors, symmetric[batch.batch[receiver]])
        features = self.backbone(batch.numbers, batch.edge_index, vectors)
        if head is not None:
            self.head_index(head)  # a clear error for a head the model does not have
            atomic = self.heads[head](features, batch.numbers)
        elif len(self.heads) == 1:
            atomic = next(iter(self.heads.values()))(features, batch.numbers)
        elif batch.head_atoms is not None:
            atomic = self._atomic_by_head(features, batch)
        else:  # every head on every atom, then each atom's own (a graph of static shapes, for compilation)
            atomic_all = torch.stack([h(features, batch.numbers) for h in self.heads.values()], dim=1)
            atomic = atomic_all.gather(1, batch.fidelity[batch.batch][:, None]).squeeze(1)
        energy = atomic.new_zeros(batch.n_atoms.shape[0]).index_add_(0, batch.batch, atomic)
        out = {K.PRED_ENERGY: energy}
        wrt = ([positions] if compute_forces else []) + ([strain] if compute_stress else [])
        if wrt:
            gradients = list(torch.autograd.grad(energy.sum(), wrt, create_graph=self.training))
            if compute_forces:
                out[K.PRED_FORCES] = -gradients.pop(0)
            if compute_stress:
                out[K.PRED_STRESS] = gradients.pop(0) / cell_volumes(batch)[:, None, None]
        return out


def cell_volumes(batch: Batch) -> torch.Tensor:
    """(n_graphs,) Å^3; a stress is only defined for structures periodic in all three directions."""
    if not bool(batch.pbc.all()):
        raise UserError("stress needs cells periodic in all three directions; a molecule (pbc=False) has none")
    return torch.linalg.det(batch.cell).abs()
