"""One training stage (data -> model -> Lightning fit/validate/test) in its own output dir."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.callbacks import EarlyStopping
from pytorch_lightning.utilities.exceptions import SIGTERMException

from mfff.data.stats import SourceStats
from mfff.errors import Interrupted, TrainingDiverged, UserError
from mfff.train.builders import FromCheckpoint, FromScratch
from mfff.train.callbacks import EarlyStoppingAfterDecay
from mfff.train.checkpoint_io import AtomicCheckpointIO
from mfff.train.checkpoints import check_compatible, check_resume, read_checkpoint
from mfff.train.checks import check_train_config
from mfff.train.fidelity import Fidelity, require_unique, trained
from mfff.train.loggers import HistoryCSVLogger
from mfff.train.module import MultiFidelityModule
from mfff.train.policies import Full, ParameterPolicy
from mfff.train.preemption import Preempted, SaveOnSignal
from mfff.train.quiet import quiet_lightning, resuming_quietly
from mfff.train.resume import latest_checkpoint, resume_point
from mfff.train.settings import Role, field_settings, setting, stage_settings
from mfff.train.wandb_run import describe as describe_wandb
from mfff.train.wandb_run import finish as finish_wandb
from mfff.utils.instantiate import instantiate

log = logging.getLogger(__name__)


@dataclass
class Stage:
    """What one stage trains: its fidelities (strings are trained fidelities with new heads), how the model starts
    (`builder`) and which of its parameters train (`policy`).

    Args:
        config: deltas merged over the root config for this stage, e.g. {'trainer': {'max_epochs': 50}};
        lr_scale: the stage trains at this times the learning rate its config gives (fine-tunes: 0.2).
    """

    name: str = setting(Role.INERT)
    fidelities: list[Fidelity | str] = setting(Role.WEIGHTS, plain=lambda fs: [asdict(f) for f in fs])
    builder: FromScratch | FromCheckpoint = setting(Role.WEIGHTS, plain=lambda b: b.describe(),
                                                    default_factory=FromScratch)  # fmt: skip
    policy: ParameterPolicy = setting(Role.WEIGHTS, plain=lambda p: p.config(), default_factory=Full)
    sampling: dict | None = setting(Role.WEIGHTS, default=None)
    # merged into the stage's config, whose keys are classified one by one (mfff.train.settings.CONFIG_ROLES)
    config: dict = setting(Role.INERT, default_factory=dict)
    lr_scale: float = setting(Role.WEIGHTS, default=1.0)

    def __post_init__(self):
        objects = [f if isinstance(f, Fidelity) else trained(f) for f in self.fidelities]
        self.fidelities = sorted(objects, key=lambda f: f.name)
        require_unique(self.fidelities, self.name)

    @property
    def heads(self) -> list[str]:
        return [f.name for f in self.fidelities]

    @property
    def train(self) -> list[str]:
        return [f.name for f in self.fidelities if f.trains]

    @property
    def evaluate(self) -> list[str]:
        return [f.name for f in self.fidelities if not f.trains]

    @property
    def bases(self) -> dict[str, dict]:
        """{fidelity: {fidelity: its base, labeller: the base method's config}} of Δ-learning heads."""
        return {f.name: {"fidelity": f.base, "labeller": f.base_labeller} for f in self.fidelities if f.base}

    @property
    def sources(self) -> list[str]:
        """The data sources the stage reads: its heads' and their Δ bases'."""
        return sorted({*self.heads, *(f.base for f in self.fidelities if f.base)})

    def settings(self) -> dict:
        """The fields that determine the trained weights, as plain data (each field declares its role)."""
        return field_settings(self)

    @property
    def energy_only(self) -> list[str]:
        """Trained fidelities whose force labels are not used: the one place energy-only training is decided."""
        return [f.name for f in self.fidelities if f.trains and not f.forces]


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


def stage_config(cfg: DictConfig, output_dir: Path, deltas: dict) -> DictConfig:
    """The root config with this stage's output dir (every path interpolates it) and its deltas merged in."""
    staged = cfg.copy()
    with open_dict(staged):
        staged.paths.output_dir = str(output_dir)
        for key, delta in (deltas or {}).items():
            if delta:
                staged[key] = OmegaConf.merge(staged[key], delta) if staged.get(key) is not None else delta
    return staged


def run_stage(cfg: DictConfig, stage: Stage, output_dir: Path, resume: str | None = None) -> StageResult:
    """Train one stage into `output_dir`; `resume`: None, "auto" or a run dir / .ckpt (`mfff.train.resume`)."""
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
        "loss": _loss_for(cfg, stage),
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
    start = time.perf_counter()
    data = instantiate(
        cfg.data,
        key="data",
        fidelities=stage.train,
        eval_fidelities=stage.evaluate,
        energy_only=stage.energy_only,
        sampling=stage.sampling,
        heads=stage.heads,
        bases={name: base["fidelity"] for name, base in stage.bases.items()},
        _convert_="all",
    )
    data.setup("fit")
    module = MultiFidelityModule(**module_args)
    module.bind_data(data.stage_fidelities())
    stats = data.stats()
    stage.builder.initialise(module, stage.fidelities, stats)
    quiet_lightning()
    # Lightning warns when an epoch has fewer steps than the logging interval: log at least once an epoch
    steps = math.ceil(data.composition.steps / (processes_per_node(cfg.trainer) * int(cfg.trainer.get("num_nodes", 1))))
    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        log_every_n_steps=max(1, min(int(cfg.trainer.get("log_every_n_steps") or 50), steps)),
        callbacks=instantiate_dict(cfg.get("callbacks")),
        logger=_loggers(cfg, append=bool(resume)),
        plugins=[AtomicCheckpointIO()],
    )
    describe_wandb(trainer.loggers, cfg, stage.name, {f: s.n_train for f, s in stats.items()})
    try:
        return _fit_and_evaluate(trainer, module, data, stage, output_dir, resume, stats, start)
    finally:  # one wandb run per stage: the next job of a sweep in this process must not log into it
        finish_wandb(trainer.loggers)


def _fit_and_evaluate(trainer: pl.Trainer, module, data, stage: Stage, output_dir, resume, stats, start) -> StageResult:
    """Fit (from `resume`, a checkpoint, or afresh), then validate and test the best checkpoint."""
    log.info("stage %s: training %s (heads %s) in %s", stage.name, stage.train, stage.heads, output_dir)
    try:
        with resuming_quietly(bool(resume)):
            trainer.fit(module, datamodule=data, ckpt_path=resume or None)
    except TrainingDiverged as err:
        err.stage = stage.name
        raise
    except (SIGTERMException, Preempted) as err:  # SIGTERMException is a SystemExit with code 0: must not look finished
        raise interrupted(trainer, stage, err, output_dir) from err
    # a finished stage is not resumed from the point it was once interrupted at
    if trainer.checkpoint_callback is not None:
        (Path(trainer.checkpoint_callback.dirpath) / SaveOnSignal.FILENAME).unlink(missing_ok=True)
    best = _best_checkpoint(trainer)
    # before validate/test: they restore the callbacks' states from the best checkpoint, which predate the stop
    stopped, epochs, steps = stop_reason(trainer), int(trainer.current_epoch), int(trainer.global_step)
    flat = {}
    try:
        results = [
            *trainer.validate(module, datamodule=data, ckpt_path=best, verbose=False),
            *trainer.test(module, datamodule=data, ckpt_path=best, verbose=False),
        ]
    except SIGTERMException as err:  # training is done: resuming only evaluates
        raise interrupted(trainer, stage, err, output_dir) from err
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
        wall_s=round(time.perf_counter() - start, 1),
        resumed_from=resume,
    )


