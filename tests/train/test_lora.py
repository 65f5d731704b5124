"""LoRA as a fine-tuning parameter policy: only the adapters (and the heads) train, the backbone's own weights stay
bit-identical, and loading merges the adapters into the weights without changing a prediction."""

import numpy as np
import pytest
import torch
from ase.build import molecule

import mfff
from mfff.analyze.evaluate import evaluate
from mfff.errors import UserError
from mfff.train.checkpoints import load_module, resolve_checkpoint
from mfff.train.module import MultiFidelityModule
from mfff.train.policies import LoRA, LoRALinear
from tests import physics
from tests.helpers import compose_config
from tests.train.conftest import train_quick

PAINN = {"_target_": "mfff.model.backbones.PaiNN", "n_features": 16, "n_interactions": 2}
HEAD = {"_target_": "mfff.model.heads.MLPHead"}


def test_lora_finetune_trains_only_adapters_and_reloads_merged(pretrained_gfn2, tmp_path):
    record = train_quick(
        tmp_path, "strategy=finetune", f"strategy.from={pretrained_gfn2[0]}", "strategy/params=lora",
        "strategy.params.rank=2", fidelities=("dft",), n_train=32, epochs=2,
    )  # fmt: skip
    before = torch.load(resolve_checkpoint(pretrained_gfn2[0], "x"), weights_only=False)["state_dict"]
    after = torch.load(record["best_checkpoint"], weights_only=False)["state_dict"]
    adapters = [k for k in after if ".lora_" in k]
    assert adapters and all(after[k].shape[0] == 2 or after[k].shape[1] == 2 for k in adapters)
    assert all(not torch.equal(after[k], torch.zeros_like(after[k])) for k in adapters if k.endswith("lora_b"))
    for key, value in before.items():
        if key.startswith("potential.backbone."):
            adapted = key.replace(".weight", ".base.weight").replace(".bias", ".base.bias")
            assert torch.equal(value, after[adapted if adapted in after else key]), key  # bit-identical
    assert record["strategy"]["params"] == {"name": "lora", "rank": 2, "alpha": 8.0, "layers": None}
    module = load_module(tmp_path)  # adapters merged: the plain architecture again
    assert not any(isinstance(m, LoRALinear) for m in module.modules())
    saved = mfff.save(mfff.load(tmp_path), tmp_path / "model.pt")  # an inference file: the merged weights only
    model = mfff.load(saved)
    assert not any(".lora_" in key for key in model.state_dict())
    batch = physics.batch_of([molecule("CH3OH")], model.cutoff).to(dtype=torch.float32)
    assert torch.equal(model(batch)["energy"], module.potential(batch)["pred_energy"])
    report = evaluate(compose_config("eval", [f"ckpt={tmp_path}", f"paths.output_dir={tmp_path}/eval",
                                              "data.sources.dft.n_test=32"]))  # fmt: skip
    assert report["metrics"]["test"]["dft"]["forces_mae"] == pytest.approx(
        record["metrics"]["test"]["dft"]["forces_mae"], rel=1e-4
    )


def test_merged_and_unmerged_adapters_predict_the_same_in_float64():
    torch.manual_seed(0)
    policy = LoRA(rank=3, alpha=6.0, layers=["interactions.1.*"])
    module = MultiFidelityModule({"backbone": PAINN, "head": HEAD, "dtype": "float64"}, ["dft"], policy=policy.config())
    adapters = [m for m in module.potential.backbone.modules() if isinstance(m, LoRALinear)]
    assert adapters and all(name.startswith("interactions.1.") for name, m in
                            module.potential.backbone.named_modules() if isinstance(m, LoRALinear))  # fmt: skip
    trainable = {n for n, p in module.potential.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n or n.startswith("heads.") for n in trainable)
    molecules = [molecule("CH3OH"), molecule("H2O")]
    untrained, _ = physics.energy_forces(module.potential.eval(), molecules, 5.0)  # B = 0: the wrapped layers
    with torch.no_grad():
        for adapter in adapters:
            adapter.lora_b.normal_(std=0.3)  # a trained adapter: its update is not zero
    energy, forces = physics.energy_forces(module.potential, molecules, 5.0)
    assert np.max(np.abs(energy - untrained)) > 1e-3
    policy.merge(module.potential)
    assert not any(isinstance(m, LoRALinear) for m in module.potential.modules())
    merged_energy, merged_forces = physics.energy_forces(module.potential, molecules, 5.0)
    assert np.max(np.abs(merged_energy - energy)) < 1e-6  # eV
    assert np.max(np.abs(merged_forces - forces)) < 1e-6  # eV/Å


def test_lora_layers_that_match_nothing_are_named():
    module = MultiFidelityModule({"backbone": PAINN, "head": HEAD}, ["dft"])
    with pytest.raises(
        UserError, match=r"params.layers=\['nope.\*'\] \(strategy.params\) matches none of the backbone"
    ):
        LoRA(layers=["nope.*"]).apply(module.potential)
    with pytest.raises(UserError, match=r"params.rank=0 \(strategy.params\) must be a whole number >= 1"):
        LoRA(rank=0).apply(module.potential)
