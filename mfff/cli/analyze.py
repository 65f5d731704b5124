"""`mfff-analyze runs=<multirun dir or run dirs>`: tables, log-log transfer fits, learning curves, cost, report;
`mfff-analyze study=experiments/<study>`: that study's results.md from its kept records."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from mfff.cli.errors import run_hydra_app, user_errors
from mfff.config import conf_dir


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="analyze")
def app(cfg: DictConfig) -> None:
    from mfff.analyze.report import analyse
    from mfff.analyze.study_results import all_studies, study_results

    with user_errors("mfff-analyze"):
        if cfg.get("studies"):
            for name, done in all_studies(cfg.studies).items():
                print(f"mfff-analyze: {name}: {done['runs']} kept records; wrote {done['out']}")
            print(f"mfff-analyze: wrote the findings table of {cfg.studies}/README.md")
            return
        if cfg.get("study"):
            done = study_results(cfg.study)
            verdicts = ", ".join(f"({v['id']}) {v['verdict']}" for v in done["verdicts"]) or "no findings"
            print(f"mfff-analyze: {done['runs']} kept records; wrote {done['out']}: {verdicts}")
            return
        result = analyse(cfg)
        for run in result["unfinished"]:
            print(f"mfff-analyze: skipping {run}")
        for line in result["skipped"]:
            print(f"mfff-analyze: skipped {line}")
        print(f"mfff-analyze: {result['runs']} runs (target {result['target']}); wrote {result['out'] / 'report.md'}")


def main() -> None:
    run_hydra_app("mfff-analyze", app)


if __name__ == "__main__":
    main()
