"""Physics invariants of every backbone with per-fidelity heads, in float64."""

import dataclasses

import numpy as np
import pytest
import torch
from ase.build import molecule

from mfff.data.batch import Collater
from mfff.data.structure import Structure
from mfff.model.backbones import MACE, PaiNN, SchNet
from mfff.model.heads import MLPHead
from mfff.model.potential import Potential
from tests import physics

CUTOFF = 4.0


def _rattled(name, seed):
    atoms = molecule(name)
    atoms.positions += np.random.default_rng(seed).normal(scale=0.1, size=atoms.positions.shape)
    return atoms


def _backbone(name):
    if name == "mace":  # equivariant (1o) features between the layers, as in MACE-m
        return MACE(n_channels=8, max_L=1, n_interactions=2, cutoff=CUTOFF, avg_num_neighbors=6.0)
    return {"painn": PaiNN, "schnet": SchNet}[name](n_features=16, n_interactions=2, cutoff=CUTOFF)


@pytest.fixture(params=["painn", "schnet", "mace"])
def potential(request):
    torch.manual_seed(0)
    backbone = _backbone(request.param)
    heads = {"gfn2": MLPHead(backbone.n_features), "dft": MLPHead(backbone.n_features)}
    e0 = np.zeros(119)
    e0[[1, 6, 7, 8]] = [-13.6, -1029.0, -1485.0, -2042.0]
    for head in heads.values():
        head.set_reference(e0, 0.7)
    model = Potential(backbone, heads).double()
    # random, non-trivial weights everywhere (zero-initialised parts would hide errors)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


MOLECULES = ["CH3CH2OH", "C6H6", "CH3CONH2"]


@pytest.mark.parametrize("name", MOLECULES)
def test_rotation_translation_invariance_and_force_equivariance(potential, name):
    physics.check_rotation_translation(potential, _rattled(name, 1), CUTOFF)


@pytest.mark.parametrize("name", MOLECULES)
def test_permutation_invariance(potential, name):
    physics.check_permutation(potential, _rattled(name, 2), CUTOFF)


def test_forces_are_minus_gradient(potential):
    physics.check_finite_differences(potential, _rattled("CH3OH", 3), CUTOFF)


def test_extensivity(potential):
    physics.check_extensivity(potential, _rattled("CH3OH", 4), _rattled("C2H4", 5), CUTOFF)


def test_batch_size_and_order_independence(potential):
    physics.check_batch_independence(potential, [_rattled(n, i) for i, n in enumerate(MOLECULES)], CUTOFF)


def _mixed_batch(molecules, fidelities):
    items = [(Structure(numbers=a.numbers.astype(np.int64), positions=a.positions.astype(float)), f)
             for a, f in zip(molecules, fidelities)]  # fmt: skip
    return Collater(CUTOFF, "torch", dtype="float64")(items)


def test_heads_differ_and_are_selected_per_structure(potential):
    atoms = _rattled("CH3OH", 6)
    batch = _mixed_batch([atoms, atoms], [0, 1])
    energies = potential(batch)["pred_energy"].detach()
    assert not torch.isclose(energies[0], energies[1])
    dft_only = potential(batch, head="dft")["pred_energy"].detach()
    assert torch.allclose(dft_only, energies[0].expand(2), rtol=1e-12)  # 'dft' sorts first: head index 0
    assert potential.fidelities == ["dft", "gfn2"]


def test_float32_is_the_default_dtype():
    model = Potential(SchNet(n_features=8, n_interactions=1), {"a": MLPHead(8)})
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_heads_on_their_own_atoms_give_what_every_head_on_every_atom_gives(potential):
    """The collater's per-head atom counts let each head run on its own atoms only; the result must equal that of
    every head on every atom (what the model does without the counts, and did before), energies to 1e-6 eV."""
    molecules = [_rattled(name, 7 + k) for k, name in enumerate(["CH3OH", "C6H6", "H2O", "CH3CONH2", "NH3"])]
    batch = _mixed_batch(molecules, [1, 0, 1, 1, 0])
    assert batch.head_atoms == (12 + 4, 6 + 3 + 9)
    potential.train()  # the training path: forces keep their graph
    split = potential(batch)
    everywhere = potential(dataclasses.replace(batch, head_atoms=None))
    torch.testing.assert_close(split["pred_energy"], everywhere["pred_energy"], rtol=0, atol=1e-6)
    torch.testing.assert_close(split["pred_forces"], everywhere["pred_forces"], rtol=0, atol=1e-6)
    grads = [torch.autograd.grad(out["pred_forces"].square().sum() + out["pred_energy"].sum(),
                                 list(potential.parameters())) for out in (split, everywhere)]  # fmt: skip
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_a_head_without_atoms_in_the_batch_still_joins_the_graph(potential):
    """DDP needs every parameter in every step's graph: a head with no structures in the batch gets zero grads."""
    batch = _mixed_batch([_rattled("CH3OH", 12), _rattled("H2O", 13)], [0, 0])
    assert batch.head_atoms == (9,)
    potential.train()
    out = potential(batch)
    (out["pred_energy"].sum() + out["pred_forces"].square().sum()).backward()
    unused = [p.grad for p in potential.heads["gfn2"].parameters()]
    assert all(g is not None and torch.count_nonzero(g) == 0 for g in unused)
    assert any(torch.count_nonzero(p.grad) > 0 for p in potential.heads["dft"].parameters())
