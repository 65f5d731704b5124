"""The graph batch the model consumes, and the collate function that builds it (with the neighbour list)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from mfff.data import keys as K
from mfff.data.neighbours import neighbour_list
from mfff.data.structure import Structure
from mfff.errors import UserError


@dataclass
class Batch:
    """Field names and shapes are those of `mfff.data.keys`."""

    positions: torch.Tensor
    numbers: torch.Tensor
    cell: torch.Tensor
    pbc: torch.Tensor
    batch: torch.Tensor
    n_atoms: torch.Tensor
    edge_index: torch.Tensor
    edge_shifts: torch.Tensor
    fidelity: torch.Tensor
    energy: torch.Tensor
    forces: torch.Tensor
    energy_mask: torch.Tensor
    forces_mask: torch.Tensor
    # atoms per head, counted by the collater on the CPU, so that the model can give each head its own atoms
    # without reading `fidelity` back from the device; None: the model runs every head on every atom instead.
    # It must describe `fidelity`: build batches with `Collater`, or set it to None after changing `fidelity`
    head_atoms: tuple[int, ...] | None = None

    @property
    def n_graphs(self) -> int:
        return int(self.n_atoms.shape[0])

    def to(self, device=None, dtype: torch.dtype | None = None) -> Batch:
        """Move to a device; `dtype` converts the floating-point fields (float32 / float64 models)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, torch.Tensor):  # host values (head_atoms) stay where they are
                out[f.name] = value
                continue
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            out[f.name] = value.to(device) if device is not None else value
        return Batch(**out)


assert {f.name for f in fields(Batch)} == {
    K.POSITIONS,
    K.NUMBERS,
    K.CELL,
    K.PBC,
    K.BATCH,
    K.N_ATOMS,
    K.EDGE_INDEX,
    K.EDGE_SHIFTS,
    K.FIDELITY,
    K.ENERGY,
    K.FORCES,
    K.ENERGY_MASK,
    K.FORCES_MASK,
    K.HEAD_ATOMS,
}


class Collater:
    """Turns [(Structure, fidelity index), ...] into a `Batch`; picklable for DataLoader workers.

    Args:
        energy_only: head indices whose force labels are never read (their force mask is zero).
        dtype: 'float32' or 'float64' for all floating-point fields (the model's dtype).
        cache: keep each structure's neighbour list on the structure after its first batch, for data whose
            positions never change (a dataset; not an MD trajectory): later epochs only concatenate them.
    """

    def __init__(
        self, cutoff: float, neighbours: str = "auto", energy_only=(), dtype: str = "float32", cache: bool = False
    ):
        self.cutoff, self.neighbours, self.energy_only = float(cutoff), neighbours, frozenset(energy_only)
        self.cache = cache
        if dtype not in ("float32", "float64"):
            raise UserError(f"model.dtype={dtype!r} must be float32 or float64")
        self.dtype = getattr(torch, dtype)

    def __call__(self, items: list[tuple[Structure, int]]) -> Batch:
        structures = [s for s, _ in items]
        n_atoms = torch.tensor([len(s.numbers) for s in structures], dtype=torch.long)
        positions = torch.from_numpy(np.concatenate([s.positions for s in structures])).to(self.dtype)
        batch = torch.repeat_interleave(torch.arange(len(structures)), n_atoms)
        cell = torch.from_numpy(np.array([s.cell for s in structures])).to(positions.dtype)
        pbc = torch.from_numpy(np.array([s.pbc for s in structures]))
        energy = torch.tensor([s.energy for s in structures], dtype=torch.float64)
        energy_mask = torch.isfinite(energy)
        # one array op over the batch, not one per structure: unread labels are NaN, then masked with the NaN rows
        forces = np.concatenate([s.forces if s.forces is not None and f not in self.energy_only
                                 else np.full((len(s), 3), np.nan) for s, f in items])  # fmt: skip
        ok = np.isfinite(forces).all(axis=1)
        forces_mask = torch.from_numpy(ok)
        forces = torch.from_numpy(np.where(ok[:, None], forces, 0.0)).to(positions.dtype)
        edge_index, edge_shifts = self._neighbours(structures, positions, batch, n_atoms, cell, pbc)
        fidelity = torch.tensor([f for _, f in items], dtype=torch.long)
        return Batch(
            positions=positions,
            numbers=torch.from_numpy(np.concatenate([s.numbers for s in structures])).long(),
            cell=cell,
            pbc=pbc,
            batch=batch,
            n_atoms=n_atoms,
            edge_index=edge_index,
            edge_shifts=edge_shifts.to(positions.dtype),
            fidelity=fidelity,
            energy=torch.nan_to_num(energy, nan=0.0).to(positions.dtype),
            forces=forces,
            energy_mask=energy_mask.to(positions.dtype),
            forces_mask=forces_mask.to(positions.dtype),
            head_atoms=tuple(torch.bincount(fidelity, weights=n_atoms).long().tolist()),
        )

    def _neighbours(self, structures, positions, batch, n_atoms, cell, pbc):
        key = (self.cutoff, self.neighbours)
        if not self.cache:
            return neighbour_list(positions, batch, self.cutoff, self.neighbours, cell, pbc)
        cached = [getattr(s, _NEIGHBOURS, None) for s in structures]
        first_atoms = torch.cumsum(n_atoms, 0) - n_atoms
        if all(c is not None and c[0] == key for c in cached):  # numpy: it joins small arrays faster
            edge_counts = torch.tensor([c[1].shape[1] for c in cached])
            local = torch.from_numpy(np.concatenate([c[1] for c in cached], axis=1))
            shifts = torch.from_numpy(np.concatenate([c[2] for c in cached])).to(positions.dtype)
            return local + torch.repeat_interleave(first_atoms, edge_counts), shifts
        edge_index, shifts = neighbour_list(positions, batch, self.cutoff, self.neighbours, cell, pbc)
        # each structure's edges, in its own atom numbering
        graph = batch[edge_index[0]]
        order = torch.argsort(graph, stable=True)
        counts = torch.bincount(graph, minlength=len(structures)).tolist()
        local = (edge_index - first_atoms[graph])[:, order]
        for s, edges, edge_shifts in zip(structures, local.split(counts, dim=1), shifts[order].split(counts)):
            setattr(s, _NEIGHBOURS, (key, edges.numpy().copy(), edge_shifts.numpy().copy()))
        return edge_index, shifts


_NEIGHBOURS = "_mfff_neighbours"  # the attribute a structure's cached neighbour list lives in (Collater(cache=True))
