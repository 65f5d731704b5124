"""What every strategy shares: the interface, its outcome, and the check that its fidelities have data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from mfff.errors import UserError
from mfff.records import PretrainRef
from mfff.train.stage import StageResult


@dataclass
class Outcome:
    """A strategy's result: the final stage, plus what the pre-training was (if there was one)."""

    result: StageResult
    pretrain: PretrainRef | None = None
    n_train: dict = field(default_factory=dict)  # every label used, over all stages
    label_cost: dict = field(default_factory=dict)


def require_sources(cfg: DictConfig, names: list[str], key: str) -> None:
    available = sorted(cfg.data.sources)
    for name in names:
        if name not in available:
            raise UserError(
                f"{key} names fidelity {name!r}, which has no source in data.sources ({', '.join(available)}); "
                "add a source for it or pick one of those"
            )


def outcome(result: StageResult, pretrain: PretrainRef | None = None) -> Outcome:
    n_train = {f: s.n_train for f, s in result.stats.items()}
    cost = {f: s.label_cost for f, s in result.stats.items()}
    if pretrain:  # the pre-training labels are part of what this model cost
        n_train = {**pretrain.n_train, **n_train}
        cost = {**pretrain.label_cost_cpu_s, **cost}
    return Outcome(result, pretrain, n_train, cost)


class Strategy:
    """Args:
    trainer, optimizer, scheduler: deltas over the root config groups for this strategy's stage, e.g.
        {max_epochs: 50}; used where a strategy is one stage of another (`PretrainFinetune`).
    key: where this strategy's options sit in the config (strategy, or strategy.finetune inside
        pretrain_finetune), so that messages name the full key.
    """

    name: str = "strategy"

    def __init__(
        self,
        fidelities: list[str],
        name: str | None = None,
        trainer: dict | None = None,
        optimizer: dict | None = None,
        scheduler: dict | None = None,
        key: str = "strategy",
    ):
        self.name, self.key = name or self.name, key
        self.fidelities = sorted(str(f) for f in fidelities)
        if not self.fidelities:
            raise UserError(f"{key}.fidelities is empty: strategy={self.name} has no fidelities to train on")
        self.deltas = {"trainer": trainer, "optimizer": optimizer, "scheduler": scheduler}

    def describe(self) -> dict:
        return {"name": self.name, "fidelities": self.fidelities}

    def run(self, cfg: DictConfig, output_dir: Path, resume: str | None = None) -> Outcome:
        raise NotImplementedError
