"""`mfff-label`: sample conformers, label them with xTB / PySCF methods, assemble a dataset."""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from mfff.cli.errors import run_hydra_app, user_errors
from mfff.config import conf_dir
from mfff.utils.threads import apply_threads, choose_threads

log = logging.getLogger("mfff.label")


def run(cfg: DictConfig) -> None:
    with user_errors("mfff-label"):
        # before tblite and PySCF load: their OpenMP runtimes read the thread count once
        threads = choose_threads(cfg.get("threads", "auto"))
        apply_threads(threads)
        log.info("using %s", threads)
        from mfff.label.pipeline import LabelJob
        from mfff.label.summary import format_summary, summarize

        job = LabelJob(cfg.label)
        if not cfg.summary:
            job.run(stages=list(cfg.stages), retry_failed=bool(cfg.retry_failed))
        print(format_summary(summarize(job)))


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="label")
def app(cfg: DictConfig) -> None:
    run(cfg)


def main() -> None:
    run_hydra_app("mfff-label", app)


if __name__ == "__main__":
    main()
