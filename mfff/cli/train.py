"""`mfff-train`: a Hydra app composing data, model, strategy, trainer, logger and callbacks."""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mfff.cli.errors import run_hydra_app, user_errors
from mfff.cli.overrides import open_overrides
from mfff.config import conf_dir
from mfff.runs.resume import AUTO


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="train")
def app(cfg: DictConfig) -> float | None:
    from mfff.runs.finished import finished_before
    from mfff.runs.run import train

    runtime = HydraConfig.get()
    choices = {**dict(runtime.runtime.choices), "_overrides": list(runtime.overrides.task)}
    metrics = None
    in_sweep = runtime.mode == RunMode.MULTIRUN
    with user_errors("mfff-train", in_sweep=in_sweep):
        # a rerun sweep (same hydra.sweep.dir), or a requeued job (resume=auto), skips a run that finished with this
        # very config
        resume = cfg.get("resume")
        done = (in_sweep and not resume) or str(resume) == AUTO
        metrics = finished_before(cfg, f"job {runtime.job.num}" if in_sweep else "run") if done else None
        metrics = metrics or train(cfg, choices)
    if metrics is None:  # a diverged job of a sweep
        return None
    # the value Hydra sweepers optimise: the monitored validation metric, if present
    stage, _, name = str(cfg.monitor).partition("/")
    return metrics.metric(stage, "_all", name)


def main() -> None:
    sys.argv[1:] = open_overrides(sys.argv[1:])  # strategy.pretrain.trainer.max_epochs=50 without a `+`
    run_hydra_app("mfff-train", app)


if __name__ == "__main__":
    main()
