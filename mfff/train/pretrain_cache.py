"""A pre-trained checkpoint cached under a key of everything that determines it, built once even by parallel jobs."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mfff.train.stage import Stage, StageResult, stage_config

log = logging.getLogger(__name__)

RECORD = "metrics.json"
# what cannot change the trained weights; everything else in the config is part of the key
NOT_IN_KEY = {"trainer": ("enable_progress_bar", "log_every_n_steps", "default_root_dir")}


def code_digest() -> str:
    """A digest of the code that trains (mfff's data, model and train packages): editing it makes new entries."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for part in ("data", "model", "train"):
        for path in sorted((package / part).rglob("*.py")):
            digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(cfg: DictConfig, stage: Stage) -> tuple[str, dict]:
    """(sha256 key, the settings it hashes): data of the stage's fidelities, model, loss, optimiser, schedule,
    trainer, callbacks, the stage's own settings, the seed and the training code."""
    staged = stage_config(cfg, Path("<run>"), stage.config)

    def plain(key):
        node = staged.get(key)
        return OmegaConf.to_container(node, resolve=True) if node is not None else None

    data = plain("data")
    used = set(stage.train) | set(stage.evaluate)
    data["sources"] = {name: source for name, source in data["sources"].items() if name in used}
    data.pop("fidelity", None)  # the fine-tuning target does not change the pre-training
    if not data.get("budget"):
        data.pop("budget", None)
    settings = {
        "data": data,
        **{key: plain(key) for key in ("model", "loss", "optimizer", "scheduler", "trainer", "callbacks")},
        "stage": {
            "train": stage.train,
            "heads": stage.heads,
            "energy_only": stage.energy_only,
            "sampling": stage.sampling,
        },
        "seed": int(cfg.seed),
        "code": code_digest(),
    }
    for key, names in NOT_IN_KEY.items():
        for name in names:
            (settings.get(key) or {}).pop(name, None)
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16], settings


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
        self, key: str, settings: dict, build: Callable[[Path], StageResult], poll_s: float = 2.0, wait_s: float = 600
    ) -> tuple[Path, str]:
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
            shutil.rmtree(partial, ignore_errors=True)  # left by a job that died; we hold the lock
            log.info("pre-training into %s (cache key %s)", final, key)
            result = build(partial)
            record = {
                "key": key,
                "settings": settings,
                "n_train": {f: s["n_train"] for f, s in result.stats.items()},
                "label_cost_cpu_s": {f: s["label_cost"] for f, s in result.stats.items()},
                "epochs": result.epochs,
                "wall_s": result.wall_s,
                "best_checkpoint": Path(result.best_checkpoint).name if result.best_checkpoint else None,
                "metrics": result.metrics,
            }
            (partial / RECORD).write_text(json.dumps(record, indent=1) + "\n")
            if final.exists():  # an unfinished entry without its record
                shutil.rmtree(final)
            os.rename(partial, final)
            return final, "built"

    @staticmethod
    def checkpoint(entry: Path) -> Path:
        name = json.loads((entry / RECORD).read_text()).get("best_checkpoint") or "last.ckpt"
        return entry / "checkpoints" / name
