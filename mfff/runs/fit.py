"""Run one stage: data -> model -> Lightning fit / validate / test, in its own output dir."""

from __future__ import annotations

import errno
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.callbacks import EarlyStopping
from pytorch_lightning.utilities.exceptions import SIGTERMException

from mfff.data.stats import SourceStats
from mfff.errors import Interrupted, TrainingDiverged
from mfff.runs.checkpoint_io import AtomicCheckpointIO
from mfff.runs.loggers import HistoryCSVLogger
from mfff.runs.preemption import Preempted, SaveOnSignal
from mfff.runs.progress import EpochLine, show_bar
from mfff.runs.quiet import quiet_lightning, restoring_quietly, resuming_quietly
from mfff.runs.resume import latest_checkpoint, resume_point
from mfff.runs.wandb_run import describe as describe_wandb
from mfff.runs.wandb_run import finish as finish_wandb
from mfff.train.callbacks import EarlyStoppingAfterDecay
from mfff.train.checkpoints import check_compatible, check_resume, read_checkpoint
from mfff.train.checks import check_train_config
from mfff.train.module import MultiFidelityModule
from mfff.train.settings import stage_settings
from mfff.train.stage import Stage, stage_config, stage_loss
from mfff.utils.errors import full_disk, full_disk_message
from mfff.utils.instantiate import instantiate

log = logging.getLogger(__name__)


@dataclass
class StageResult:
    metrics: dict  # nested: {'val': {'dft': {'forces_mae': ...}}, 'test': ...}
    stats: dict[str, SourceStats]  # per trained fidelity
    best_checkpoint: str | None
    epochs: int
    steps: int
    is_global_zero: bool = True
    best_epoch: int | None = None  # the epoch the best checkpoint was saved at (0-based)
    stopped: str = ""  # why training ended
    wall_s: float | None = None  # seconds from building the data to the last test metric
    cpu_s: float | None = None  # this process's CPU seconds (all its threads) over the same span
    resumed_from: str | None = None  # the checkpoint this stage continued (resume)


def instantiate_dict(node) -> list:
    """Dict-keyed callbacks / loggers; a key set to null is switched off."""
    return [instantiate(value) for value in (node or {}).values() if value is not None]


def nest_metrics(flat: dict) -> dict:
    """{'val/dft/forces_mae': x} -> {'val': {'dft': {'forces_mae': x}}}; stage-level values under '_all'."""
    nested: dict = {}
    for key, value in flat.items():
        parts = key.split("/")
        if len(parts) == 3:
            nested.setdefault(parts[0], {}).setdefault(parts[1], {})[parts[2]] = value
        elif len(parts) == 2:
            nested.setdefault(parts[0], {}).setdefault("_all", {})[parts[1]] = value
    return nested


