"""A study's kept records (paths.records_dir) carry it to a fresh clone: jobs with a record are skipped by their
config hash, the others run, and a pre-training is built only when a job that runs needs it."""

import json
import shutil

import yaml

from mfff.records import RunRecord
from tests.test_cli import _run
from tests.train.conftest import QUICK

SIZES = [f"data.sources.{f}.{k}=16" for f in ("gfn2", "dft") for k in ("n_val", "n_test")]


def sweep(clone, *overrides):
    """The tiny study's command, run from `clone` (its records dir is relative, as a study's is)."""
    command = ["-m", "mfff.cli.train", "-m", "strategy=pretrain_finetune", "data.sources.gfn2.n_train=32",
               "trainer.max_epochs=2", "strategy.pretrain.trainer.max_epochs=2", "paths.records_dir=records",
               "paths.cache_dir=cache", "hydra.sweep.dir=sweep", *SIZES, *QUICK, *overrides]  # fmt: skip
    result = _run(command, clone)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def kept(clone):
    return {p.parent.name: RunRecord.read(p) for p in (clone / "records").glob("*/metrics.json")}


def test_a_fresh_clone_skips_the_jobs_with_kept_records_and_runs_only_the_others(tmp_path):
    first, fresh = tmp_path / "first", tmp_path / "fresh"
    first.mkdir()
    sweep(first, "data.sources.dft.n_train=16,32")
    records = kept(first)
    assert sorted(r.n_train["dft"] for r in records.values()) == [16, 32]
    for config_hash, record in records.items():
        assert record.finished and record.config_hash == config_hash and record.cpu_s > 0
        resolved = yaml.safe_load((first / "records" / config_hash / "config.yaml").read_text())
        assert resolved["data"]["sources"]["dft"]["n_train"] == record.n_train["dft"]
        assert "${" not in json.dumps(resolved)  # resolved: no interpolation left

    # a fresh clone has the committed records only: no run dirs, no pre-training cache
    fresh.mkdir()
    shutil.copytree(first / "records", fresh / "records")
    # the same jobs in another order, another experiment name and another sweep: cosmetic, all kept -> nothing runs
    said = sweep(fresh, "data.sources.dft.n_train=32,16", "experiment_name=renamed")
    assert said.count("is kept in") == 2, said[-3000:]
    assert not (fresh / "cache").exists()  # no job ran, so no pre-training was built
    assert not list((fresh / "sweep").glob("*/metrics.json"))

    said = sweep(fresh, "data.sources.dft.n_train=16,32,48")
    assert said.count("is kept in") == 2, said[-3000:]
    ran = list((fresh / "sweep").glob("*/metrics.json"))
    assert len(ran) == 1 and RunRecord.read(ran[0]).n_train["dft"] == 48
    assert RunRecord.read(ran[0]).pretrain.cache == "built"  # the job that ran needed the pre-training: built once
    assert len(list((fresh / "cache" / "pretrain").glob("*/checkpoints"))) == 1
    assert sorted(r.n_train["dft"] for r in kept(fresh).values()) == [16, 32, 48]
    # the records kept are the very ones of the first clone: nothing was retrained
    for config_hash, record in records.items():
        assert kept(fresh)[config_hash].metrics == record.metrics

    # another study whose jobs have the same settings reuses them from paths.records_from, copied into its own dir
    said = sweep(fresh, "data.sources.dft.n_train=16,48", "paths.records_dir=studies/two/runs",
                 "hydra.sweep.dir=sweep2", "paths.records_from=[records]")  # fmt: skip
    assert said.count("is kept in records/") == 2, said[-3000:]
    two = {p.parent.name: p.read_text() for p in (fresh / "studies" / "two" / "runs").glob("*/metrics.json")}
    assert two == {h: (fresh / "records" / h / "metrics.json").read_text() for h in two} and len(two) == 2
    assert all((fresh / "studies" / "two" / "runs" / h / "config.yaml").is_file() for h in two)


def test_rekey_files_records_again_under_the_hash_their_resolved_config_gives_now(tmp_path):
    from omegaconf import OmegaConf

    from mfff.runs.kept_records import rekey
    from mfff.train.settings import config_hash
    from tests.helpers import compose_config

    cfg = compose_config("train", ["strategy=pretrain_finetune", f"paths.output_dir={tmp_path}"])
    entry = tmp_path / "runs" / "0123456789abcdef"  # filed under a hash of an older declaration
    entry.mkdir(parents=True)
    (entry / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    RunRecord("finished", metrics={"test": {"dft": {"forces_mae": 50.0}}}, config_hash=entry.name).write(
        entry / "metrics.json"
    )
    assert rekey(tmp_path / "runs") == [(entry.name, config_hash(cfg))]
    moved = RunRecord.read(tmp_path / "runs" / config_hash(cfg) / "metrics.json")
    assert moved.config_hash == config_hash(cfg) and moved.metrics["test"]["dft"]["forces_mae"] == 50.0
    assert not entry.exists() and rekey(tmp_path / "runs") == []  # filed right: nothing to move
    # the pre-training cache dir is where the cache lies, not what a run computes: it leaves the hash alone
    elsewhere = compose_config("train", ["strategy=pretrain_finetune", f"paths.output_dir={tmp_path}",
                                         "paths.cache_dir=/somewhere/else"])  # fmt: skip
    assert config_hash(elsewhere) == config_hash(cfg)
