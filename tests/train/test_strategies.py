"""Pre-training without forces, multi-head batch composition and loss weights, the pre-training cache."""

import hashlib
import json
import multiprocessing
import os
import time
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch

from mfff.data.reference import N_ELEMENTS
from mfff.data.stats import SourceStats
from mfff.runs.fit import StageResult
from mfff.runs.pretrain_cache import PretrainCache
from mfff.runs.run import train
from mfff.train.loss import MultiFidelityLoss
from tests.helpers import assert_learnt, compose_config, trivial_errors
from tests.train.conftest import QUICK, quick_overrides, train_quick


def _emt_run(tmp_path, path, use_forces: bool) -> dict:
    cfg = compose_config(
        "train",
        [
            f"paths.output_dir={tmp_path}",
            "strategy=pretrain",
            "strategy.fidelities=[emt]",
            f"strategy.use_forces={str(use_forces).lower()}",
            "+data/source@data.sources.emt=extxyz",
            "data.sources.emt.fidelity=emt",
            f"data.sources.emt.reader.path={path}",
            "data.sources.emt.reader.energy_key=energy_emt",
            "data.sources.emt.reader.forces_key=forces_emt",
            "data.sources.emt.n_val=16",
            "trainer.max_epochs=2",
            *QUICK,
        ],
    )
    metrics = train(cfg, {})
    return torch.load(metrics.best_checkpoint, map_location="cpu", weights_only=False)["state_dict"]


def test_pretraining_without_forces_never_reads_the_force_labels(emt_extxyz, tmp_path):
    frames = ase.io.read(emt_extxyz, ":")
    rng = np.random.default_rng(1)
    for atoms in frames:  # garbage force labels: if they were read, training would differ
        atoms.arrays["forces_emt"] = rng.normal(scale=50.0, size=atoms.arrays["forces_emt"].shape)
    garbage = tmp_path / "garbage.extxyz"
    ase.io.write(garbage, frames)
    real = _emt_run(tmp_path / "real", emt_extxyz, use_forces=False)
    fake = _emt_run(tmp_path / "fake", garbage, use_forces=False)
    assert all(torch.equal(real[k], fake[k]) for k in real)
    with_forces = _emt_run(tmp_path / "forces", emt_extxyz, use_forces=True)
    assert not torch.equal(
        real["potential.backbone.embedding.weight"], with_forces["potential.backbone.embedding.weight"]
    )


def test_energy_only_is_decided_by_the_stage_fidelity_and_zeroes_its_force_weight_only():
    from mfff.train.fidelity import trained
    from mfff.train.stage import Stage, stage_loss

    stage = Stage("multihead", [trained("gfn2", forces=False), trained("dft")])
    assert stage.energy_only == ["gfn2"]
    cfg = compose_config("train", ["paths.output_dir=/tmp/mfff-loss"])
    loss = MultiFidelityLoss(stage.heads, **stage_loss(cfg, stage), trained=stage.train)
    assert loss.forces_weights.tolist() == [10.0, 0.0]  # dft, gfn2
    assert loss.energy_weights.tolist() == [20.0, 20.0]
    # a fidelity's own weights (say, of replayed data) win over loss.per_fidelity, which wins over the defaults
    from mfff.train.fidelity import Fidelity

    weighted = Stage("multihead", [Fidelity("gfn2", energy_weight=2.0), trained("dft")])
    cfg = compose_config("train", ["paths.output_dir=/tmp/mfff-loss", "+loss.per_fidelity.gfn2.energy_weight=7"])
    loss = MultiFidelityLoss(weighted.heads, **stage_loss(cfg, weighted), trained=weighted.train)
    assert loss.energy_weights.tolist() == [20.0, 2.0] and loss.forces_weights.tolist() == [10.0, 10.0]


def test_per_fidelity_loss_weights_and_evaluate_only_heads():
    loss = MultiFidelityLoss(
        ["cc", "dft", "gfn2"], energy_weight=1.0, per_fidelity={"cc": {"energy_weight": 5.0}}, trained=["cc", "dft"]
    )
    assert loss.energy_weights.tolist() == [5.0, 1.0, 0.0]
    assert loss.forces_weights.tolist() == [10.0, 10.0, 0.0]


