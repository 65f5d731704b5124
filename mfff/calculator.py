"""An ASE calculator for a trained mfff checkpoint; the head you choose is the fidelity you get."""

from __future__ import annotations

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from mfff.data import keys as K
from mfff.data.batch import Collater
from mfff.data.readers.base import geometry_problem
from mfff.data.structure import Structure
from mfff.errors import UserError
from mfff.utils.instantiate import instantiate


class MFFFCalculator(Calculator):
    """Energy (eV) and forces (eV/Å) of one fidelity's head, e.g. `MFFFCalculator("outputs/demo/<date>", "dft")`.

    Args:
        checkpoint: a run dir of mfff-train (its best checkpoint) or a .ckpt file.
        fidelity: the head; may be left out for a model with one head.
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(
        self, checkpoint, fidelity: str | None = None, device: str = "cpu", neighbours: str = "auto", **kwargs
    ):
        super().__init__(**kwargs)
        from mfff.train.checkpoints import load_module

        module = load_module(checkpoint, "checkpoint", map_location=device)
        self.potential = module.potential
        if fidelity is None:  # a single-head model's one fidelity; with several heads the choice is the user's
            if len(self.potential.fidelities) > 1:
                raise UserError(
                    f"{checkpoint} has heads {', '.join(self.potential.fidelities)}: choose one with fidelity=<head>"
                )
            fidelity = self.potential.fidelities[0]
        self.potential.head_index(fidelity)  # fails early, naming the heads there are
        base = (module.hparams.get("bases") or {}).get(fidelity)
        # a Δ-learning head predicts fidelity minus base: the base method runs here and is added
        self.base_labeller = instantiate(base["labeller"]) if base else None
        self.fidelity, self.device = fidelity, device
        self.collate = Collater(self.potential.backbone.cutoff, neighbours, dtype=module.dtype_name)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        structure = Structure(
            numbers=self.atoms.numbers.astype(np.int64),
            positions=self.atoms.positions.copy(),
            cell=np.asarray(self.atoms.cell[:]),
            pbc=np.asarray(self.atoms.pbc, dtype=bool),
        )
        problem = geometry_problem(structure)
        if problem is not None:
            raise UserError(f"the atoms given to MFFFCalculator ({self.atoms.get_chemical_formula()}) {problem}")
        batch = self.collate([(structure, 0)]).to(self.device)
        out = self.potential(batch, compute_forces=True, head=self.fidelity)
        energy = float(out[K.PRED_ENERGY].detach().cpu()[0])
        forces = out[K.PRED_FORCES].detach().cpu().numpy().astype(np.float64)
        if self.base_labeller is not None:
            base = self.base_labeller.compute(structure.numbers, structure.positions)
            energy, forces = energy + base.energy, forces + base.forces
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}

    @torch.no_grad()
    def heads(self) -> list[str]:
        return self.potential.fidelities
