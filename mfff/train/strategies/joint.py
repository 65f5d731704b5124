"""Strategies of one stage from random weights (or a warm start): scratch, pretrain, multihead."""

from __future__ import annotations

from mfff.errors import UserError
from mfff.train.builders import FromCheckpoint, FromScratch
from mfff.train.fidelity import Fidelity, HeadStart
from mfff.train.stage import Stage
from mfff.train.strategies.base import Plan, Strategy, require_sources


class Joint(Strategy):
    """Train heads for `fidelities` from random weights, all at once, in one stage.

    Args:
        use_forces: False trains on energies only: zero force-loss weight, force labels never read.
        sampling: how batches mix the fidelities (mfff.data.sampler.Composition), e.g. {mode: fixed, fixed: {dft: 4}}.
    """

    name = "joint"
    fidelities_key = "fidelities"

    def __init__(
        self,
        fidelities: list[str],
        use_forces: bool = True,
        sampling: dict | None = None,
        builder: FromScratch | FromCheckpoint | None = None,
        **common,
    ):
        super().__init__(fidelities, **common)
        self.use_forces, self.sampling = bool(use_forces), dict(sampling or {})
        self.builder = builder if builder is not None else FromScratch()

    def describe(self) -> dict:
        return {**super().describe(), "use_forces": self.use_forces, "sampling": self.sampling,
                "builder": self.builder.describe()}  # fmt: skip

    def stage(self) -> Stage:
        # from a checkpoint (a warm start), a head whose fidelity the checkpoint has starts from it, E0 re-fitted
        loaded = self.builder.heads if isinstance(self.builder, FromCheckpoint) else []
        fidelities = [
            Fidelity(f, forces=self.use_forces, head=HeadStart(readout_from=f if f in loaded else None))
            for f in self.fidelities
        ]
        return Stage(self.name, fidelities, self.builder, sampling=self.sampling, config=self.deltas)

    def plan(self, cfg, output_dir):
        require_sources(cfg, self.fidelities, f"{self.key}.{self.fidelities_key}")
        return Plan(self.stage())


class Scratch(Joint):
    """One fidelity, one head, trained from random weights (the expensive-data-only baseline)."""

    name = "scratch"
    fidelities_key = "fidelity"

    def __init__(self, fidelity: str, use_forces: bool = True, **common):
        super().__init__([fidelity], use_forces, **common)


class Pretrain(Joint):
    """Train on one or more (cheap) fidelities; the checkpoint is what `strategy=finetune` starts from."""

    name = "pretrain"


class MultiHead(Joint):
    """One shared backbone and one head per fidelity, trained on all of them at once."""

    name = "multihead"

    def __init__(self, fidelities: list[str], use_forces: bool = True, sampling=None, **common):
        super().__init__(fidelities, use_forces, sampling, **common)
        if len(self.fidelities) < 2:
            raise UserError(
                f"strategy=multihead needs at least two fidelities, got {self.fidelities} "
                "(fidelities / strategy.fidelities); use strategy=scratch for one"
            )