def test_multihead_fixed_composition_and_epoch_length_by_the_expensive_fidelity(tmp_path):
    metrics = train_quick(
        tmp_path,
        "strategy=multihead",
        "strategy.fidelities=[dft,gfn2]",
        "strategy.sampling.mode=fixed",
        "strategy.sampling.fixed={dft: 2}",
        "strategy.sampling.epoch_fidelity=dft",
        fidelities=("dft", "gfn2"),
        n_train=32,
        epochs=2,
    )
    assert metrics["steps"] == 2 * 16  # 32 dft structures, 2 per batch of 8
    assert metrics["strategy"]["sampling"]["fixed"] == {"dft": 2}
    assert set(metrics["metrics"]["test"]) >= {"dft", "gfn2"}


def test_energy_only_fidelity_head_learns_from_energies(tmp_path):
    def run(directory, *extra, epochs):
        return train_quick(directory, "strategy=multihead", "strategy.fidelities=[cc,dft]", *extra,
                           fidelities=("cc", "dft"), n_train=32, epochs=epochs)  # fmt: skip

    # 32 CCSD(T) energies beside 32 DFT structures with forces: the cc head learns late, once the DFT forces have
    # shaped the shared features (val about 1x the trivial model after 20 epochs, 0.65x / 0.69x after 100, seeds 0 / 1)
    metrics = run(tmp_path / "trained", epochs=100)
    assert "forces_mae" not in metrics["metrics"]["test"]["cc"]
    cfg = compose_config("train", quick_overrides(tmp_path, ("cc", "dft"), n_train=32))
    trivial = trivial_errors(cfg, "cc", "val")["energy_per_atom_mae"]  # E0 fitted on the CCSD(T) energies alone
    assert_learnt(metrics["metrics"]["val"]["cc"]["energy_per_atom_mae"], trivial, "cc energies", at_most=0.8)
    # the same run with the cc energies weighted 0: the same initial head, which then never moves
    untrained = run(tmp_path / "untrained", "+loss.per_fidelity.cc.energy_weight=0", epochs=2)
    heads = [torch.load(m["best_checkpoint"], weights_only=False)["state_dict"] for m in (metrics, untrained)]
    readout = [k for k in heads[0] if k.startswith("potential.heads.cc.mlp.")]
    assert readout and all(not torch.equal(heads[0][k], heads[1][k]) for k in readout)


def _build_once(root, marker_dir, started):
    started.wait()

    def build(directory: Path) -> StageResult:
        (Path(marker_dir) / f"trained-{os.getpid()}").touch()
        (directory / "checkpoints").mkdir(parents=True)
        (directory / "checkpoints" / "best.ckpt").write_text("weights")
        time.sleep(1.0)  # long enough that the other jobs arrive while this one builds
        stats = SourceStats(np.zeros(N_ELEMENTS), 1.0, True, 1.0, 4.0, n_train=10, label_cost=1.0, elements=[1])
        return StageResult({}, {"gfn2": stats}, str(directory / "checkpoints/best.ckpt"), 1, 1)

    entry, status = PretrainCache(root).get_or_build("k", {"weights": {"seed": 0}}, build)
    (Path(marker_dir) / f"{status}-{os.getpid()}").touch()


def test_jobs_starting_together_build_the_pretraining_once(tmp_path):
    context = multiprocessing.get_context("fork")
    started = context.Event()
    jobs = [context.Process(target=_build_once, args=(tmp_path / "cache", tmp_path, started)) for _ in range(3)]
    for job in jobs:
        job.start()
    started.set()
    for job in jobs:
        job.join(30)
        assert job.exitcode == 0
    names = sorted(p.name.split("-")[0] for p in tmp_path.iterdir() if p.is_file())
    assert names == ["built", "reused", "reused", "trained"]  # one job trained, two found its result
    entry = tmp_path / "cache" / "k"
    assert PretrainCache.checkpoint(entry).read_text() == "weights"
    assert not (tmp_path / "cache" / "k.partial").exists()


