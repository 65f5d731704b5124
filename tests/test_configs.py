"""Every config option composes and instantiates (lightning-hydra-template style)."""

from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from mfff.config import conf_dir
from mfff.model.build import build_potential
from mfff.runs.fit import instantiate_dict
from tests.helpers import compose_config

CONF = conf_dir()


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


BASE = ["paths.output_dir=/tmp/mfff-config-test"]


@pytest.mark.parametrize("backbone", options("model/backbone"))
@pytest.mark.parametrize("size", options("model/size"))
def test_every_backbone_and_size_builds(backbone, size):
    cfg = compose_config("train", [*BASE, f"model/backbone={backbone}", f"model/size={size}"])
    potential = build_potential(cfg.model, ["dft", "gfn2"])
    # MACE has presets of its own (model.size.mace); its features are the 0e channels of every layer
    preset = cfg.model.size.mace if backbone == "mace" else cfg.model.size
    features = preset.n_channels * preset.n_interactions if backbone == "mace" else preset.n_features
    assert potential.backbone.n_features == features
    assert len(potential.backbone.interactions) == preset.n_interactions
    assert list(potential.heads) == ["dft", "gfn2"]


def test_size_presets_grow():
    counts = []
    for size in ("s", "m", "l"):
        cfg = compose_config("train", [*BASE, f"model/size={size}"])
        counts.append(sum(p.numel() for p in build_potential(cfg.model, ["dft"]).parameters()))
    assert counts[0] < counts[1] < counts[2]


EXPECTED_FIDELITIES = {
    "scratch": ["dft"],
    "finetune": ["dft"],
    "pretrain": ["gfn2"],
    "pretrain_finetune": ["dft", "gfn2"],
    "multihead": ["cc", "dft", "gfn1", "gfn2"],
    "replay_finetune": ["dft"],
    "delta": ["dft"],
}


@pytest.mark.parametrize("strategy", options("strategy"))
def test_every_strategy_instantiates(strategy):
    extra = ["strategy.from=/some/run"] if "finetune" in strategy and strategy != "pretrain_finetune" else []
    cfg = compose_config("train", [*BASE, f"strategy={strategy}", *extra])
    instance = hydra.utils.instantiate(cfg.strategy, _convert_="all")
    assert instance.name == strategy
    assert instance.fidelities == EXPECTED_FIDELITIES[strategy]


@pytest.mark.parametrize("params", options("strategy/params"))
def test_every_parameter_policy_applies(params):
    cfg = compose_config("train", [*BASE, "strategy=finetune", f"strategy/params={params}"])
    policy = hydra.utils.instantiate(cfg.strategy.params, _convert_="all")
    potential = build_potential(cfg.model, ["dft"])
    before = {n for n, p in potential.named_parameters()}
    policy.apply(potential)
    trainable = {n for n, p in potential.named_parameters() if p.requires_grad}
    assert policy.name == params and trainable and {n for n in trainable if n.startswith("heads.")}
    assert (trainable == before) == (params == "full")
    assert hydra.utils.instantiate(policy.config()) == policy  # what the checkpoint stores rebuilds it


@pytest.mark.parametrize("scheduler", options("scheduler"))
@pytest.mark.parametrize("optimizer", options("optimizer"))
def test_every_optimizer_and_scheduler(optimizer, scheduler):
    cfg = compose_config("train", [*BASE, f"optimizer={optimizer}", f"scheduler={scheduler}"])
    params = [torch.nn.Parameter(torch.zeros(3))]
    opt = hydra.utils.instantiate(cfg.optimizer)(params=params)
    assert opt.param_groups[0]["lr"] == cfg.optimizer.lr
    if cfg.scheduler:
        schedule = hydra.utils.instantiate(cfg.scheduler).build(opt, 100, "val/loss")
        assert schedule["interval"] in ("step", "epoch")


@pytest.mark.parametrize("trainer", options("trainer"))
def test_every_trainer(trainer):
    if trainer == "ddp_slurm":  # reads the SLURM launcher's allocation
        trainer_cfg = resolved_with_launcher([*BASE, "trainer=ddp_slurm", "hydra.launcher.gpus_per_node=4"])[1]
        assert (trainer_cfg["strategy"], trainer_cfg["devices"], trainer_cfg["num_nodes"]) == ("ddp", 4, 1)
        return
    if trainer == "gpu" and not torch.cuda.is_available():
        cfg = compose_config("train", [*BASE, f"trainer={trainer}"])
        assert cfg.trainer.accelerator == "gpu"  # composes; instantiating needs a GPU
        return
    cfg = compose_config("train", [*BASE, f"trainer={trainer}"])
    instance = hydra.utils.instantiate(cfg.trainer, logger=False)
    assert instance.max_epochs == cfg.trainer.max_epochs


def resolved_with_launcher(overrides: list[str], launcher: str = "slurm") -> tuple[dict, dict]:
    """(hydra.launcher, trainer) of a composed config, resolved as in a running job (Hydra's runtime config set)."""
    cfg = compose_config("train", [f"hydra/launcher={launcher}", *overrides], hydra=True)
    HydraConfig.instance().set_config(cfg)
    try:
        return (OmegaConf.to_container(cfg.hydra.launcher, resolve=True),
                OmegaConf.to_container(cfg.trainer, resolve=True))  # fmt: skip
    finally:
        HydraConfig.instance().cfg = None


