"""Every neighbour-list backend gives the same edges (molecules: all three; periodic: vesin vs ASE)."""

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.neighborlist import neighbor_list as ase_neighbor_list

from mfff.data.neighbours import has_torch_cluster, neighbour_list
from mfff.errors import UserError

# torch-cluster is optional (it compiles against the installed torch); .ci/run installs it and runs this file again
BACKENDS = ("torch", "vesin", *(("torch_cluster",) if has_torch_cluster() else ()))


def _edges(edge_index, shifts=None):
    if shifts is None:
        return set(map(tuple, edge_index.T.tolist()))
    rounded = np.round(shifts.numpy(), 6)
    return {(i, j, *s) for (i, j), s in zip(edge_index.T.tolist(), rounded.tolist())}


@pytest.mark.parametrize("cutoff", [1.2, 2.5, 5.0])
def test_all_backends_agree_on_molecules(cutoff):
    molecules = [molecule(n) for n in ("C6H6", "CH3CH2OH", "HCN", "CH3CONH2")]
    positions = torch.tensor(np.concatenate([m.positions for m in molecules]))
    batch = torch.repeat_interleave(torch.arange(4), torch.tensor([len(m) for m in molecules]))
    results = {}
    for backend in BACKENDS:
        edge_index, shifts = neighbour_list(
            positions, batch, cutoff, backend, cell=torch.zeros(4, 3, 3), pbc=torch.zeros(4, 3, dtype=torch.bool)
        )
        assert torch.all(shifts == 0)
        results[backend] = _edges(edge_index)
    assert all(edges == results["torch"] for edges in results.values())
    # and the edges are right: compare with ASE, molecule by molecule
    expected, offset = set(), 0
    for m in molecules:
        i, j = ase_neighbor_list("ij", m, cutoff)
        expected |= {(a + offset, b + offset) for a, b in zip(i.tolist(), j.tolist())}
        offset += len(m)
    assert results["torch"] == expected
    assert all(batch[i] == batch[j] for i, j in results["torch"])  # no edges across structures


def test_vesin_periodic_matches_ase():
    crystal = bulk("Si", "diamond", a=5.43).repeat((2, 1, 1))
    crystal.rattle(0.05, seed=0)
    cutoff = 4.0
    edge_index, shifts = neighbour_list(
        torch.tensor(crystal.positions),
        torch.zeros(len(crystal), dtype=torch.long),
        cutoff,
        "auto",
        cell=torch.tensor(crystal.cell[:])[None],
        pbc=torch.ones(1, 3, dtype=torch.bool),
    )
    i, j, d_vec = ase_neighbor_list("ijD", crystal, cutoff)
    vectors = torch.tensor(crystal.positions)[edge_index[1]] - torch.tensor(crystal.positions)[edge_index[0]] + shifts
    ours = sorted(zip(edge_index[0].tolist(), edge_index[1].tolist(), np.round(vectors.numpy(), 6).tolist()))
    theirs = sorted(zip(i.tolist(), j.tolist(), np.round(d_vec, 6).tolist()))
    assert len(ours) == len(theirs) > 0
    assert [(a, b) for a, b, _ in ours] == [(a, b) for a, b, _ in theirs]
    np.testing.assert_allclose([v for *_, v in ours], [v for *_, v in theirs], atol=1e-6)


def test_molecule_only_backends_refuse_periodic_cells():
    with pytest.raises(UserError, match="data.neighbours=torch handles molecules only.*use data.neighbours=vesin"):
        neighbour_list(
            torch.zeros(2, 3),
            torch.zeros(2, dtype=torch.long),
            2.0,
            "torch",
            cell=torch.eye(3)[None] * 5,
            pbc=torch.ones(1, 3, dtype=torch.bool),
        )


def test_unknown_backend():
    with pytest.raises(UserError, match="unknown neighbour-list backend 'kdtree'"):
        neighbour_list(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), 2.0, "kdtree")
