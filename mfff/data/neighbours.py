"""Neighbour lists behind one interface, with interchangeable backends.

Every backend returns the full (both-direction) edge list [i, j] with r_ij = r_j - r_i + shift, |r_ij| < cutoff,
no self-edges (except periodic images of the same atom), in the caller's atom indexing.
- `torch_cluster`: radius_graph; fast, molecules only; used when installed.
- `vesin`: periodic cells (and molecules), a well-kept C++ library.
- `torch`: pure torch all-pairs within each structure; molecules only; works everywhere without compiling.
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np
import torch

from mfff.errors import UserError

BACKENDS = ("auto", "torch", "torch_cluster", "vesin")


@functools.cache  # asked at every batch: the import system's search costs more than the neighbour list
def has_torch_cluster() -> bool:
    return importlib.util.find_spec("torch_cluster") is not None


def choose_backend(name: str, periodic: bool) -> str:
    if name not in BACKENDS:
        raise UserError(f"unknown neighbour-list backend {name!r} (data.neighbours); choose one of {BACKENDS}")
    if name == "auto":
        if periodic:
            return "vesin"
        return "torch_cluster" if has_torch_cluster() else "torch"
    if periodic and name in ("torch", "torch_cluster"):
        raise UserError(
            f"data.neighbours={name} handles molecules only, but the data has periodic cells; "
            "use data.neighbours=vesin (pip install vesin) or auto"
        )
    if name == "torch_cluster" and not has_torch_cluster():
        raise UserError(
            "data.neighbours=torch_cluster but torch-cluster is not installed; "
            "pip install torch-cluster, or use data.neighbours=auto"
        )
    return name


def neighbour_list(
    positions: torch.Tensor,
    batch: torch.Tensor,
    cutoff: float,
    backend: str = "auto",
    cell: torch.Tensor | None = None,
    pbc: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Edges (2, n_edges) and cartesian shifts (n_edges, 3) for a batch of structures."""
    periodic = pbc is not None and bool(pbc.any())
    backend = choose_backend(backend, periodic)
    if backend == "torch":
        edge_index = _torch_all_pairs(positions, batch, cutoff)
    elif backend == "torch_cluster":
        from torch_cluster import radius_graph

        n_max = int(torch.bincount(batch).max()) if len(batch) else 1
        # radius_graph returns [source j, target i]; flip to mfff's [receiver i, sender j]
        edge_index = radius_graph(positions, r=cutoff, batch=batch, loop=False, max_num_neighbors=n_max).flip(0)
    else:
        return _vesin(positions, batch, cutoff, cell, pbc)
    shifts = positions.new_zeros((edge_index.shape[1], 3))
    return edge_index, shifts


def _torch_all_pairs(positions: torch.Tensor, batch: torch.Tensor, cutoff: float) -> torch.Tensor:
    counts = torch.bincount(batch) if len(batch) else batch.new_zeros(0)
    offsets = torch.cumsum(counts, 0) - counts
    # all ordered pairs inside each structure, vectorised: pair k of structure g is (a, b) with a, b < n_g
    pair_counts = counts * counts
    graph_of_pair = torch.repeat_interleave(torch.arange(len(counts)), pair_counts)
    local = torch.arange(int(pair_counts.sum())) - torch.repeat_interleave(
        torch.cumsum(pair_counts, 0) - pair_counts, pair_counts
    )
    n = counts[graph_of_pair]
    i = offsets[graph_of_pair] + local // n
    j = offsets[graph_of_pair] + local % n
    keep = i != j
    i, j = i[keep], j[keep]
    distance = torch.linalg.norm(positions[j] - positions[i], dim=1)
    keep = distance < cutoff
    return torch.stack([i[keep], j[keep]])


def _vesin(positions, batch, cutoff, cell, pbc):
    from vesin import NeighborList

    calculator = NeighborList(cutoff=float(cutoff), full_list=True)
    edges, shifts = [], []
    counts = torch.bincount(batch).tolist()
    start = 0
    for graph, count in enumerate(counts):
        points = positions[start : start + count].detach().cpu().numpy().astype(np.float64)
        periodic = bool(pbc[graph].any()) if pbc is not None else False
        box = cell[graph].detach().cpu().numpy().astype(np.float64) if periodic else np.zeros((3, 3))
        if periodic and not bool(pbc[graph].all()):
            raise UserError("vesin needs periodicity in all three directions or none; mixed pbc is not supported")
        i, j, s = calculator.compute(points=points, box=box, periodic=periodic, quantities="ijS")
        edges.append(np.stack([i, j]).astype(np.int64) + start)
        shifts.append(s.astype(np.float64) @ box)
        start += count
    edge_index = torch.from_numpy(np.concatenate(edges, axis=1)) if edges else torch.zeros((2, 0), dtype=torch.long)
    shift = torch.from_numpy(np.concatenate(shifts)) if shifts else torch.zeros((0, 3))
    return edge_index.to(positions.device), shift.to(positions.device, positions.dtype)
