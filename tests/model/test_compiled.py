"""`model.compile=true`: the compiled forward pass trains and predicts as the eager one does (float32)."""

import copy

import numpy as np
import pytest
import torch
from ase.build import molecule

from mfff.data.batch import Collater
from mfff.data.structure import Structure
from mfff.errors import UserError
from mfff.model.backbones import MACE, PaiNN, SchNet
from mfff.model.compiled import CompiledPotential
from mfff.model.heads import MLPHead
from mfff.model.potential import Potential
from mfff.train.loss import MultiFidelityLoss

CUTOFF = 4.0


def _batch(names, seed):
    """Rattled molecules with made-up labels (only the loss's value matters here), spread over two heads."""
    rng = np.random.default_rng(seed)
    items = []
    for k, name in enumerate(names):
        atoms = molecule(name)
        positions = atoms.positions + rng.normal(scale=0.1, size=atoms.positions.shape)
        items.append((Structure(atoms.numbers, positions, energy=-10.0 * len(atoms),
                                forces=rng.normal(scale=0.5, size=positions.shape)), k % 2))  # fmt: skip
    return Collater(CUTOFF, "torch")(items)


# batches of different sizes: the graph traced on the first must serve them all
BATCHES = [
    _batch(["CH3OH", "H2O", "NH3"], 0),
    _batch(["C6H6", "CH3CH2OH"], 1),
    _batch(["CH4", "CH3CONH2", "H2O", "CH3OH", "C2H4"], 2),
]


def _potential(backbone_class=PaiNN):
    torch.manual_seed(0)
    backbone = backbone_class(n_features=8, n_interactions=2, cutoff=CUTOFF)
    heads = {"dft": MLPHead(8), "gfn2": MLPHead(8)}
    e0 = np.zeros(119)
    e0[[1, 6, 7, 8]] = [-13.6, -1029.0, -1485.0, -2042.0]
    for head in heads.values():
        head.set_reference(e0, 0.7)
    potential = Potential(backbone, heads)
    potential.mark_known_elements([1, 6, 7, 8])
    return potential


def _train(forward, potential, steps=6):
    loss_fn = MultiFidelityLoss(["dft", "gfn2"])
    optimizer = torch.optim.AdamW(potential.parameters(), lr=1e-2)
    losses = []
    for k in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(BATCHES[k % len(BATCHES)], forward(BATCHES[k % len(BATCHES)]))["loss"]
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="module")
def trained_pair():
    """The same model trained eagerly and compiled, from the same weights on the same batches."""
    eager = _potential().train()
    compiled_potential = copy.deepcopy(eager)
    compiled = CompiledPotential(compiled_potential)
    eager_losses = _train(eager, eager)
    compiled_losses = _train(compiled, compiled_potential)
    return eager, compiled_potential, compiled, eager_losses, compiled_losses


def test_compiled_training_gives_the_eager_losses_and_weights(trained_pair):
    eager, compiled_potential, compiled, eager_losses, compiled_losses = trained_pair
    # the loss moved, so the steps did train (the force term's gradient included: a cut one would differ)
    assert eager_losses[-1] < 0.9 * eager_losses[0]
    np.testing.assert_allclose(compiled_losses, eager_losses, rtol=2e-4)
    for (name, p), q in zip(eager.named_parameters(), compiled_potential.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-5, msg=name)
    # one training graph served every batch size
    assert [key[0] for key in compiled.graphs] == [True]


def test_compiled_eval_predicts_as_eager(trained_pair):
    eager, compiled_potential, compiled, _, _ = trained_pair
    eager.eval(), compiled_potential.eval()
    for batch in BATCHES:
        expected = eager(batch)
        got = compiled(batch)
        assert not got["pred_forces"].requires_grad  # eval runs the explicit force graph without autograd
        torch.testing.assert_close(got["pred_energy"], expected["pred_energy"].detach(), rtol=1e-6, atol=1e-4)
        torch.testing.assert_close(got["pred_forces"], expected["pred_forces"].detach(), rtol=1e-4, atol=1e-5)
        named = compiled(batch, head="gfn2")["pred_energy"]
        torch.testing.assert_close(named, eager(batch, head="gfn2")["pred_energy"].detach(), rtol=1e-6, atol=1e-4)


def test_compiled_eval_still_refuses_unknown_elements(trained_pair):
    _, compiled_potential, compiled, _, _ = trained_pair
    compiled_potential.eval()
    with pytest.raises(UserError, match="element.s. Si never appeared in this model.s training data"):
        compiled(_batch(["SiH4", "H2O"], 3))


@pytest.mark.parametrize("backbone_class", [PaiNN, SchNet])
def test_single_structures_have_their_own_graph_for_molecules_of_any_size(backbone_class):
    """The calculator's case, one structure a call: a graph that fixes the structure count at 1 serves every
    molecule, and a batch of several gets another graph (a count of 1 baked into it would break them)."""
    potential = _potential(backbone_class).eval()
    traced = CompiledPotential(potential, compile_graph=False)
    for names, head in [(["CH3OH"], "dft"), (["C6H6"], "gfn2"), (["H2O", "CH4"], "dft"), (["NH3"], "gfn2")]:
        batch = _batch(names, 4)
        got, expected = traced(batch, head=head), potential(batch, head=head)
        torch.testing.assert_close(got["pred_energy"], expected["pred_energy"].detach(), rtol=1e-6, atol=1e-4)
        torch.testing.assert_close(got["pred_forces"], expected["pred_forces"], rtol=1e-5, atol=1e-6)
    assert len(traced.graphs) == 2


@pytest.mark.parametrize("backbone_class", [PaiNN, SchNet])
def test_the_traced_graph_serves_every_batch_size_with_eager_gradients(backbone_class):
    """What torch.compile is given: the graph traced on the first batch, uncompiled. On batches of other sizes it
    must give the eager energies, forces and loss gradients (a size baked in, or a gradient cut, would not)."""
    potential = _potential(backbone_class).train()
    traced = CompiledPotential(potential, compile_graph=False)
    loss_fn = MultiFidelityLoss(["dft", "gfn2"])
    parameters = list(potential.parameters())
    for batch in BATCHES:
        got, expected = traced(batch), potential(batch)
        torch.testing.assert_close(got["pred_energy"], expected["pred_energy"], rtol=1e-6, atol=1e-4)
        torch.testing.assert_close(got["pred_forces"], expected["pred_forces"], rtol=1e-5, atol=1e-6)
        grads = [torch.autograd.grad(loss_fn(batch, out)["loss"], parameters) for out in (got, expected)]
        for a, b in zip(*grads):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert len(traced.graphs) == 1


def test_a_backbone_not_checked_for_compilation_is_refused_clearly():
    backbone = MACE(n_channels=8, max_L=0, n_interactions=2, cutoff=CUTOFF, avg_num_neighbors=6.0)
    potential = Potential(backbone, {"dft": MLPHead(backbone.n_features)})
    with pytest.raises(UserError, match="works with the PaiNN and SchNet backbones, not yet with MACE"):
        CompiledPotential(potential)
