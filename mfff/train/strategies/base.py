"""What every strategy shares: the interface, its plan, and the check that its fidelities have data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from mfff.errors import UserError
from mfff.train.stage import Stage


@dataclass
class Plan:
    """What a strategy trains, for `mfff.runs.execute` to run.

    Args:
        final: the stage whose model the run reports; after a pre-training, a function of the pre-trained checkpoint
            that gives it.
        pretrain: a pre-training stage, cached under `cache_dir` by its settings, so a sweep's jobs build it once.
        source: the checkpoint `final` continues (a fine-tune), whose run's record is reported as the pre-training.
    """

    final: Stage | Callable[[Path], Stage]
    pretrain: Stage | None = None
    cache_dir: str | None = None
    source: Path | None = None


def require_sources(cfg: DictConfig, names: list[str], key: str) -> None:
    available = sorted(cfg.data.sources)
    for name in names:
        if name not in available:
            raise UserError(
                f"{key} names fidelity {name!r}, which has no source in data.sources ({', '.join(available)}); "
                "add a source for it or pick one of those"
            )


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

    def plan(self, cfg: DictConfig, output_dir: Path) -> Plan:
        """The stages to run, after checking what can be checked before any data is read."""
        raise NotImplementedError
