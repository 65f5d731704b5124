"""Fine-tuning from a pre-trained checkpoint: what trains, which head, which reference energies, strict loading."""

import json

import pytest
import torch

from mfff.data.reference import N_ELEMENTS
from mfff.data.stats import SourceStats
from mfff.errors import UserError
from mfff.train.checkpoints import resolve_checkpoint
from mfff.train.module import MultiFidelityModule
from mfff.train.strategies import Finetune
from tests.helpers import assert_learnt, compose_config, trivial_errors
from tests.train.conftest import quick_overrides, train_quick


def _state(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def _finetune(tmp_path, pretrained, *extra, fidelities=("dft",), n_train=32, epochs=2):
    run_dir, _ = pretrained
    return train_quick(
        tmp_path,
        "strategy=finetune",
        f"strategy.from={run_dir}",
        *extra,
        fidelities=fidelities,
        n_train=n_train,
        epochs=epochs,
    )


def _differs(before: dict, after: dict, prefix: str) -> bool:
    keys = [k for k in before if k.startswith(prefix)]
    assert keys, prefix
    return all(not torch.equal(before[k], after[k]) for k in keys if before[k].is_floating_point())


def _same(before: dict, after: dict, prefix: str) -> bool:
    keys = [k for k in before if k.startswith(prefix)]
    assert keys, prefix
    return all(torch.equal(before[k], after[k]) for k in keys)


def test_frozen_backbone_stays_bit_identical(pretrained_gfn2, tmp_path):
    metrics = _finetune(tmp_path, pretrained_gfn2, "strategy/params=frozen_backbone")
    before = _state(resolve_checkpoint(pretrained_gfn2[0], "strategy.from"))
    after = _state(metrics["best_checkpoint"])
    assert _same(before, after, "potential.backbone.")
    assert "potential.heads.gfn2.mlp.0.weight" not in after  # no forgetting evaluation asked: only the dft head
    assert metrics["strategy"]["params"] == {"name": "frozen_backbone"}


def test_full_finetune_moves_the_backbone(pretrained_gfn2, tmp_path):
    metrics = _finetune(tmp_path, pretrained_gfn2, "strategy/params=full")
    before, after = _state(resolve_checkpoint(pretrained_gfn2[0], "strategy.from")), _state(metrics["best_checkpoint"])
    assert _differs(before, after, "potential.backbone.embedding.")
    assert _differs(before, after, "potential.backbone.interactions.0.")


def test_partial_freezes_exactly_the_named_blocks(pretrained_gfn2, tmp_path):
    metrics = _finetune(tmp_path, pretrained_gfn2, "strategy/params=partial", "strategy.params.freeze_blocks=2")
    before, after = _state(resolve_checkpoint(pretrained_gfn2[0], "strategy.from")), _state(metrics["best_checkpoint"])
    for frozen in (
        "potential.backbone.embedding.",
        "potential.backbone.interactions.0.",
        "potential.backbone.interactions.1.",
    ):
        assert _same(before, after, frozen), frozen
    assert _differs(before, after, "potential.backbone.interactions.2.")


def _stats(e0) -> SourceStats:
    return SourceStats(e0, force_rms=2.0, has_forces=True, energy_scale=1.0, avg_neighbours=4.0, n_train=10,
                       label_cost=0.0, elements=[1, 6, 7, 8])  # fmt: skip


def _finetuned_module(pretrained, **options):
    checkpoint = resolve_checkpoint(pretrained[0], "strategy.from")
    stage = Finetune("dft", **options).stage(checkpoint)
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    module = MultiFidelityModule(saved["hyper_parameters"]["model"], stage.heads, trained=stage.train)
    stats = {"dft": _stats(torch.arange(float(N_ELEMENTS)).numpy() * -1.5)}
    stage.builder.initialise(module, stage.fidelities, stats)
    return module, saved["state_dict"], stats


def test_reuse_starts_from_the_pretrained_head_and_new_does_not(pretrained_gfn2):
    reused, saved, _ = _finetuned_module(pretrained_gfn2, head="reuse")
    fresh, _, _ = _finetuned_module(pretrained_gfn2, head="new")
    for name, value in reused.potential.heads["dft"].mlp.state_dict().items():
        assert torch.equal(value, saved[f"potential.heads.gfn2.mlp.{name}"]), name
        assert not torch.equal(fresh.potential.heads["dft"].mlp.state_dict()[name], value), name
    for name, value in reused.potential.backbone.state_dict().items():
        assert torch.equal(value, saved[f"potential.backbone.{name}"])
        assert torch.equal(fresh.potential.backbone.state_dict()[name], value)
    assert float(reused.potential.heads["dft"].scale) == float(saved["potential.heads.gfn2.scale"])
    assert float(fresh.potential.heads["dft"].scale) == 2.0  # a new readout takes the fine-tuning force RMS


def test_reference_energies_are_refitted_by_default_and_kept_on_request(pretrained_gfn2):
    refit, saved, stats = _finetuned_module(pretrained_gfn2, head="reuse")
    kept, _, _ = _finetuned_module(pretrained_gfn2, head="reuse", reference="keep")
    assert torch.allclose(refit.potential.heads["dft"].e0, torch.as_tensor(stats["dft"].e0, dtype=torch.float32))
    assert torch.equal(kept.potential.heads["dft"].e0, saved["potential.heads.gfn2.e0"])


def test_cross_method_finetune_xtb_to_dft_works_out_of_the_box(pretrained_gfn2, tmp_path):
    """GFN2-xTB and DFT total energies differ by thousands of eV; the re-fitted E0 absorbs that, a kept one cannot."""
    refit = _finetune(tmp_path / "refit", pretrained_gfn2, "strategy.head=reuse", epochs=3)
    kept = _finetune(tmp_path / "keep", pretrained_gfn2, "strategy.head=reuse", "strategy.reference=keep", epochs=3)
    refit_error = refit["metrics"]["val"]["dft"]["energy_mae"]  # meV
    kept_error = kept["metrics"]["val"]["dft"]["energy_mae"]
    cfg = compose_config("train", quick_overrides(tmp_path, ("dft",), n_train=32))
    e0_only = trivial_errors(cfg, "dft", "val")["energy_mae"]  # E0 fitted on the same 32 DFT labels, nothing learned
    # measured 0.49x on val (the test split, whose E0 extrapolation decides energies at 32 labels: 1.18x)
    assert refit_error < 0.7 * e0_only, (refit_error, e0_only)
    assert kept_error > 100 * e0_only, (kept_error, e0_only)


def test_eval_pretrain_measures_forgetting_with_the_untouched_pretrained_head(pretrained_gfn2, tmp_path):
    metrics = _finetune(tmp_path, pretrained_gfn2, "strategy.eval_pretrain=true", fidelities=("dft", "gfn2"))
    assert metrics["n_train"] == {"gfn2": 64, "dft": 32}  # the pre-training labels count too
    cfg = compose_config("train", quick_overrides(tmp_path, ("gfn2",), n_train=64))
    for split in ("val", "test"):
        trivial = trivial_errors(cfg, "gfn2", split)["forces_mae"]
        pretrained = pretrained_gfn2[1]["metrics"][split]["gfn2"]["forces_mae"]
        if split == "val":  # 0.31x; its test split, other conformers further from the training ones, 0.69x
            assert_learnt(pretrained, trivial, "the pre-training's val gfn2 forces", at_most=0.5)
        # the forgetting measurement: the same gfn2 head on the backbone moved by DFT does worse than before
        forgotten = metrics["metrics"][split]["gfn2"]["forces_mae"]
        assert pretrained < forgotten, (split, pretrained, forgotten)
    before, after = _state(resolve_checkpoint(pretrained_gfn2[0], "strategy.from")), _state(metrics["best_checkpoint"])
    assert _same(before, after, "potential.heads.gfn2.")
    assert _differs(before, after, "potential.backbone.embedding.")
    assert metrics["pretrain"]["metrics"]["test"]["gfn2"] == pretrained_gfn2[1]["metrics"]["test"]["gfn2"]


def test_strategy_from_pointing_at_nothing(tmp_path):
    with pytest.raises(UserError, match="strategy.from=.*does not exist"):
        resolve_checkpoint(tmp_path / "nope", "strategy.from")
    with pytest.raises(UserError, match="is a directory without a checkpoint"):
        resolve_checkpoint(tmp_path, "strategy.from")
    with pytest.raises(UserError, match="strategy.from is not set"):
        resolve_checkpoint("???", "strategy.from")


def test_finetune_to_a_fidelity_absent_from_the_data(pretrained_gfn2, tmp_path):
    with pytest.raises(UserError, match="strategy.fidelity names fidelity 'ccsdt', which has no source"):
        _finetune(tmp_path, pretrained_gfn2, "data.fidelity=ccsdt")


def test_mismatched_architecture_names_both_configs(pretrained_gfn2, tmp_path):
    with pytest.raises(UserError, match="different architecture") as error:
        _finetune(tmp_path, pretrained_gfn2, "model/size=m")
    assert "'n_features': 32" in str(error.value) and "'n_features': 64" in str(error.value)


def test_missing_head_and_bad_options_are_named(pretrained_gfn2, tmp_path):
    with pytest.raises(UserError, match="strategy.source_head='cc' is not a head of .*; its heads are gfn2"):
        _finetune(tmp_path, pretrained_gfn2, "strategy.source_head=cc")
    with pytest.raises(UserError, match="params.freeze_blocks=7 .* but the backbone has 3 interaction blocks"):
        _finetune(tmp_path, pretrained_gfn2, "strategy/params=partial", "strategy.params.freeze_blocks=7")
    with pytest.raises(UserError, match="strategy.head='most' is unknown; choose one of reuse, new"):
        _finetune(tmp_path, pretrained_gfn2, "strategy.head=most")


def test_finetune_from_a_checkpoint_file_records_its_pretraining(pretrained_gfn2, tmp_path):
    checkpoint = resolve_checkpoint(pretrained_gfn2[0], "strategy.from")
    metrics = train_quick(
        tmp_path, "strategy=finetune", f"strategy.from={checkpoint}", fidelities=("dft",), n_train=16, epochs=1
    )
    assert metrics["pretrain"]["checkpoint"] == str(checkpoint)
    assert metrics["pretrain"]["n_train"] == {"gfn2": 64}
    assert json.loads((tmp_path / "metrics.json").read_text())["strategy"]["from"] == str(checkpoint)


def test_a_joint_strategy_warm_starts_from_a_checkpoint(pretrained_gfn2, tmp_path):
    from mfff.train.builders import FromCheckpoint
    from mfff.train.strategies import MultiHead

    checkpoint = resolve_checkpoint(pretrained_gfn2[0], "x")
    stage = MultiHead(["dft", "gfn2"], builder=FromCheckpoint(pretrained_gfn2[0])).stage()
    assert [(f.name, f.head.readout_from) for f in stage.fidelities] == [("dft", None), ("gfn2", "gfn2")]
    checkpoint_data = torch.load(checkpoint, map_location="cpu", weights_only=False)
    saved = checkpoint_data["state_dict"]
    warm = MultiFidelityModule(checkpoint_data["hyper_parameters"]["model"], stage.heads)
    stats = _stats(torch.zeros(N_ELEMENTS).numpy())
    stage.builder.initialise(warm, stage.fidelities, {"dft": stats, "gfn2": stats})
    backbone = warm.potential.backbone.state_dict()
    assert all(torch.equal(value, saved[f"potential.backbone.{name}"]) for name, value in backbone.items())
    assert torch.equal(warm.potential.heads["gfn2"].mlp[0].weight, saved["potential.heads.gfn2.mlp.0.weight"])
    assert not torch.equal(warm.potential.heads["dft"].mlp[0].weight, saved["potential.heads.gfn2.mlp.0.weight"])
    record = train_quick(
        tmp_path, "strategy=multihead", "strategy.fidelities=[dft,gfn2]", "strategy/builder=checkpoint",
        f"strategy.builder.checkpoint={pretrained_gfn2[0]}", fidelities=("dft", "gfn2"), n_train=16, epochs=1,
    )  # fmt: skip
    assert record["strategy"]["builder"] == {"name": "checkpoint", "checkpoint": str(pretrained_gfn2[0])}


def test_a_warm_started_pretraining_has_its_own_cache_key(pretrained_gfn2):
    from mfff.runs.pretrain_cache import cache_key
    from mfff.train.builders import FromCheckpoint
    from mfff.train.stage import Stage

    cfg = compose_config("train", ["paths.output_dir=/tmp/mfff-key", "strategy=pretrain_finetune"])
    cold, _ = cache_key(cfg, Stage("pretrain", ["gfn2"]))
    warm, settings = cache_key(cfg, Stage("pretrain", ["gfn2"], FromCheckpoint(pretrained_gfn2[0])))
    assert warm != cold and settings["stage"]["builder"]["content"].startswith("sha256 ")
