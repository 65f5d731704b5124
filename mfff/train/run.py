"""Drive one training run from a composed config: strategy -> stage(s) -> metrics.json in the run dir."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig
from pytorch_lightning.utilities import rank_zero_only

from mfff.errors import Interrupted, TrainingDiverged
from mfff.train.checks import check_train_config
from mfff.train.finished import config_fingerprint
from mfff.train.preemption import requeue, slurm_job_id, slurm_record
from mfff.train.report import UNITS, format_summary
from mfff.train.resume import AUTO
from mfff.train.stage import processes_per_node
from mfff.train.strategies import Strategy
from mfff.utils.atomic import atomic_write_text
from mfff.utils.instantiate import instantiate
from mfff.utils.threads import apply_threads, choose_threads

log = logging.getLogger(__name__)


def train(cfg: DictConfig, run_choices: dict | None = None) -> dict:
    check_train_config(cfg)
    threads = choose_threads(cfg.get("threads", "auto"), processes_per_node(cfg.trainer), cfg.data.num_workers)
    apply_threads(threads)
    log.info("using %s", threads)
    if cfg.model.get("dtype", "float32") == "float32" and torch.cuda.is_available():
        # float32 models on a GPU: TF32 matmuls (about 1e-3 relative, well inside a force field's error)
        torch.set_float32_matmul_precision("high")
    output_dir = Path(cfg.paths.output_dir)
    choices = run_choices or {}
    strategy: Strategy = instantiate(cfg.strategy, _convert_="all")
    record = {
        "status": "finished",
        "strategy": strategy.describe(),
        "backbone": choices.get("model/backbone", cfg.model.backbone._target_.rsplit(".", 1)[-1]),
        "size": choices.get("model/size"),
        "seed": int(cfg.seed),
        "threads": threads.threads,
        "overrides": list(choices.get("_overrides", [])),
        "units": UNITS,
        "config_hash": config_fingerprint(cfg),  # a rerun sweep skips this job while its config stays the same
        "slurm": slurm_record(),
    }
    try:
        outcome = strategy.run(cfg, output_dir, cfg.get("resume") or None)
    except TrainingDiverged as err:
        err.metrics_file = output_dir / "metrics.json"
        _write(output_dir, {**record, "status": "diverged", "diverged": err.record(), "metrics": {}})
        raise
    except Interrupted as err:  # says where the run stopped, and never reads as finished
        rank_zero = rank_zero_only.rank == 0
        if err.signal == "SIGUSR1" and str(cfg.get("resume")) == AUTO and err.checkpoint and rank_zero:
            job = slurm_job_id()
            if job is not None:  # SLURM's warning ahead of the time limit: the job goes on as a new one
                requeue(job)
                err.requeued = job
        if rank_zero:
            _write(output_dir, {**record, "status": "interrupted", "interrupted": err.record(), "metrics": {}})
        raise
    result = outcome.result
    record.update(
        n_train=outcome.n_train,
        label_cost_cpu_s=outcome.label_cost,
        epochs=result.epochs,
        steps=result.steps,
        best_epoch=result.best_epoch,
        stopped=result.stopped,
        wall_s=result.wall_s,
        resumed_from=result.resumed_from,
        best_checkpoint=result.best_checkpoint,
        metrics=result.metrics,
        pretrain=outcome.pretrain,
    )
    if result.is_global_zero:
        _write(output_dir, record)
        print(format_summary(record, output_dir / "metrics.json"), flush=True)
    return record


def _write(output_dir: Path, record: dict) -> None:
    atomic_write_text(output_dir / "metrics.json", json.dumps(record, indent=1) + "\n")
    log.info("wrote %s", output_dir / "metrics.json")