def run_stage(
    cfg: DictConfig, stage: Stage, output_dir: Path, resume: str | None = None, last: bool = True
) -> StageResult:
    """Train one stage into `output_dir`; `resume`: None, "auto" or a run dir / .ckpt (`mfff.runs.resume`); `last`:
    the run's final stage, whose checkpoint a user can name with resume=<checkpoint> (an earlier stage's is found by
    resume=auto only)."""
    cfg = stage_config(cfg, output_dir, stage.config)
    resume = resume_point(resume, Path(output_dir))
    check_train_config(cfg)
    settings = stage_settings(cfg, stage)  # before lr_scale: the stage's own field says it
    if stage.lr_scale != 1.0:
        with open_dict(cfg):
            cfg.optimizer.lr = float(cfg.optimizer.lr) * stage.lr_scale
        log.info("stage %s trains at lr_scale %g x its learning rate: %g", stage.name, stage.lr_scale, cfg.optimizer.lr)
    pl.seed_everything(int(cfg.seed), workers=True)
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    module_args = {
        "model": model_cfg,
        "fidelities": stage.heads,
        "loss": stage_loss(cfg, stage),
        "optimizer": cfg.optimizer,
        "scheduler": cfg.get("scheduler"),
        "monitor": cfg.monitor,
        "trained": stage.train,
        "policy": stage.policy.config(),
        "bases": stage.bases,
        "settings": settings,
    }
    if resume:  # refuse an incompatible checkpoint or changed settings before spending time on the data
        saved = read_checkpoint(resume)
        check_compatible(saved, model_cfg, stage.heads, resume)
        check_resume(saved, settings, resume)
    stage.builder.check(model_cfg, stage.fidelities)
    clock = (time.perf_counter(), time.process_time())  # wall and CPU seconds from here to the last test metric
    data = instantiate(
        cfg.data,
        key="data",
        fidelities=stage.train,
        eval_fidelities=stage.evaluate,
        energy_only=stage.energy_only,
        sampling=stage.sampling,
        heads=stage.heads,
        n_train={f.name: f.n_train for f in stage.fidelities if f.n_train is not None},
        bases={name: base["fidelity"] for name, base in stage.bases.items()},
        _convert_="all",
    )
    data.setup("fit")
    module = MultiFidelityModule(**module_args)
    module.stage_name = stage.name  # what a TrainingDiverged it raises names
    stats = data.stats()
    stage.builder.initialise(module, stage.fidelities, stats)
    data.leave_out_unpredictable(module.potential.elements)
    module.bind_data(data.stage_fidelities())
    quiet_lightning()
    # Lightning warns when an epoch has fewer steps than the logging interval: log at least once an epoch
    steps = math.ceil(data.composition.steps / (processes_per_node(cfg.trainer) * int(cfg.trainer.get("num_nodes", 1))))
    bar = show_bar(cfg.trainer.get("enable_progress_bar", True))
    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        log_every_n_steps=max(1, min(int(cfg.trainer.get("log_every_n_steps") or 50), steps)),
        enable_progress_bar=bar,
        callbacks=[*instantiate_dict(cfg.get("callbacks")), *([] if bar else [EpochLine()])],
        logger=_loggers(cfg, append=bool(resume)),
        plugins=[AtomicCheckpointIO()],
    )
    describe_wandb(trainer.loggers, cfg, stage.name, {f: s.n_train for f, s in stats.items()})
    try:
        return _fit_and_evaluate(trainer, module, data, stage, output_dir, resume, stats, clock, last)
    finally:  # one wandb run per stage: the next job of a sweep in this process must not log into it
        finish_wandb(trainer.loggers)


def _fit_and_evaluate(trainer: pl.Trainer, module, data, stage: Stage, output_dir, resume, stats, clock, last):
    """Fit (from `resume`, a checkpoint, or afresh), then validate and test the best checkpoint."""
    log.info("stage %s: training %s (heads %s) in %s", stage.name, stage.train, stage.heads, output_dir)
    try:
        with resuming_quietly(bool(resume)):
            trainer.fit(module, datamodule=data, ckpt_path=resume or None)
    except (SIGTERMException, Preempted) as err:  # SIGTERMException is a SystemExit with code 0: must not look finished
        raise interrupted(trainer, stage, err, output_dir, last) from err
    except Exception as err:  # a full disk (torch.save says so as a RuntimeError around the OSError): the
        if full_disk(err) is None:  # checkpoints written so far are whole (atomic), so the run can go on
            raise
        raise interrupted(trainer, stage, err, output_dir, last) from err
    # a finished stage is not resumed from the point it was once interrupted at
    if trainer.checkpoint_callback is not None:
        (Path(trainer.checkpoint_callback.dirpath) / SaveOnSignal.FILENAME).unlink(missing_ok=True)
    best = _best_checkpoint(trainer)
    # before validate/test: they restore the callbacks' states from the best checkpoint, which predate the stop
    stopped, epochs, steps = stop_reason(trainer), int(trainer.current_epoch), int(trainer.global_step)
    flat = {}
    try:
        log.info("stage %s: evaluating the best checkpoint %s", stage.name, best)
        with restoring_quietly():  # Lightning says so twice more (validate, test)
            results = [
                *trainer.validate(module, datamodule=data, ckpt_path=best, verbose=False),
                *trainer.test(module, datamodule=data, ckpt_path=best, verbose=False),
            ]
    except SIGTERMException as err:  # training is done: resuming only evaluates
        raise interrupted(trainer, stage, err, output_dir, last) from err
    for result in results:
        flat.update({k: float(v) for k, v in result.items()})
    nonfinite = sorted(k for k, v in flat.items() if not math.isfinite(v))
    if nonfinite:
        what = f"the final metric{'s' if len(nonfinite) > 1 else ''} {', '.join(nonfinite)}"
        raise TrainingDiverged(trainer.current_epoch, trainer.global_step, what, stage.name)
    return StageResult(
        nest_metrics(flat),
        stats,
        best,
        epochs,
        steps,
        trainer.is_global_zero,
        best_epoch=int(read_checkpoint(best)["epoch"]) if best else None,
        stopped=stopped,
        wall_s=round(time.perf_counter() - clock[0], 1),
        cpu_s=round(time.process_time() - clock[1], 1),
        resumed_from=resume,
    )


