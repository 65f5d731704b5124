"""Drive one training run from a composed config: strategy -> stage(s) -> metrics.json in the run dir."""

from __future__ import annotations

import errno
import logging
from dataclasses import replace
from pathlib import Path

import torch
from omegaconf import DictConfig
from pytorch_lightning.utilities import rank_zero_only

from mfff.errors import Interrupted, TrainingDiverged
from mfff.records import DIVERGED, FILENAME, FINISHED, INTERRUPTED, RunRecord
from mfff.runs.execute import execute
from mfff.runs.fit import processes_per_node
from mfff.runs.kept_records import keep
from mfff.runs.preemption import requeue, slurm_job_id, slurm_record
from mfff.runs.report import UNITS, format_summary
from mfff.runs.resume import AUTO
from mfff.runs.run_lock import run_dir_lock
from mfff.train.checks import check_train_config
from mfff.train.settings import config_hash
from mfff.train.strategies import Strategy
from mfff.utils.errors import full_disk, full_disk_message
from mfff.utils.instantiate import instantiate
from mfff.utils.threads import apply_threads, choose_threads

log = logging.getLogger(__name__)


def train(cfg: DictConfig, run_choices: dict | None = None) -> RunRecord:
    """Train as the config says, in its run dir (`paths.output_dir`), which no other mfff-train may use meanwhile."""
    check_train_config(cfg)
    with run_dir_lock(Path(cfg.paths.output_dir)):
        return _train(cfg, run_choices)


def _train(cfg: DictConfig, run_choices: dict | None) -> RunRecord:
    threads = choose_threads(cfg.get("threads", "auto"), processes_per_node(cfg.trainer), cfg.data.num_workers)
    apply_threads(threads)
    log.info("using %s", threads)
    if cfg.model.get("dtype", "float32") == "float32" and torch.cuda.is_available():
        # float32 models on a GPU: TF32 matmuls (about 1e-3 relative, well inside a force field's error)
        torch.set_float32_matmul_precision("high")
    output_dir = Path(cfg.paths.output_dir)
    choices = run_choices or {}
    strategy: Strategy = instantiate(cfg.strategy, _convert_="all")
    record = RunRecord(
        status=FINISHED,
        strategy=strategy.describe(),
        backbone=choices.get("model/backbone", cfg.model.backbone._target_.rsplit(".", 1)[-1]),
        size=choices.get("model/size"),
        seed=int(cfg.seed),
        threads=threads.threads,
        overrides=list(choices.get("_overrides", [])),
        units=UNITS,
        config_hash=config_hash(cfg),  # a rerun sweep skips this job while its config stays the same
        slurm=slurm_record(),
    )
    path = output_dir / FILENAME
    try:
        outcome = execute(cfg, strategy.plan(cfg, output_dir), output_dir, cfg.get("resume") or None)
    except TrainingDiverged as err:
        _write(path, replace(record, status=DIVERGED, diverged=err.record()))
        raise err.recorded_in(path) from err
    except Interrupted as err:  # says where the run stopped, and never reads as finished
        rank_zero = rank_zero_only.rank == 0
        if err.signal == "SIGUSR1" and str(cfg.get("resume")) == AUTO and err.checkpoint and rank_zero:
            job = slurm_job_id()
            if job is not None:  # SLURM's warning ahead of the time limit: the job goes on as a new one
                requeue(job)
                err.requeued = job
        if rank_zero:
            try:
                _write(path, replace(record, status=INTERRUPTED, interrupted=err.record()))
            except Exception as write_error:  # the full disk that stopped the run may not take the record either
                if full_disk(write_error) is None:
                    raise
                err.record_written = False
        raise
    result = outcome.result
    record = replace(
        record,
        n_train=outcome.n_train,
        label_cost_cpu_s=outcome.label_cost,
        epochs=result.epochs,
        steps=result.steps,
        best_epoch=result.best_epoch,
        stopped=result.stopped,
        wall_s=result.wall_s,
        cpu_s=result.cpu_s,
        resumed_from=result.resumed_from,
        best_checkpoint=result.best_checkpoint,
        metrics=result.metrics,
        pretrain=outcome.pretrain,
    )
    if result.is_global_zero:
        try:
            _write(path, record)
        except Exception as err:  # trained and checkpointed, but the record does not fit: resume=auto writes it
            disk = full_disk(err)
            if disk is None:
                raise
            where = full_disk_message(disk, output_dir)
            name, stage = errno.errorcode[disk.errno], strategy.describe()["name"]
            stopped = Interrupted(name, stage, result.epochs, result.steps, result.best_checkpoint, disk=where)
            stopped.record_written = False
            raise stopped from err
        keep(cfg, record)  # paths.records_dir: the small record a study commits
        print(format_summary(record, path), flush=True)
    return record


def _write(path: Path, record: RunRecord) -> None:
    record.write(path)
    log.info("wrote %s", path)
