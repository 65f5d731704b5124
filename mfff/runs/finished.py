"""Jobs that need not run again: a run dir whose metrics.json finished with the same resolved config."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from mfff.errors import UserError
from mfff.records import FILENAME, RunRecord
from mfff.train.settings import config_hash


def finished_before(cfg: DictConfig, job: str) -> RunRecord | None:
    """The metrics.json of this run dir when it finished with this config (then the job is skipped, and said so);
    None when it must run: no metrics.json, a run that did not finish, or another config (said so too)."""
    path = Path(cfg.paths.output_dir) / FILENAME
    if not path.is_file():
        return None
    try:
        record = RunRecord.read(path)
    except UserError as err:
        print(f"mfff-train: {job}: {err}; running it again", flush=True)
        return None
    if not record.finished:
        print(f"mfff-train: {job}: {path} records status {record.status!r}; running it again", flush=True)
        return None
    if record.config_hash != config_hash(cfg):
        print(f"mfff-train: {job}: {path.parent} finished with another config; running it again with this one",
              flush=True)  # fmt: skip
        return None
    print(f"mfff-train: {job}: {path.parent} finished before with this config; skipped (delete its metrics.json "
          "to run it again)", flush=True)  # fmt: skip
    return record