def interrupted(trainer: pl.Trainer, stage: Stage, signal: BaseException, output_dir) -> Interrupted:
    """What a stopped stage reports: the checkpoint saved on the signal, else (stopped outside a training step) the
    newest one it can resume from."""
    name = signal.signal_name if isinstance(signal, Preempted) else "SIGTERM"
    saved = next((c.saved for c in trainer.callbacks if isinstance(c, SaveOnSignal)), None)
    saved = saved or latest_checkpoint(Path(output_dir) / "checkpoints")
    return Interrupted(name, stage.name, trainer.current_epoch, trainer.global_step, str(saved) if saved else None)


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


def _loss_for(cfg: DictConfig, stage: Stage) -> dict:
    """The loss settings; per-fidelity weights of sources this stage does not train are dropped (one config can
    serve a sweep over head sets), names that are no source at all are refused (typos). Energy-only fidelities get
    force weight 0."""
    loss = OmegaConf.to_container(cfg.loss, resolve=True)
    per_fidelity = loss.get("per_fidelity") or {}
    unknown = sorted(set(per_fidelity) - set(cfg.data.sources))
    if unknown:
        raise UserError(
            f"loss.per_fidelity names {unknown}, which are not in data.sources ({', '.join(sorted(cfg.data.sources))})"
        )
    loss["per_fidelity"] = {f: dict(w) for f, w in per_fidelity.items() if f in stage.heads}
    for fidelity in stage.fidelities:  # a stage's own weights win over the config's
        own = {"energy_weight": fidelity.energy_weight, "forces_weight": fidelity.forces_weight}
        own = {key: float(value) for key, value in own.items() if value is not None}
        if own:
            loss["per_fidelity"].setdefault(fidelity.name, {}).update(own)
    for name in stage.energy_only:
        loss["per_fidelity"].setdefault(name, {})["forces_weight"] = 0.0
    return loss


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
    path = getattr(callback, "best_model_path", "") if callback is not None else ""
    return path or None
