"""What a wandb run shows of an mfff run: grouped by sweep, tagged with what a study varies, its config flat."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

# config branches that say how a run is shown or launched, not what it computes: left out of wandb's config
NOT_LOGGED = ("hydra", "cluster", "logger", "paths")


def hydra_runtime():
    """Hydra's runtime config of this job, or None (a config composed in Python, e.g. by a test)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def sweep_group(default: str) -> str:
    """The wandb group: the sweep (its dir, unique per `-m` launch) for the jobs of a multirun, else `default`."""
    from hydra.types import RunMode

    runtime = hydra_runtime()
    if runtime is not None and runtime.mode == RunMode.MULTIRUN:
        return str(Path(runtime.sweep.dir))
    return default


def run_name() -> str | None:
    """The job's own overrides ('model/size=m,seed=1'), so runs of a sweep are told apart at a glance."""
    runtime = hydra_runtime()
    if runtime is None:
        return None
    overrides = runtime.job.override_dirname
    return f"{runtime.job.num}: {overrides}" if overrides else None


def flat_config(cfg: DictConfig) -> dict:
    """The resolved config as {'model.backbone._target_': ..., 'data.sources.dft.n_train': 50, ...}: every value its
    own column to filter and group by in the dashboard."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    flat: dict = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        else:
            flat[prefix] = node

    walk({k: v for k, v in resolved.items() if k not in NOT_LOGGED}, "")
    return flat


def run_tags(cfg: DictConfig, stage: str, n_train: dict[str, int]) -> list[str]:
    """strategy, stage, backbone, size and training set size per fidelity, as `key:value` tags."""
    runtime = hydra_runtime()
    choices = dict(runtime.runtime.choices) if runtime is not None else {}
    backbone = choices.get("model/backbone") or str(cfg.model.backbone._target_).rsplit(".", 1)[-1].lower()
    tags = [f"strategy:{cfg.strategy.name}", f"stage:{stage}", f"backbone:{backbone}"]
    if choices.get("model/size"):
        tags.append(f"size:{choices['model/size']}")
    tags += [f"n_train.{fidelity}:{n}" for fidelity, n in sorted(n_train.items())]
    return tags


def describe(loggers, cfg: DictConfig, stage: str, n_train: dict[str, int]) -> None:
    """Give the wandb runs among `loggers` the run's flat config, its sizes and its tags (rank 0 only: the others
    have no run)."""
    from pytorch_lightning.loggers import WandbLogger
    from pytorch_lightning.utilities import rank_zero_only

    if rank_zero_only.rank != 0:
        return
    for logger in loggers or []:
        if isinstance(logger, WandbLogger):
            run = logger.experiment
            run.config.update({**flat_config(cfg), **{f"n_train.{f}": n for f, n in n_train.items()}},
                              allow_val_change=True)  # fmt: skip
            run.tags = tuple(sorted(set(run.tags or ()) | set(run_tags(cfg, stage, n_train))))


def finish(loggers) -> None:
    """End the wandb runs among `loggers` (Lightning leaves them open, and the next `wandb.init` of this process, the
    next job of a sweep under Hydra's basic launcher, would log into the same run)."""
    from pytorch_lightning.loggers import WandbLogger

    for logger in loggers or []:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish()
