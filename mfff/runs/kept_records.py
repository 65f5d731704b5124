"""Kept records: each finished job's metrics.json and resolved config, filed under its config hash in
`paths.records_dir`, small enough to commit. A rerun of the sweep on another machine (no run dirs, no cache) finds a
job there by the settings that determine it, not by job number or run dir, and skips it.

    <records_dir>/<config hash>/metrics.json   the job's RunRecord
    <records_dir>/<config hash>/config.yaml    its resolved config
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mfff.errors import UserError
from mfff.records import FILENAME, RunRecord
from mfff.utils.atomic import atomic_write_text

CONFIG_FILE = "config.yaml"

log = logging.getLogger(__name__)


def records_dir(cfg: DictConfig) -> Path | None:
    value = cfg.paths.get("records_dir")
    return Path(value) if value else None


def kept_record(cfg: DictConfig, config_hash: str) -> tuple[RunRecord, Path] | None:
    """The finished record of this config hash in `paths.records_dir`, else in any dir `paths.records_from` names
    (globs allowed); one found elsewhere is copied into `paths.records_dir`, so each study holds its own."""
    own = records_dir(cfg)
    places = [own] if own else []
    for pattern in cfg.paths.get("records_from") or []:
        places += [Path(p) for p in sorted(glob.glob(str(pattern)))]
    for place in places:
        entry = place / config_hash
        record = _finished(entry / FILENAME)
        if record is None:
            continue
        if own and place.resolve() != own.resolve():
            _copy_entry(entry, own / config_hash)
        return record, entry
    return None


def keep(cfg: DictConfig, record: RunRecord) -> Path | None:
    """File a finished record and the resolved config under `paths.records_dir`/<config hash> (atomic writes)."""
    own = records_dir(cfg)
    if own is None or not record.finished or record.config_hash is None:
        return None
    entry = own / record.config_hash
    atomic_write_text(entry / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True))
    record.write(entry / FILENAME)  # last: an entry with a record is complete
    log.info("kept the record in %s", entry)
    return entry


def _finished(path: Path) -> RunRecord | None:
    if not path.is_file():
        return None
    try:
        record = RunRecord.read(path)
    except UserError as err:
        log.warning("%s; ignoring that kept record", err)
        return None
    return record if record.finished else None


def _copy_entry(source: Path, target: Path) -> None:
    config = source / CONFIG_FILE
    if config.is_file():
        atomic_write_text(target / CONFIG_FILE, config.read_text())
    atomic_write_text(target / FILENAME, (source / FILENAME).read_text())


def rekey(directory: Path) -> list[tuple[str, str]]:
    """File every kept record of `directory` again under the config hash its resolved config.yaml gives now: after a
    change to the settings declaration (mfff/train/settings.py) that moves hashes without changing what any of these
    runs computed (e.g. a placement key found to be hashed), so their jobs are not run again. Returns (old, new)."""
    from mfff.train.settings import config_hash

    moved = []
    for config in sorted(Path(directory).glob(f"*/{CONFIG_FILE}")):
        entry, new = config.parent, config_hash(OmegaConf.load(config))
        if new == entry.name:
            continue
        record = RunRecord.read(entry / FILENAME)
        record.config_hash = new
        target = entry.parent / new
        if target.exists():
            raise UserError(f"{entry} and {target} are one job now (hash {new}); keep one of them and rekey again")
        record.write(entry / FILENAME)
        entry.rename(target)
        moved.append((entry.name, new))
    return moved


if __name__ == "__main__":
    import sys

    for given in sys.argv[1:]:  # python -m mfff.runs.kept_records experiments/*/runs
        for old, new in rekey(Path(given)):
            print(f"{given}: {old} -> {new}")
