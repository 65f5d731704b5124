"""`mfff-eval ckpt=<path> [data=...]`: test a checkpoint on every fidelity it has a head for."""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig

from mfff.cli.errors import user_errors
from mfff.config import conf_dir
from mfff.data.errors import DataError


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="eval")
def main(cfg: DictConfig) -> None:
    from mfff.train.evaluate import evaluate

    with user_errors("mfff-eval", DataError):
        report = evaluate(cfg)
    print(json.dumps(report["metrics"], indent=1))


if __name__ == "__main__":
    main()