@pytest.mark.parametrize("launcher", options("hydra/launcher"))
def test_every_launcher_resolves_with_site_values_from_the_cluster_node(launcher, monkeypatch):
    monkeypatch.setenv("MFFF_SLURM_ACCOUNT", "from-env")
    settings, _ = resolved_with_launcher(
        [*BASE, "cluster.partition=gpu", "cluster.setup=[module load cuda]", "+cluster.additional_parameters.x=1"],
        launcher,
    )
    if launcher.startswith("slurm"):
        assert settings["_target_"].endswith("SlurmLauncher") and settings["partition"] == "gpu"
        assert settings["account"] == "from-env" and settings["setup"] == ["module load cuda"]
        assert settings["additional_parameters"] == {"x": 1} and settings["signal_delay_s"] == 300
        assert settings["gpus_per_node"] == (1 if launcher == "slurm" else None)
    else:
        assert settings["_target_"].endswith("LocalLauncher") and settings["tasks_per_node"] == 1


@pytest.mark.parametrize("logger", options("logger"))
def test_every_logger(logger, tmp_path):
    cfg = compose_config("train", [f"paths.output_dir={tmp_path}", f"logger={logger}"])
    loggers = instantiate_dict(cfg.get("logger"))
    names = sorted(type(x).__name__ for x in loggers)
    assert names == {"csv": ["HistoryCSVLogger"], "wandb": ["HistoryCSVLogger", "WandbLogger"], "none": []}[logger]


@pytest.mark.parametrize("callbacks", options("callbacks"))
def test_every_callback_set(callbacks):
    cfg = compose_config("train", [*BASE, f"callbacks={callbacks}"])
    assert all(c is not None for c in instantiate_dict(cfg.callbacks))


def test_callbacks_are_dict_keyed_and_can_be_switched_off():
    cfg = compose_config("train", [*BASE, "~callbacks.early_stopping"])
    names = {type(c).__name__ for c in instantiate_dict(cfg.callbacks)}
    assert "EarlyStopping" not in names and "ModelCheckpoint" in names


def test_shared_values_are_written_once():
    cfg = compose_config("train", [*BASE, "cutoff=4.2", "seed=7"])
    assert cfg.model.backbone.cutoff == cfg.data.cutoff == cfg.data.sources.dft.cutoff == 4.2
    assert cfg.data.seed == cfg.data.sources.gfn1.seed == 7
    assert cfg.callbacks.model_checkpoint.monitor == cfg.callbacks.early_stopping.monitor == cfg.monitor


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes(experiment):
    cfg = compose_config("train", [*BASE, f"experiment={experiment}"])
    hydra.utils.instantiate(cfg.strategy, _convert_="all")


@pytest.mark.parametrize("source", options("data/source"))
def test_every_source_config_reads_its_format(source, emt_extxyz, tmp_path):
    import numpy as np

    if source == "builtin":
        cfg = compose_config("train", BASE)
        node = cfg.data.sources.gfn2
    else:
        path = {"extxyz": emt_extxyz, "npz": tmp_path / "m.npz", "ani": tmp_path / "a.h5"}[source]
        if source == "npz":
            np.savez(
                path,
                z=np.array([8, 1, 1]),
                R=_conformers(0, 40, 3),
                E=np.arange(40.0),
                F=np.zeros((40, 3, 3)),
            )
        if source == "ani":
            import h5py

            with h5py.File(path, "w") as f:
                for name, n in (("H2O1", 3), ("H3N1", 4)):
                    g = f.create_group(name)
                    g["atomic_numbers"] = np.array([8, 1, 1, 1][:n]) if n == 3 else np.array([7, 1, 1, 1])
                    g["coordinates"] = _conformers(1, 30, n)
                    g["wb97x_dz.energy"] = np.linspace(-76, -75, 30)
                    g["wb97x_dz.forces"] = np.zeros((30, n, 3))
        overrides = [
            *BASE,
            f"+data/source@data.sources.x={source}",
            "data.sources.x.fidelity=x",
            f"data.sources.x.reader.path={path}",
            "data.sources.x.n_train=10",
            "data.sources.x.n_val=5",
        ]
        if source == "extxyz":
            overrides += ["data.sources.x.reader.energy_key=energy_emt", "data.sources.x.reader.forces_key=forces_emt"]
        node = compose_config("train", overrides).data.sources.x
    instance = hydra.utils.instantiate(node)
    instance.setup()
    assert len(instance.train) > 0 and len(instance.val) > 0 and instance.tests


def test_label_and_eval_roots_compose():
    assert compose_config("label", []).label.name == "builtin"
    assert compose_config("eval", ["ckpt=x.ckpt", *BASE]).ckpt == "x.ckpt"
    assert Path(CONF / "train.yaml").is_file()


def _conformers(seed: int, count: int, n_atoms: int) -> np.ndarray:
    """`count` geometries of `n_atoms` atoms 1 Å apart on a line, jiggled (readers refuse atoms closer than 0.3 Å)."""
    line = np.arange(n_atoms)[:, None] * np.array([1.0, 0.0, 0.0])
    return line + np.random.default_rng(seed).normal(scale=0.05, size=(count, n_atoms, 3))
