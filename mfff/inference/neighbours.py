"""A neighbour list kept between the steps of an MD run or a relaxation (a Verlet list with a skin)."""

from __future__ import annotations

import torch

from mfff.data.neighbours import neighbour_list


class SkinNeighbourList:
    """Pairs within `cutoff` of one structure, from a list built out to `cutoff + skin` and reused until an atom
    has moved more than skin / 2 since it was built: until then no pair outside the list can have come within the
    cutoff. Each call keeps the listed pairs that are within the cutoff now, so the result equals a fresh list.
    A change of atoms, cell or periodicity rebuilds it; skin=0 rebuilds at every call.
    """

    def __init__(self, cutoff: float, skin: float = 1.0, backend: str = "auto"):
        if skin < 0:
            raise ValueError(f"skin={skin} Å must be >= 0")
        self.cutoff, self.skin, self.backend = float(cutoff), float(skin), backend
        self.rebuilds = 0  # how often the list was built (for benchmarks and tests)
        self._built: tuple | None = None  # (positions, cell, pbc, numbers) at the last build
        self._edges: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(
        self, positions: torch.Tensor, numbers: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Edges (2, n_edges) [receiver, sender] and cartesian shifts (n_edges, 3), as `neighbour_list`, and the
        pairs' distances (n_edges,) Å, computed here anyway (the caller looks for atoms too close among them)."""
        if self._stale(positions, numbers, cell, pbc):
            batch = torch.zeros(len(positions), dtype=torch.long, device=positions.device)
            self._edges = neighbour_list(positions, batch, self.cutoff + self.skin, self.backend, cell[None], pbc[None])
            self._built = (positions.clone(), cell.clone(), pbc.clone(), numbers.clone())
            self.rebuilds += 1
        edge_index, shifts = self._edges
        receiver, sender = edge_index
        distances = torch.linalg.norm(positions[sender] - positions[receiver] + shifts, dim=1)
        within = distances < self.cutoff
        return edge_index[:, within], shifts[within], distances[within]

    def _stale(self, positions, numbers, cell, pbc) -> bool:
        if self._built is None or self.skin == 0:
            return True
        old_positions, old_cell, old_pbc, old_numbers = self._built
        if old_numbers.shape != numbers.shape or not torch.equal(old_numbers, numbers):
            return True
        if not torch.equal(old_pbc, pbc) or not torch.equal(old_cell, cell):
            return True
        moved = torch.linalg.norm(positions - old_positions, dim=1).max() if len(positions) else 0.0
        return bool(moved > self.skin / 2)
