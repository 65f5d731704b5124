"""The MACE backbone (mace-torch's modules) under every path a PaiNN takes: pre-train, partial fine-tune from the
run dir, mfff-eval, the ASE calculator; its data statistic travels with the checkpoint."""

import numpy as np
import pytest
import torch
from ase.build import molecule

from mfff.analyze.evaluate import evaluate
from mfff.calculator import MFFFCalculator
from mfff.errors import UserError
from mfff.train.checkpoints import load_module
from tests.helpers import assert_learnt, compose_config, trivial_errors
from tests.train.conftest import quick_overrides, train_quick

MACE = ["model/backbone=mace", "model.size.mace.n_channels=8"]


@pytest.fixture(scope="module")
def pretrained_mace(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("mace")
    # long enough to learn: 30 epochs of 48 structures, about 12 s on one core
    return run_dir, train_quick(run_dir, "strategy=pretrain", *MACE, fidelities=("gfn2",), epochs=30)


def test_pretrain_fits_the_neighbour_normalisation_and_learns(pretrained_mace):
    run_dir, record = pretrained_mace
    module = load_module(run_dir)
    backbone = module.potential.backbone
    assert type(backbone).__name__ == "MACE" and len(backbone.interactions) == 2
    # mace-torch's avg_num_neighbors: fitted on the training data, stored in the checkpoint, used by every block
    assert 4.0 < float(backbone.avg_num_neighbors) < 20.0
    assert all(
        block.interaction.avg_num_neighbors == float(backbone.avg_num_neighbors) for block in backbone.interactions
    )
    assert record["backbone"] == "mace"
    cfg = compose_config("train", quick_overrides(run_dir, ("gfn2",)))
    trivial = trivial_errors(cfg, "gfn2", "val")["forces_mae"]  # measured 0.42x (test split: 0.83x, see test_training)
    assert_learnt(record["metrics"]["val"]["gfn2"]["forces_mae"], trivial, "MACE val forces", at_most=0.6)


def test_partial_finetune_from_the_run_dir_freezes_the_first_block(pretrained_mace, tmp_path):
    run_dir, _ = pretrained_mace
    record = train_quick(
        tmp_path, "strategy=finetune", f"strategy.from={run_dir}", "strategy/params=partial",
        "strategy.params.freeze_blocks=1", *MACE, fidelities=("dft",), n_train=32, epochs=2,
    )  # fmt: skip
    before, after = load_module(run_dir).state_dict(), load_module(tmp_path).state_dict()
    frozen = [
        k for k in before if k.startswith(("potential.backbone.embedding.", "potential.backbone.interactions.0."))
    ]
    trained = [
        k for k in before if k.startswith("potential.backbone.interactions.1.") and before[k].is_floating_point()
    ]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in trained)
    assert torch.equal(before["potential.backbone.avg_num_neighbors"], after["potential.backbone.avg_num_neighbors"])
    report = evaluate(compose_config("eval", [f"ckpt={tmp_path}", f"paths.output_dir={tmp_path}/eval",
                                              "data.sources.dft.n_test=32"]))  # fmt: skip
    assert report["metrics"]["test"]["dft"]["forces_mae"] == pytest.approx(
        record["metrics"]["test"]["dft"]["forces_mae"], rel=1e-4
    )


def test_calculator_on_a_mace_checkpoint(pretrained_mace):
    run_dir, _ = pretrained_mace
    atoms = molecule("CH3OH")
    atoms.calc = MFFFCalculator(run_dir, head="gfn2")
    forces = atoms.get_forces()
    assert forces.shape == (6, 3) and np.allclose(forces.sum(axis=0), 0.0, atol=1e-4)  # no net force
    with pytest.raises(UserError, match="element\\(s\\) S are not in model.backbone.elements \\(H, C, N, O\\)"):
        sulfur = molecule("CH3SH")
        sulfur.calc = atoms.calc
        atoms.calc.model.potential.known_elements[:] = False  # get past the known-elements check to the backbone's own
        sulfur.get_potential_energy()
