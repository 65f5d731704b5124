"""Masked error metrics per fidelity and stage, reduced correctly across DDP processes.

Units (the one place they are defined): energy_mae / energy_rmse in meV per structure, energy_per_atom_mae /
energy_per_atom_rmse in meV/atom, forces_mae / forces_rmse in meV/Å (per force component).
Logged as `<stage>/<fidelity>/<metric>`, e.g. `val/dft/forces_mae`, `test_mol/gfn2/energy_per_atom_rmse`.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from mfff.data import keys as K

METRIC_NAMES = ("energy_mae", "energy_rmse", "energy_per_atom_mae", "energy_per_atom_rmse", "forces_mae", "forces_rmse")


class MaskedError(Metric):
    """Mean absolute and root-mean-square error over entries whose weight is 1 (labels present)."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        self.add_state("abs_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("sq_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, error: torch.Tensor, weight: torch.Tensor) -> None:
        error, weight = error.detach().double(), weight.detach().double()
        self.abs_sum += (error.abs() * weight).sum()
        self.sq_sum += (error**2 * weight).sum()
        self.count += weight.sum()

    def compute(self) -> dict[str, torch.Tensor]:
        count = self.count.clamp(min=1)
        return {"mae": self.abs_sum / count, "rmse": torch.sqrt(self.sq_sum / count), "count": self.count}


class FidelityMetrics(torch.nn.Module):
    """Energy, energy-per-atom and force errors of one fidelity in one stage."""

    def __init__(self):
        super().__init__()
        self.energy, self.energy_per_atom, self.forces = MaskedError(), MaskedError(), MaskedError()

    def update(self, batch, out, fidelity_index: int) -> None:
        graph_weight = batch.energy_mask * (batch.fidelity == fidelity_index)
        energy_error = (out[K.PRED_ENERGY] - batch.energy) * 1000.0
        self.energy.update(energy_error, graph_weight)
        self.energy_per_atom.update(energy_error / batch.n_atoms, graph_weight)
        if K.PRED_FORCES in out:
            atom_weight = batch.forces_mask * (batch.fidelity[batch.batch] == fidelity_index)
            force_error = (out[K.PRED_FORCES] - batch.forces) * 1000.0
            self.forces.update(force_error, atom_weight[:, None].expand_as(force_error))

    def compute(self) -> dict[str, float]:
        """Metrics that had labels this epoch (a fidelity without force labels reports no force errors)."""
        values = {}
        for name, metric in (
            ("energy", self.energy),
            ("energy_per_atom", self.energy_per_atom),
            ("forces", self.forces),
        ):
            result = metric.compute()
            if result["count"] > 0:
                values[f"{name}_mae"], values[f"{name}_rmse"] = float(result["mae"]), float(result["rmse"])
        return values

    def reset(self) -> None:
        for metric in (self.energy, self.energy_per_atom, self.forces):
            metric.reset()
