"""A pre-trained checkpoint cached under a key of everything that determines it, built once even by parallel jobs."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from mfff.records import FILENAME, FINISHED, RunRecord
from mfff.runs.fit import StageResult
from mfff.train.builders import FromCheckpoint
from mfff.train.settings import Role, settings_hash, sources_used, stage_settings
from mfff.train.stage import Stage, stage_config
from mfff.utils.instantiate import instantiate

log = logging.getLogger(__name__)

RECORD = FILENAME

DIGEST_LIMIT = 256 * 2**20  # larger files are fingerprinted by size and modification time, not read


def code_digest() -> str:
    """A digest of the code that trains (mfff's data, model, train and runs packages): editing it makes new entries."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for part in ("data", "model", "train", "runs"):
        for path in sorted((package / part).rglob("*.py")):
            digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def file_fingerprint(path: Path) -> str:
    """The content's sha256, or size and mtime for files too large to read for a key: a dataset regenerated at the
    same path is a new key."""
    stat = path.stat()
    if stat.st_size > DIGEST_LIMIT:
        return f"size {stat.st_size}, mtime_ns {stat.st_mtime_ns}"
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return "sha256 " + digest.hexdigest()


def source_files(staged: DictConfig, names: list[str]) -> dict[str, str]:
    """{path: fingerprint} of every file the sources `names` read."""
    files = {}
    for name in names:
        source = instantiate(staged.data.sources[name], key=f"data.sources.{name}")
        files.update({str(path): file_fingerprint(path) for path in source.data_files()})
    return dict(sorted(files.items()))


def cache_key(cfg: DictConfig, stage: Stage) -> tuple[str, dict]:
    """(key, the settings it hashes): the stage's settings (`mfff.train.settings.stage_settings`, the one
    declaration of what determines the weights), the content of its data files and of a warm start's checkpoint,
    and the training code."""
    staged = stage_config(cfg, Path("<run>"), stage.config)
    settings = stage_settings(staged, stage)
    if isinstance(stage.builder, FromCheckpoint):
        builder = settings[Role.STAGE.value]["builder"]
        builder["content"] = file_fingerprint(stage.builder.checkpoint)
    settings["files"] = source_files(staged, sources_used(staged, stage.sources))
    settings["code"] = code_digest()
    return settings_hash(settings), settings


RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


def _is_ddp_child() -> bool:
    """Ranks > 0 of a DDP job (Lightning's launcher or srun set these); only rank 0 takes the lock and renames."""
    return any(int(os.environ.get(name, "0") or 0) > 0 for name in RANK_VARIABLES)


class PretrainCache:
    """`root/<key>/` holds a finished pre-training run (checkpoints/, metrics.json, logs).

    A job takes an exclusive lock on `root/<key>.lock`, reuses the entry if it exists, else trains into
    `root/<key>.partial/` and renames it into place, so a crash never leaves an entry that looks finished and
    jobs starting together build it once.
    """

    def __init__(self, root):
        self.root = Path(root)

    def get_or_build(
        self,
        key: str,
        settings: dict,
        build: Callable[[Path], StageResult],
        poll_s: float = 2.0,
        wait_s: float = 600,
        keep_partial: bool = False,
    ) -> tuple[Path, str]:
        """The entry of `key` and "reused" or "built".

        Args:
            keep_partial: a partial entry left by a stopped job is continued by `build` (resume=auto), not removed.
        """
        final, partial = self.root / key, self.root / f"{key}.partial"
        self.root.mkdir(parents=True, exist_ok=True)
        if _is_ddp_child():  # rank 0 holds the lock; the other ranks train alongside it, then wait for the rename
            build(partial)
            deadline = time.monotonic() + wait_s  # rank 0 only has to write the record and rename by now
            while not (final / RECORD).is_file():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"rank 0 did not publish the pre-trained checkpoint {final} in {wait_s:.0f} s")
                time.sleep(poll_s)
            return final, "built"
        with open(self.root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # blocks while another job builds this key
            if (final / RECORD).is_file():
                log.info("pre-trained checkpoint %s found in the cache; reusing it", final)
                return final, "reused"
            if not keep_partial:
                shutil.rmtree(partial, ignore_errors=True)  # left by a job that died; we hold the lock
            log.info("pre-training into %s (cache key %s)", final, key)
            result = build(partial)
            record = RunRecord(  # a run dir like any other to mfff-analyze
                status=FINISHED,
                strategy={"name": "pretrain", "fidelities": sorted(result.stats)},
                key=key,
                settings=settings,
                seed=settings[Role.WEIGHTS.value]["seed"],
                n_train={f: s.n_train for f, s in result.stats.items()},
                label_cost_cpu_s={f: s.label_cost for f, s in result.stats.items()},
                epochs=result.epochs,
                steps=result.steps,
                best_epoch=result.best_epoch,
                stopped=result.stopped,
                wall_s=result.wall_s,
                cpu_s=result.cpu_s,
                best_checkpoint=Path(result.best_checkpoint).name if result.best_checkpoint else None,
                metrics=result.metrics,
            )
            record.write(partial / RECORD)
            if final.exists():  # an unfinished entry without its record
                shutil.rmtree(final)
            os.rename(partial, final)
            return final, "built"

    @staticmethod
    def checkpoint(entry: Path) -> Path:
        name = RunRecord.read(entry / RECORD).best_checkpoint or "last.ckpt"
        return entry / "checkpoints" / name
