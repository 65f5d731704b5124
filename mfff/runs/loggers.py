"""Logger factories that need a decision at run time."""

from __future__ import annotations

import csv
import netrc
import os
from pathlib import Path

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment


def wandb_api_key_available() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(Path.home() / ".netrc").authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_logger(project: str, group: str, save_dir: str, offline: bool | None = None, **kwargs):
    """A Lightning WandbLogger writing real run files; offline when no API key is configured.

    Args:
        group: the group of a single run; the jobs of a multirun are grouped by their sweep instead.
    """
    from pytorch_lightning.loggers import WandbLogger

    from mfff.runs.wandb_run import run_name, sweep_group

    if offline is None:
        offline = not wandb_api_key_available() or os.environ.get("WANDB_MODE") == "offline"
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("name", run_name())
    return WandbLogger(project=project, group=sweep_group(group), save_dir=save_dir, offline=offline, **kwargs)


class _AppendingWriter(ExperimentWriter):
    """Keeps an existing metrics.csv and adds rows to it (Lightning's writer deletes it)."""

    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as handle:
                self.metrics_keys = sorted(csv.DictReader(handle).fieldnames or [])


class HistoryCSVLogger(CSVLogger):
    """Lightning's CSV logger; with `append` (set for a resumed run) the per-epoch history goes on in the same file
    instead of starting again."""

    append: bool = False

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = (_AppendingWriter if self.append else ExperimentWriter)(log_dir=self.log_dir)
        return self._experiment
