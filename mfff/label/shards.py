"""Resumable on-disk work units.

A shard holds the labels of up to `shard_size` conformers of one molecule for one fidelity. It is rewritten
atomically after every label, so `kill -9` at any moment loses at most the label in flight, and a file is
never torn. A per-shard `flock` lets several workers (e.g. SLURM array tasks) share one work dir safely.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from mfff.errors import UserError
from mfff.utils.atomic import atomic_write_text


@contextlib.contextmanager
def try_lock(path: Path) -> Iterator[bool]:
    """Yield True while holding an exclusive lock on `path`, False if another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EAGAIN, errno.EACCES):
                yield False
                return
            raise
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class LabelShard:
    """The records of one (fidelity, molecule, chunk); each record is keyed by conformer id."""

    def __init__(self, path: Path, fidelity: str, molecule: str, method: str, conformer_ids: list[int]):
        self.path, self.fidelity, self.molecule = path, fidelity, molecule
        self.method, self.conformer_ids = method, list(conformer_ids)
        self.reload()

    def reload(self) -> None:
        """Read the records on disk (another worker may have added some since)."""
        self.records: dict[int, dict] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise UserError(f"label shard {self.path} is unreadable ({err}); delete it to relabel") from err
        if data.get("method") != self.method:
            raise UserError(
                f"label shard {self.path} was made with method {data.get('method')!r} but the config now asks "
                f"for {self.method!r}; use a new label.work_dir or delete {self.path.parent} to relabel"
            )
        if data.get("conformer_ids") != self.conformer_ids:
            raise UserError(
                f"label shard {self.path} covers other conformers than the config selects (seed, shard_size or "
                f"max_per_molecule changed); use a new label.work_dir or delete {self.path.parent}"
            )
        self.records = {int(r["conformer_id"]): r for r in data["records"]}

    @property
    def pending(self) -> list[int]:
        return [i for i in self.conformer_ids if i not in self.records]

    def add(self, record: dict) -> None:
        self.records[int(record["conformer_id"])] = record
        self.save()

    @property
    def failed(self) -> list[int]:
        return [i for i, r in self.records.items() if not r["ok"]]

    def drop_failures(self) -> None:
        self.records = {i: r for i, r in self.records.items() if r["ok"]}

    def save(self) -> None:
        payload = {
            "fidelity": self.fidelity,
            "molecule": self.molecule,
            "method": self.method,
            "conformer_ids": self.conformer_ids,
            "records": [self.records[i] for i in self.conformer_ids if i in self.records],
        }
        atomic_write_text(self.path, json.dumps(payload, separators=(",", ":")))
