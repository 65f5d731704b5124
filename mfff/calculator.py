"""An ASE calculator for a trained mfff model; the head you choose is the fidelity you get."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from mfff.data.batch import Batch, Collater
from mfff.data.readers.base import geometry_problem
from mfff.data.structure import Structure
from mfff.errors import UserError
from mfff.inference.files import load
from mfff.inference.model import InferenceModel
from mfff.inference.neighbours import SkinNeighbourList
from mfff.utils.instantiate import instantiate


class MFFFCalculator(Calculator):
    """Energy (eV), forces (eV/Å) and, for periodic cells, stress (eV/Å^3) of one head, e.g.
    `MFFFCalculator("outputs/demo/<date>", head="dft")`.

    Args:
        model: an `InferenceModel` (`mfff.load`), an inference file, a run dir of mfff-train or a .ckpt file.
        head: the fidelity; may be left out for a model with one head.
        dtype: 'float32' or 'float64'; None keeps the model's own.
        skin: Å beyond the cutoff that the neighbour list reaches, so that it is rebuilt only once an atom has moved
            skin / 2 (0: at every call).
        compile: run the forward pass compiled (PaiNN, SchNet); the first call traces it.
        neighbours: the neighbour-list backend (`mfff.data.neighbours`).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self,
        model,
        head: str | None = None,
        dtype: str | None = None,
        device: str = "cpu",
        skin: float = 1.0,
        compile: bool = False,
        neighbours: str = "auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(model, InferenceModel):
            self.model = model.to(getattr(torch, dtype)) if dtype else model
            self.model = self.model.to(device).eval()
        else:
            self.model = load(model, dtype=dtype, device=device)
        self.head = self.model.choose_head(head)
        base = self.model.bases.get(self.head)
        # a Δ-learning head predicts fidelity minus base: the base method runs here and is added
        self.base_labeller = instantiate(base["labeller"]) if base else None
        self.device, self.backend = device, neighbours
        self.dtype_name = str(self.model.dtype).removeprefix("torch.")
        self.neighbour_list = SkinNeighbourList(self.model.cutoff, skin, neighbours)
        self.compiled = None
        if compile:
            from mfff.model.compiled import CompiledPotential

            self.compiled = CompiledPotential(self.model.potential)
        self._batch: Batch | None = None  # the last call's batch: only its positions and edges change in MD

    def heads(self) -> list[str]:
        return self.model.heads

    def check_state(self, atoms, tol: float = 1e-15) -> list[str]:
        """ASE's check for what changed since the last call, with exact comparisons: its tolerant `allclose` on every
        property costs more than a small molecule's model call. A difference within ASE's 1e-15 counts as a change
        here: a needless recompute, never a stale result."""
        if self.atoms is None:
            return list(all_changes)
        watched = set(all_changes) - set(self.ignored_changes)
        changes = [name for name in ("cell", "pbc") if name in watched
                   and not np.array_equal(getattr(self.atoms, name), getattr(atoms, name))]  # fmt: skip
        old, new = self.atoms.arrays, atoms.arrays
        arrays = watched - {"cell", "pbc"}
        changes += sorted(arrays & (set(old) ^ set(new)))
        changes += [name for name in sorted(arrays & set(old) & set(new)) if not np.array_equal(old[name], new[name])]
        return changes

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        structure = self._structure(self.atoms, check_distances=False)
        stress = "stress" in properties
        if stress and not structure.pbc.all():
            raise UserError(
                f"stress needs a cell periodic in all three directions; the atoms ({self.atoms.get_chemical_formula()})"
                f" have pbc={structure.pbc.tolist()}"
            )
        batch, distances = self._updated_batch(structure, system_changes)
        # close atoms are looked for among the neighbour list's pairs: a list of its own costs more in a big cell
        receiver, sender = batch.edge_index.cpu().numpy()
        self._refuse(geometry_problem(structure, (receiver, sender, distances.cpu().numpy())), self.atoms)
        (result,) = self._results(batch, [structure], stress)
        self.results = result

    def predict(self, images, batch_size: int = 64, stress: bool = False) -> list[dict]:
        """Energy, forces (and stress) of many structures, `batch_size` at a time: for screening. The same numbers
        as one `get_potential_energy` each."""
        structures = [self._structure(atoms) for atoms in images]
        collate = Collater(self.model.cutoff, self.backend, dtype=self.dtype_name)
        results = []
        for start in range(0, len(structures), batch_size):
            chunk = structures[start : start + batch_size]
            batch = collate([(s, 0) for s in chunk]).to(self.device)
            results += self._results(batch, chunk, stress)
        return results

    def _structure(self, atoms, check_distances: bool = True) -> Structure:
        """check_distances=False: positions and cell only (the caller looks for close atoms in its own pairs)."""
        structure = Structure(
            numbers=atoms.numbers.astype(np.int64),
            positions=atoms.positions.copy(),
            cell=np.asarray(atoms.cell[:], dtype=np.float64),
            pbc=np.asarray(atoms.pbc, dtype=bool),
        )
        no_pairs = (np.zeros(0, int), np.zeros(0, int), np.zeros(0))
        self._refuse(geometry_problem(structure, None if check_distances else no_pairs), atoms)
        return structure

    @staticmethod
    def _refuse(problem: str | None, atoms) -> None:
        if problem is not None:
            raise UserError(f"the atoms given to MFFFCalculator ({atoms.get_chemical_formula()}) {problem}")

    def _updated_batch(self, structure: Structure, system_changes) -> tuple[Batch, torch.Tensor]:
        """The last batch with new positions (and edges from the kept neighbour list), or a new one when atoms,
        cell or periodicity changed; and its pairs' distances."""
        if self._batch is None or set(system_changes) - {"positions"}:
            self._batch = Collater(self.model.cutoff, self.backend, dtype=self.dtype_name)([(structure, 0)])
            self._batch = self._batch.to(self.device)
        positions = torch.from_numpy(structure.positions).to(self.device, self.model.dtype)
        edges, shifts, distances = self.neighbour_list(positions, self._batch.numbers, self._batch.cell[0],
                                                       self._batch.pbc[0])  # fmt: skip
        self._batch = dataclasses.replace(self._batch, positions=positions, edge_index=edges, edge_shifts=shifts)
        return self._batch, distances

    def _results(self, batch: Batch, structures: list[Structure], stress: bool) -> list[dict]:
        if stress and self.base_labeller is not None:
            raise UserError(f"head {self.head!r} learned a difference to {self.model.bases[self.head]['fidelity']}, "
                            "whose labeller gives no stress: stress is not available for this head")  # fmt: skip
        if self.compiled is not None and not stress:
            out = self.compiled(batch, compute_forces=True, head=self.head)
            out = {"energy": out["pred_energy"], "forces": out["pred_forces"]}
        else:
            out = self.model(batch, head=self.head, forces=True, stress=stress)
        energies = out["energy"].detach().cpu().double().numpy()
        forces = out["forces"].detach().cpu().double().numpy()
        stresses = out["stress"].detach().cpu().double().numpy() if stress else None
        results, start = [], 0
        for k, structure in enumerate(structures):
            energy, atom_forces = float(energies[k]), forces[start : start + len(structure)]
            start += len(structure)
            if self.base_labeller is not None:
                base = self.base_labeller.compute(structure.numbers, structure.positions)
                energy, atom_forces = energy + base.energy, atom_forces + base.forces
            result = {"energy": energy, "free_energy": energy, "forces": atom_forces}
            if stress:
                result["stress"] = _voigt(stresses[k])
            results.append(result)
        return results


def _voigt(tensor: np.ndarray) -> np.ndarray:
    """ASE's 6-vector order: xx, yy, zz, yz, xz, xy."""
    return tensor[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
