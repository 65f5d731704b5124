"""`mfff-eval ckpt=<path> [data=...]`: test a checkpoint on every fidelity it has a head for."""

from __future__ import annotations

import json
import sys

import hydra
from omegaconf import DictConfig

from mfff.config import conf_dir
from mfff.data.errors import DataError
from mfff.utils.errors import find_cause


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="eval")
def main(cfg: DictConfig) -> None:
    from mfff.train.evaluate import evaluate

    try:
        report = evaluate(cfg)
    except Exception as err:
        ours = find_cause(err, DataError)
        if ours is None:
            raise
        print(f"mfff-eval: error: {ours}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(report["metrics"], indent=1))


if __name__ == "__main__":
    main()
