"""`mfff-train`: a Hydra app composing data, model, strategy, trainer, logger and callbacks."""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mfff.config import conf_dir
from mfff.data.errors import DataError
from mfff.utils.errors import find_cause


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from mfff.train.run import train

    runtime = HydraConfig.get()
    choices = {**dict(runtime.runtime.choices), "_overrides": list(runtime.overrides.task)}
    try:
        metrics = train(cfg, choices)
    except Exception as err:
        ours = find_cause(err, DataError)
        if ours is None:
            raise
        print(f"mfff-train: error: {ours}", file=sys.stderr)
        raise SystemExit(2) from None
    # the value Hydra sweepers optimise: the monitored validation metric, if present
    stage, _, name = str(cfg.monitor).partition("/")
    return metrics["metrics"].get(stage, {}).get("_all", {}).get(name)


if __name__ == "__main__":
    main()
