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

from mfff.train.builders import FromCheckpoint
from mfff.train.stage import Stage, StageResult, stage_config
from mfff.utils.instantiate import instantiate

log = logging.getLogger(__name__)

RECORD = "metrics.json"

# What the key hashes, listed explicitly: only settings that can change the pre-trained weights. Not in it: data
# workers, the eval batch size, the neighbour-list backend, the fine-tuning target, logging and progress bars.
DATA_KEYS = ("batch_size", "cutoff", "dtype", "seed", "budget")  # besides the stage's sources, whole, and their files
TRAINER_KEYS = (
    "max_epochs", "max_steps", "min_epochs", "min_steps", "accumulate_grad_batches", "gradient_clip_val",
    "gradient_clip_algorithm", "precision", "accelerator", "devices", "num_nodes", "strategy", "deterministic",
    "check_val_every_n_epoch", "val_check_interval", "limit_train_batches", "limit_val_batches",
)  # fmt: skip
WHOLE_GROUPS = ("model", "loss", "optimizer", "scheduler")
# callbacks are hashed whole (EMA, early stopping, and any a user adds), except these, which cannot change weights;
# of the checkpoint callback only what decides which epoch is "best"
INERT_CALLBACKS = ("lr_monitor", "save_on_signal", "last_checkpoint")
CHECKPOINT_KEYS = ("monitor", "mode")
DIGEST_LIMIT = 256 * 2**20  # larger files are fingerprinted by size and modification time, not read


def code_digest() -> str:
    """A digest of the code that trains (mfff's data, model and train packages): editing it makes new entries."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for part in ("data", "model", "train"):
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


def _data_settings(staged: DictConfig, names: list[str]) -> dict:
    data = OmegaConf.to_container(staged.data, resolve=True)
    settings = {key: data.get(key) for key in DATA_KEYS}
    settings["sources"] = {name: data["sources"][name] for name in sorted(names)}
    files = {}
    for name in names:
        source = instantiate(staged.data.sources[name], key=f"data.sources.{name}")
        files.update({str(path): file_fingerprint(path) for path in source.data_files()})
    settings["files"] = dict(sorted(files.items()))
    return settings


def _callback_settings(staged: DictConfig) -> dict:
    callbacks = OmegaConf.to_container(staged.get("callbacks") or {}, resolve=True)
    settings = {k: v for k, v in callbacks.items() if v is not None and k not in INERT_CALLBACKS}
    if settings.get("model_checkpoint"):
        settings["model_checkpoint"] = {k: settings["model_checkpoint"].get(k) for k in CHECKPOINT_KEYS}
    return settings


def _builder_settings(stage: Stage) -> dict:
    """How the stage's model starts; a warm start's checkpoint by its content."""
    settings = stage.builder.describe()
    if isinstance(stage.builder, FromCheckpoint):
        settings["content"] = file_fingerprint(stage.builder.checkpoint)
    return settings


def cache_key(cfg: DictConfig, stage: Stage) -> tuple[str, dict]:
    """(sha256 key, the settings it hashes): the stage's fidelities (data settings, sizes, files' content), model,
    loss, optimiser, schedule, the trainer and callback settings that shape training, the stage's own settings,
    the seed and the training code."""
    staged = stage_config(cfg, Path("<run>"), stage.config)
    used = stage.train + stage.evaluate
    trainer = OmegaConf.to_container(staged.trainer, resolve=True)
    settings = {
        "data": _data_settings(staged, used),
        **{key: OmegaConf.to_container(staged[key], resolve=True) if staged.get(key) else None for key in WHOLE_GROUPS},
        "trainer": {key: trainer[key] for key in TRAINER_KEYS if key in trainer},
        "callbacks": _callback_settings(staged),
        "stage": {
            "train": stage.train,
            "heads": stage.heads,
            "energy_only": stage.energy_only,
            "sampling": stage.sampling,
            "policy": stage.policy.config(),
            "builder": _builder_settings(stage),
            "lr_scale": stage.lr_scale,
        },
        "seed": int(cfg.seed),
        "code": code_digest(),
    }
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
            record = {
                "status": "finished",  # a run dir like any other to mfff-analyze
                "strategy": {"name": "pretrain", "fidelities": sorted(result.stats)},
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
