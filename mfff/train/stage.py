"""A training stage: what it trains (fidelities, builder, parameter policy, sampling) and the config it trains
with. `mfff.runs.fit` runs one."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from mfff.errors import UserError
from mfff.train.builders import FromCheckpoint, FromScratch
from mfff.train.fidelity import Fidelity, require_unique, trained
from mfff.train.policies import Full, ParameterPolicy
from mfff.train.settings import Role, field_settings, setting


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


def stage_config(cfg: DictConfig, output_dir: Path, deltas: dict) -> DictConfig:
    """The root config with this stage's output dir (every path interpolates it) and its deltas merged in."""
    staged = cfg.copy()
    with open_dict(staged):
        staged.paths.output_dir = str(output_dir)
        for key, delta in (deltas or {}).items():
            if delta:
                staged[key] = OmegaConf.merge(staged[key], delta) if staged.get(key) is not None else delta
    return staged


def stage_loss(cfg: DictConfig, stage: Stage) -> dict:
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
