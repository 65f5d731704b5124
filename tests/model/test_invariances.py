"""Physics invariants of every backbone with per-fidelity heads, in float64."""

import numpy as np
import pytest
import torch
from ase.build import molecule

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


def test_heads_differ_and_are_selected_per_structure(potential):
    atoms = _rattled("CH3OH", 6)
    batch = physics.batch_of([atoms, atoms], CUTOFF)
    batch.fidelity = torch.tensor([0, 1])
    energies = potential(batch)["pred_energy"].detach()
    assert not torch.isclose(energies[0], energies[1])
    dft_only = potential(batch, head="dft")["pred_energy"].detach()
    assert torch.allclose(dft_only, energies[0].expand(2), rtol=1e-12)  # 'dft' sorts first: head index 0
    assert potential.fidelities == ["dft", "gfn2"]


def test_float32_is_the_default_dtype():
    model = Potential(SchNet(n_features=8, n_interactions=1), {"a": MLPHead(8)})
    assert all(p.dtype == torch.float32 for p in model.parameters())
