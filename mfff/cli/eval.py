"""`mfff-eval ckpt=<run dir or .ckpt> [data=...]`: test a checkpoint on every fidelity it has a head for."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from mfff.cli.errors import run_hydra_app, user_errors
from mfff.config import conf_dir


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="eval")
def app(cfg: DictConfig) -> None:
    from mfff.analyze.evaluate import evaluate, format_report, write_report

    with user_errors("mfff-eval"):
        report = evaluate(cfg)
        print(format_report(report, write_report(report, cfg.paths.output_dir)))


def main() -> None:
    run_hydra_app("mfff-eval", app)


if __name__ == "__main__":
    main()
