"""The one declaration of what determines a run (`mfff.train.settings`): the cache key, the resume check, the
checkpoint's settings and the sweep's config hash all follow it, and a setting it does not classify is refused."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from mfff.errors import UserError
from mfff.runs.pretrain_cache import cache_key
from mfff.runs.run import train
from mfff.train import settings as declaration
from mfff.train.checkpoints import check_resume, read_checkpoint
from mfff.train.fidelity import Fidelity, trained
from mfff.train.settings import Role, UnclassifiedSetting, config_hash, role_of, roles_table, stage_settings
from mfff.train.stage import Stage, stage_config
from mfff.utils.instantiate import instantiate
from tests.helpers import compose_config
from tests.train.conftest import quick_overrides

PRETRAIN = Stage("pretrain", [trained("gfn2")])


def _cfg(*overrides, run="/tmp/mfff-settings"):
    return compose_config("train", [f"paths.output_dir={run}", "strategy=pretrain_finetune", *overrides])


def test_the_most_specific_rule_wins():
    assert role_of("data.sources.dft.n_train") is Role.WEIGHTS
    assert role_of("data.sources.dft.n_test") is Role.METRICS
    assert role_of("callbacks.model_checkpoint.dirpath") is Role.INERT
    assert role_of("callbacks.model_checkpoint.monitor") is Role.WEIGHTS
    assert role_of("callbacks.my_callback.decay") is Role.WEIGHTS  # a user's callback shapes training
    assert role_of("model.backbone.n_features") is Role.WEIGHTS
    assert role_of("trainer.max_epochs") is Role.LENGTH
    assert role_of("trainer.new_option") is None
    assert role_of("data") is None  # a rule covers its subtree, never the parent


@pytest.mark.parametrize("override", ["+trainer.new_option=1", "+data.new_setting=3", "+new_root_key=x"])
def test_an_unclassified_config_key_is_refused_by_every_derived_check(override, tmp_path):
    key = override[1:].split("=")[0]
    cfg = _cfg(override)
    for derived in (lambda: config_hash(cfg), lambda: cache_key(cfg, PRETRAIN), lambda: stage_settings(cfg, PRETRAIN)):
        with pytest.raises(UnclassifiedSetting, match=key.replace(".", r"\.") + ".*mfff/train/settings.py"):
            derived()
    # a run refuses it before reading any data
    quick = compose_config("train", [*quick_overrides(tmp_path, ("gfn2",), 16, 1), override, "strategy=scratch",
                                     "data.fidelity=gfn2"])  # fmt: skip
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        train(quick)
    assert not (tmp_path / "checkpoints").exists()


def test_an_unclassified_stage_field_is_refused():
    @dataclass
    class Tweaked(Stage):
        warmup_heads: bool = False  # no role declared

    with pytest.raises(UnclassifiedSetting, match="Tweaked.warmup_heads has no role"):
        Tweaked("pretrain", ["gfn2"]).settings()
    with pytest.raises(UnclassifiedSetting):
        cache_key(_cfg(), Tweaked("pretrain", ["gfn2"]))


def test_the_roles_decide_what_each_hash_sees():
    base_key, base_hash = cache_key(_cfg(), PRETRAIN)[0], config_hash(_cfg())
    # METRICS: reported numbers change, the weights do not
    assert cache_key(_cfg("data.sources.gfn2.n_test=10"), PRETRAIN)[0] == base_key
    assert config_hash(_cfg("data.sources.gfn2.n_test=10")) != base_hash
    # INERT: neither
    for inert in ("trainer.enable_progress_bar=false", "data.num_workers=2", "threads=1", "cluster.partition=gpu"):
        assert cache_key(_cfg(inert), PRETRAIN)[0] == base_key, inert
        assert config_hash(_cfg(inert)) == base_hash, inert
    # WEIGHTS of a source the stage does not read: the job changes, the pre-training does not
    assert cache_key(_cfg("data.sources.dft.n_train=20"), PRETRAIN)[0] == base_key
    assert config_hash(_cfg("data.sources.dft.n_train=20")) != base_hash
    # ... unless the stage reads it: molecules excluded by another source, or a Δ head's base
    excluding = "+data.sources.gfn2.exclude_molecules_of=[dft]"
    assert cache_key(_cfg(excluding, "data.sources.dft.n_val=20"), PRETRAIN)[0] != cache_key(_cfg(excluding),
                                                                                             PRETRAIN)[0]  # fmt: skip
    delta = Stage("delta", [Fidelity("dft", base="gfn2", base_labeller={"method": "GFN2-xTB"})])
    assert cache_key(_cfg("data.sources.gfn2.n_val=20"), delta)[0] != cache_key(_cfg(), delta)[0]
    # the stage's own fields
    assert cache_key(_cfg(), Stage("pretrain", [trained("gfn2")], lr_scale=0.5))[0] != base_key


def test_one_declaration_drives_the_cache_key_the_checkpoint_and_the_resume_check(tmp_path, monkeypatch):
    """Reclassifying one key (data.eval_batch_size: METRICS -> WEIGHTS) in the declaration alone changes all three."""
    run = [*quick_overrides(tmp_path / "run", ("gfn2",), 16, 1), "strategy=scratch", "data.fidelity=gfn2"]
    scratch = instantiate(compose_config("train", run).strategy, _convert_="all").stage()

    def effects():
        first, other = _cfg(*run), _cfg(*run, "data.eval_batch_size=7")
        same_key = cache_key(first, scratch)[0] == cache_key(other, scratch)[0]
        record = train(compose_config("train", run))
        saved = read_checkpoint(record.best_checkpoint)
        stored = "data.eval_batch_size" in saved["hyper_parameters"]["settings"]["weights"]
        staged = stage_config(other, Path(tmp_path / "run"), {})
        try:
            check_resume(saved, stage_settings(staged, scratch), record.best_checkpoint)
            refused = False
        except UserError as error:
            assert "data.eval_batch_size: 64 (checkpoint) -> 7 (now)" in str(error)
            refused = True
        return same_key, stored, refused

    assert effects() == (True, False, False)
    monkeypatch.setitem(declaration.CONFIG_ROLES, "data.eval_batch_size", Role.WEIGHTS)
    assert effects() == (False, True, True)


def test_a_resume_refuses_a_trainer_setting_it_used_to_ignore(tmp_path):
    run = [*quick_overrides(tmp_path, ("gfn2",), 16, 1), "strategy=scratch", "data.fidelity=gfn2"]
    record = train(compose_config("train", run))
    with pytest.raises(UserError, match=r"trainer\.gradient_clip_val: 10\.0 \(checkpoint\) -> 1\.0 \(now\)"):
        train(compose_config("train", [*run, f"resume={tmp_path}", "trainer.gradient_clip_val=1.0"]))
    assert read_checkpoint(record.best_checkpoint)["hyper_parameters"]["settings"]["schema"] == 2


def test_the_readme_lists_the_declaration():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert roles_table() in readme, "README's table differs: paste `python -m mfff.train.settings` into it"