def test_pretrain_and_finetune_stages_get_their_own_optimiser_and_trainer_settings(tmp_path):
    metrics = train_quick(
        tmp_path / "run",
        "strategy=pretrain_finetune",
        f"paths.cache_dir={tmp_path}/cache",
        "strategy.pretrain.optimizer.lr=0.002",
        "strategy.pretrain.trainer.max_epochs=2",
        "strategy.finetune.optimizer.lr=0.0005",
        fidelities=("dft", "gfn2"),
        n_train=16,
        epochs=1,
    )
    pretrained = torch.load(metrics["pretrain"]["checkpoint"], map_location="cpu", weights_only=False)
    finetuned = torch.load(metrics["best_checkpoint"], map_location="cpu", weights_only=False)
    assert pretrained["hyper_parameters"]["optimizer"]["lr"] == 0.002
    # the fine-tune's own rate, times lr_scale (default 0.2)
    assert finetuned["hyper_parameters"]["optimizer"]["lr"] == pytest.approx(0.0005 * 0.2)
    assert metrics["strategy"]["finetune"]["lr_scale"] == 0.2
    record = json.loads((Path(metrics["pretrain"]["checkpoint"]).parents[1] / "metrics.json").read_text())
    assert record["epochs"] == 2 and metrics["epochs"] == 1
    assert metrics["pretrain"]["epochs"] == 2 and metrics["pretrain"]["wall_s"] == record["wall_s"] > 0
    assert metrics["strategy"]["finetune"]["fidelities"] == ["dft"]


def test_cache_key_follows_what_determines_the_pretraining_and_nothing_else():
    from mfff.runs.pretrain_cache import cache_key
    from mfff.train.fidelity import trained
    from mfff.train.stage import Stage

    def key(*overrides, use_forces=True):
        cfg = compose_config("train", ["paths.output_dir=/tmp/mfff-key", "strategy=pretrain_finetune", *overrides])
        return cache_key(cfg, Stage("pretrain", [trained("gfn2", forces=use_forces)]))[0]

    base = key()
    assert key("data.sources.dft.n_train=100", "data.sources.cc.n_val=5", "trainer.enable_progress_bar=false") == base
    assert key("paths.output_dir=/elsewhere", "data.fidelity=cc") == base
    inert = ["data.num_workers=2", "data.eval_batch_size=7", "data.neighbours=torch", "trainer.log_every_n_steps=3"]
    assert key(*inert, "callbacks.lr_monitor=null") == base
    changes = (
        ["data.sources.gfn2.n_train=100"], ["seed=1"], ["model/size=m"], ["optimizer.lr=0.01"], ["data.batch_size=4"],
        ["trainer.max_epochs=7"], ["callbacks.ema=null"], ["callbacks.early_stopping.patience=3"],
    )  # fmt: skip
    for changed in changes:
        assert key(*changed) != base, changed
    assert key(use_forces=False) != base


def test_cache_key_follows_the_data_files_content(tmp_path, emt_extxyz):
    from mfff.runs.pretrain_cache import cache_key
    from mfff.train.stage import Stage

    data = tmp_path / "data.extxyz"
    source = [
        "+data/source@data.sources.emt=extxyz", "data.sources.emt.fidelity=emt", f"data.sources.emt.reader.path={data}",
        "data.sources.emt.reader.energy_key=energy_emt", "data.sources.emt.reader.forces_key=forces_emt",
    ]  # fmt: skip

    def key():
        cfg = compose_config("train", ["paths.output_dir=/tmp/mfff-key", *source])
        return cache_key(cfg, Stage("pretrain", ["emt"]))

    data.write_bytes(emt_extxyz.read_bytes())
    first, settings = key()
    assert settings["files"] == {str(data): "sha256 " + hashlib.sha256(data.read_bytes()).hexdigest()}
    assert key()[0] == first
    frames = ase.io.read(data, ":")
    frames[0].positions[0, 0] += 0.01  # the same file name, regenerated with other content
    ase.io.write(data, frames)
    assert key()[0] != first


def test_a_ddp_rank_above_zero_gives_up_when_rank_zero_never_publishes(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")

    def build(directory: Path) -> StageResult:
        return StageResult({}, {}, None, epochs=1, steps=1)

    with pytest.raises(RuntimeError, match="rank 0 did not publish the pre-trained checkpoint"):
        PretrainCache(tmp_path).get_or_build("k", {}, build, poll_s=0.01, wait_s=0.05)
    assert not (tmp_path / "k.lock").exists()  # ranks > 0 never take the lock
