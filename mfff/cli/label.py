"""`mfff-label`: sample conformers, label them with xTB / PySCF methods, assemble a dataset."""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from mfff.cli.errors import user_errors
from mfff.config import conf_dir

log = logging.getLogger("mfff.label")


def run(cfg: DictConfig) -> None:
    from mfff.label.pipeline import LabelJob
    from mfff.label.summary import format_summary, summarize

    with user_errors("mfff-label"):
        job = LabelJob(cfg.label)
        if not cfg.summary:
            job.run(stages=list(cfg.stages), retry_failed=bool(cfg.retry_failed))
        print(format_summary(summarize(job)))


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="label")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
