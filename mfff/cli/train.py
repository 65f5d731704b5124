"""`mfff-train`: a Hydra app composing data, model, strategy, trainer, logger and callbacks."""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mfff.cli.errors import user_errors
from mfff.config import conf_dir
from mfff.data.errors import DataError


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from mfff.train.run import train

    runtime = HydraConfig.get()
    choices = {**dict(runtime.runtime.choices), "_overrides": list(runtime.overrides.task)}
    with user_errors("mfff-train", DataError):
        metrics = train(cfg, choices)
    # the value Hydra sweepers optimise: the monitored validation metric, if present
    stage, _, name = str(cfg.monitor).partition("/")
    return metrics["metrics"].get(stage, {}).get("_all", {}).get(name)


if __name__ == "__main__":
    main()