def interrupted(trainer: pl.Trainer, stage: Stage, signal: BaseException, output_dir, last: bool) -> Interrupted:
    """What a stopped stage reports: the checkpoint saved on the signal, else (stopped outside a training step) the
    newest one it can resume from."""
    disk = full_disk(signal)
    if disk is not None:
        name = errno.errorcode[disk.errno]
    else:
        name = signal.signal_name if isinstance(signal, Preempted) else "SIGTERM"
    saved = next((c.saved for c in trainer.callbacks if isinstance(c, SaveOnSignal)), None)
    saved = saved or latest_checkpoint(Path(output_dir) / "checkpoints")
    checkpoint = str(saved) if saved else None
    where = full_disk_message(disk, output_dir) if disk is not None else None
    return Interrupted(name, stage.name, trainer.current_epoch, trainer.global_step, checkpoint, by_path=last,
                       disk=where)  # fmt: skip


def processes_per_node(trainer_cfg) -> int:
    """Processes Lightning starts on this machine (DDP ranks), which share its CPUs."""
    devices = trainer_cfg.get("devices", 1)
    if isinstance(devices, int) and devices > 0:
        return devices
    if not isinstance(devices, (int, str)) and devices is not None:
        return max(1, len(devices))
    return 1


def _loggers(cfg: DictConfig, append: bool) -> list | bool:
    """The configured loggers; a resumed run's CSV history is continued, not replaced."""
    loggers = instantiate_dict(cfg.get("logger"))
    for logger in loggers:
        if isinstance(logger, HistoryCSVLogger):
            logger.append = append
    return loggers or False


def stop_reason(trainer: pl.Trainer) -> str:
    """Why `fit` ended: early stopping (and on what), or the run's length."""
    for callback in trainer.callbacks:
        if isinstance(callback, EarlyStopping) and callback.stopped_epoch > 0:
            after_decay = (
                f" once the learning rate had decayed to {callback.lr_fraction:g}x its peak"
                if isinstance(callback, EarlyStoppingAfterDecay)
                else ""
            )
            return (
                f"early stopping at epoch {callback.stopped_epoch}: {callback.monitor} did not improve for "
                f"{callback.patience} epochs{after_decay}"
            )
    if trainer.max_steps != -1 and trainer.global_step >= trainer.max_steps:
        return f"max_steps={trainer.max_steps} reached"
    return f"max_epochs={trainer.max_epochs} reached"


def _best_checkpoint(trainer: pl.Trainer) -> str | None:
    callback = trainer.checkpoint_callback
    path = callback.best_model_path if callback is not None else ""
    return path or None
