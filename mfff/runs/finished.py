"""Jobs that need not run again: a run dir whose metrics.json finished with the same config hash, or a record of that
hash kept in `paths.records_dir` (`mfff.runs.kept_records`), e.g. committed by a study on another machine."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from mfff.errors import UserError
from mfff.records import FILENAME, RunRecord
from mfff.runs.kept_records import keep, kept_record
from mfff.train.settings import config_hash


def finished_before(cfg: DictConfig, job: str) -> RunRecord | None:
    """The record of this job when it finished before with this config (then the job is skipped, and said so);
    None when it must run (said so too, when its run dir holds another or an unfinished run)."""
    wanted = config_hash(cfg)
    record, why_not = _in_run_dir(Path(cfg.paths.output_dir), wanted)
    if record is not None:
        keep(cfg, record)  # a sweep run before paths.records_dir was set files its records now
        print(f"mfff-train: {job}: {cfg.paths.output_dir} finished before with this config; skipped (delete its "
              f"{FILENAME} to run it again)", flush=True)  # fmt: skip
        return record
    kept = kept_record(cfg, wanted)
    if kept is not None:
        record, entry = kept
        print(f"mfff-train: {job}: a record of this config (hash {wanted}) is kept in {entry}; skipped (delete that "
              "entry to run it again)", flush=True)  # fmt: skip
        return record
    if why_not:
        print(f"mfff-train: {job}: {why_not}", flush=True)
    return None


def _in_run_dir(run_dir: Path, wanted: str) -> tuple[RunRecord | None, str | None]:
    path = run_dir / FILENAME
    if not path.is_file():
        return None, None
    try:
        record = RunRecord.read(path)
    except UserError as err:
        return None, f"{err}; running it again"
    if not record.finished:
        return None, f"{path} records status {record.status!r}; running it again"
    if record.config_hash != wanted:
        return None, f"{run_dir} finished with another config; running it again with this one"
    return record, None
