"""A stage's fidelities as objects: which data each one brings, whether it trains, and how its head starts.

The stage derives everything else from them: the data module's train and eval sets, the model's heads, which
heads enter the loss, and the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mfff.errors import UserError

ROLES = ("train", "eval")


@dataclass(frozen=True)
class HeadStart:
    """How a fidelity's head starts.

    Args:
        readout_from: a head of the stage's checkpoint whose readout (and output scale) this head starts from;
            None: a fresh readout, scaled to this fidelity's training data.
        reference_from: a head of the checkpoint whose per-element reference energies (E0) this head keeps;
            None: E0 fitted on this fidelity's training data.
        frozen: the head stays exactly as loaded from `readout_from` (it never trains).
    """

    readout_from: str | None = None
    reference_from: str | None = None
    frozen: bool = False

    def checkpoint_heads(self) -> list[str]:
        return [h for h in (self.readout_from, self.reference_from) if h is not None]


@dataclass(frozen=True)
class Fidelity:
    """One fidelity in a stage: `role` train (its labels enter the loss) or eval (validation and test only);
    `forces` False trains it on energies alone (force-loss weight 0, force labels never read in training).
    With a `base` fidelity its head learns this fidelity minus the base (Δ-learning), on the conformers both label;
    `base_labeller` (a `mfff.label.labellers` config) computes the base at inference. `energy_weight` and
    `forces_weight` are its loss weights; None takes `loss.per_fidelity.<name>`, else `loss.energy_weight` /
    `loss.forces_weight`. `n_train` trains on the first n of its training structures (its seeded order), in place
    of its source's `n_train`."""

    name: str
    role: str = "train"
    head: HeadStart = field(default_factory=HeadStart)
    forces: bool = True
    base: str | None = None
    base_labeller: dict | None = None
    energy_weight: float | None = None
    forces_weight: float | None = None
    n_train: int | None = None

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"fidelity {self.name!r}: role {self.role!r} is not one of {ROLES}")
        if self.role == "eval" and not self.head.frozen:
            raise ValueError(f"fidelity {self.name!r} is evaluated only, so its head must be loaded frozen")
        if self.head.frozen and self.head.readout_from is None:
            raise ValueError(f"fidelity {self.name!r}: a frozen head must be loaded from a checkpoint head")

    @property
    def trains(self) -> bool:
        return self.role == "train"


def trained(name: str, forces: bool = True) -> Fidelity:
    return Fidelity(str(name), forces=bool(forces))


def evaluated(name: str) -> Fidelity:
    """A pre-trained head kept exactly as it is, to evaluate its fidelity (forgetting)."""
    return Fidelity(str(name), "eval", HeadStart(readout_from=str(name), reference_from=str(name), frozen=True))


def require_unique(fidelities: list[Fidelity], stage: str) -> None:
    names = [f.name for f in fidelities]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserError(f"stage {stage} names fidelity {repeated[0]!r} twice; each fidelity has one head")
