"""The masked multi-fidelity loss: per-fidelity weights times label masks (multiplied, never indexed)."""

from __future__ import annotations

import torch
from torch import nn

from mfff.data import keys as K
from mfff.errors import UserError


class MultiFidelityLoss(nn.Module):
    """Weighted MSE of per-atom energy (eV/atom) and force components (eV/Å).

    Args:
        energy_weight, forces_weight: defaults for every fidelity.
        per_fidelity: {fidelity: {energy_weight: w, forces_weight: w}} overrides.
        trained: the fidelities whose labels enter the loss (default all); the others are evaluated only.
    """

    def __init__(
        self,
        fidelities: list[str],
        energy_weight: float = 1.0,
        forces_weight: float = 10.0,
        per_fidelity: dict | None = None,
        trained: list[str] | None = None,
    ):
        super().__init__()
        per_fidelity = dict(per_fidelity or {})
        unknown = sorted(set(per_fidelity) - set(fidelities))
        if unknown:
            raise UserError(f"loss.per_fidelity names {unknown} but the trained fidelities are {fidelities}")
        e = [float(per_fidelity.get(f, {}).get("energy_weight", energy_weight)) for f in fidelities]
        w = [float(per_fidelity.get(f, {}).get("forces_weight", forces_weight)) for f in fidelities]
        on = [float(trained is None or f in trained) for f in fidelities]
        self.register_buffer("energy_weights", torch.tensor(e) * torch.tensor(on))
        self.register_buffer("forces_weights", torch.tensor(w) * torch.tensor(on))

    def forward(self, batch, out) -> dict[str, torch.Tensor]:
        per_atom_error = (out[K.PRED_ENERGY] - batch.energy) / batch.n_atoms
        # labels of evaluate-only fidelities (weight 0) count neither in the sums nor in the normalisation
        energy_weight = self.energy_weights.to(per_atom_error.dtype)[batch.fidelity]
        energy_mask = batch.energy_mask * (energy_weight > 0)
        energy = (energy_weight * energy_mask * per_atom_error**2).sum() / energy_mask.sum().clamp(min=1)
        forces_weight = self.forces_weights.to(per_atom_error.dtype)[batch.fidelity[batch.batch]]
        forces_mask = batch.forces_mask * (forces_weight > 0)
        squared = ((out[K.PRED_FORCES] - batch.forces) ** 2).sum(dim=1)
        forces = (forces_weight * forces_mask * squared).sum() / (3 * forces_mask.sum()).clamp(min=1)
        return {"loss": energy + forces, "energy_loss": energy, "forces_loss": forces}
