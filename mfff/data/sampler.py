"""How training batches mix fidelities: proportional, by ratios, or a fixed count per fidelity per batch."""

from __future__ import annotations

import abc
import math
from enum import Enum

import numpy as np
from torch.utils.data import BatchSampler, Sampler
from torch.utils.data.distributed import DistributedSampler

from mfff.errors import UserError
from mfff.utils.seeding import stream
from mfff.utils.values import choice


class SamplingMode(str, Enum):
    PROPORTIONAL = "proportional"  # every structure once per epoch, shuffled together
    RATIOS = "ratios"  # each batch slot draws its fidelity with `ratios` as probabilities
    FIXED = "fixed"  # exactly `fixed[f]` structures of f in every batch


KEY = "strategy.sampling"


class EpochCounter(Sampler):
    """Placeholder inner sampler: carries the epoch Lightning sets. Under DDP, Lightning swaps in a
    DistributedSampler, from which `MixedBatchSampler` takes the rank, world size and epoch."""

    def __init__(self, data_source=None):
        self.epoch = 0
        self.size = len(data_source) if data_source is not None else 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        return iter(range(self.size))

    def __len__(self) -> int:
        return self.size


class _Mix(abc.ABC):
    """How one sampling mode fills the batches of training fidelities with these sizes."""

    mode: SamplingMode

    def __init__(self, sizes: dict[str, int], batch_size: int):
        self.names, self.sizes, self.batch_size = sorted(sizes), dict(sizes), batch_size

    @abc.abstractmethod
    def expected(self) -> dict[str, float]:
        """The expected count of each fidelity in a batch."""

    @abc.abstractmethod
    def plan(self, rng: np.random.Generator, n_batches: int) -> list[list[tuple[str, int]]]:
        """`n_batches` batches of (fidelity, index within its training set)."""


class Proportional(_Mix):
    """Every structure once per epoch, shuffled together; each pass ends with a short batch, as a DataLoader's."""

    mode = SamplingMode.PROPORTIONAL

    def expected(self) -> dict[str, float]:
        total = sum(self.sizes.values())
        return {f: self.batch_size * n / total for f, n in self.sizes.items()}

    def plan(self, rng: np.random.Generator, n_batches: int) -> list[list[tuple[str, int]]]:
        everything = [(f, i) for f in self.names for i in range(self.sizes[f])]
        batches: list[list[tuple[str, int]]] = []
        while len(batches) < n_batches:
            order = rng.permutation(len(everything))
            batches += [
                [everything[i] for i in order[start : start + self.batch_size]]
                for start in range(0, len(everything), self.batch_size)
            ]
        return batches[:n_batches]


class _SlotMix(_Mix):
    """A mode that decides every batch's count per fidelity, then fills the slots from each fidelity's own cycle."""

    @abc.abstractmethod
    def counts(self, rng: np.random.Generator) -> dict[str, int]:
        """One batch's count of each fidelity."""

    def plan(self, rng: np.random.Generator, n_batches: int) -> list[list[tuple[str, int]]]:
        draws = {f: _Cycle(self.sizes[f], rng) for f in self.names}
        batches = []
        for _ in range(n_batches):
            counts = self.counts(rng)
            batch = [(f, draws[f].next()) for f in self.names for _ in range(counts[f])]
            batches.append([batch[i] for i in rng.permutation(len(batch))])
        return batches

    def _check_names(self, given: dict, what: str, require_all: bool) -> None:
        unknown = sorted(set(given) - set(self.names))
        if unknown:
            raise UserError(f"{KEY}.{what} names {unknown}, which are not trained here; trained: {self.names}")
        missing = sorted(set(self.names) - set(given))
        if require_all and missing:
            raise UserError(f"{KEY}.{what} has no value for {missing}; give one for each of {self.names}")


class Ratios(_SlotMix):
    """Each batch slot draws its fidelity with `ratios` (normalised) as probabilities."""

    mode = SamplingMode.RATIOS

    def __init__(self, sizes: dict[str, int], batch_size: int, ratios: dict):
        super().__init__(sizes, batch_size)
        self._check_names(ratios, "ratios", require_all=True)
        values = {f: float(v) for f, v in ratios.items()}
        if any(v < 0 or not math.isfinite(v) for v in values.values()) or sum(values.values()) <= 0:
            raise UserError(f"{KEY}.ratios={values} must be non-negative with a positive sum (they are normalised)")
        self.ratios = {f: values[f] / sum(values.values()) for f in self.names}

    def expected(self) -> dict[str, float]:
        return {f: self.batch_size * p for f, p in self.ratios.items()}

    def counts(self, rng: np.random.Generator) -> dict[str, int]:
        drawn = rng.multinomial(self.batch_size, [self.ratios[f] for f in self.names])
        return dict(zip(self.names, drawn.tolist()))


class Fixed(_SlotMix):
    """Exactly `fixed[f]` structures of f in every batch; fidelities not named share the remaining slots in
    proportion to their sizes."""

    mode = SamplingMode.FIXED

    def __init__(self, sizes: dict[str, int], batch_size: int, fixed: dict):
        super().__init__(sizes, batch_size)
        self._check_names(fixed, "fixed", require_all=False)
        counts = {f: int(v) for f, v in fixed.items()}
        if any(v < 0 for v in counts.values()):
            raise UserError(f"{KEY}.fixed={counts} has a negative count")
        if sum(counts.values()) > batch_size:
            raise UserError(
                f"{KEY}.fixed={counts} puts {sum(counts.values())} structures in a batch of data.batch_size="
                f"{batch_size}; lower the counts or raise data.batch_size"
            )
        self.fixed, self.rest = counts, [f for f in self.names if f not in counts]
        self.free = batch_size - sum(counts.values())
        if self.free and not self.rest:
            raise UserError(
                f"{KEY}.fixed={counts} fills {sum(counts.values())} of data.batch_size={batch_size} slots and "
                f"names every fidelity, so nothing can fill the rest; set data.batch_size={sum(counts.values())}"
            )

    def expected(self) -> dict[str, float]:
        rest_total = sum(self.sizes[f] for f in self.rest)
        return {**self.fixed, **{f: self.free * self.sizes[f] / rest_total for f in self.rest}}

    def counts(self, rng: np.random.Generator) -> dict[str, int]:
        counts = dict(self.fixed)
        if self.rest:
            weights = np.array([self.sizes[f] for f in self.rest], dtype=float)
            counts.update(zip(self.rest, rng.multinomial(self.free, weights / weights.sum()).tolist()))
        return counts


class Composition:
    """The checked sampling settings (`strategy.sampling`) for a set of training fidelities and their sizes.

    Args:
        mode: 'proportional', 'ratios' or 'fixed' (`SamplingMode`); `ratios` and `fixed` belong to their mode
            (`Ratios`, `Fixed`) and are refused with another.
        epoch_steps / epoch_fidelity: the epoch length, as a number of steps or as one pass over the named
            fidelity's training set (at its expected count per batch). Default: all training structures once.
    """

    def __init__(
        self,
        sizes: dict[str, int],
        batch_size: int,
        mode: str = "proportional",
        ratios: dict | None = None,
        fixed: dict | None = None,
        epoch_steps: int | None = None,
        epoch_fidelity: str | None = None,
    ):
        mode = choice(mode, SamplingMode, f"{KEY}.mode")
        for owner, value in ((SamplingMode.RATIOS, ratios), (SamplingMode.FIXED, fixed)):
            if value and mode is not owner:  # a setting the mode would ignore is a mistake, not a default
                raise UserError(f"{KEY}.{owner.value} is set but {KEY}.mode={mode.value}; set {KEY}.mode="
                                f"{owner.value} or drop it")  # fmt: skip
        self.sizes, self.batch_size, self.names = dict(sizes), int(batch_size), sorted(sizes)
        if mode is SamplingMode.RATIOS:
            self.mix: _Mix = Ratios(self.sizes, self.batch_size, dict(ratios or {}))
        elif mode is SamplingMode.FIXED:
            self.mix = Fixed(self.sizes, self.batch_size, dict(fixed or {}))
        else:
            self.mix = Proportional(self.sizes, self.batch_size)
        self.expected = self.mix.expected()
        if epoch_steps is not None and epoch_fidelity is not None:
            raise UserError(f"set only one of {KEY}.epoch_steps and {KEY}.epoch_fidelity")
        if epoch_steps is not None and int(epoch_steps) < 1:
            raise UserError(f"{KEY}.epoch_steps must be at least 1, got {epoch_steps}")
        if epoch_fidelity is not None:
            if epoch_fidelity not in self.sizes:
                raise UserError(f"{KEY}.epoch_fidelity={epoch_fidelity!r} is not trained here ({self.names})")
            per_batch = self.expected[epoch_fidelity]
            if per_batch <= 0:
                raise UserError(f"{KEY}.epoch_fidelity={epoch_fidelity!r} never appears in a batch (ratio 0)")
            epoch_steps = math.ceil(self.sizes[epoch_fidelity] / per_batch)
        self.steps = int(epoch_steps) if epoch_steps is not None else math.ceil(sum(self.sizes.values()) / batch_size)

    @property
    def mode(self) -> SamplingMode:
        return self.mix.mode

    def plan(self, rng: np.random.Generator, n_batches: int) -> list[list[tuple[str, int]]]:
        """`n_batches` batches of (fidelity, index within its training set)."""
        return self.mix.plan(rng, n_batches)


class _Cycle:
    """Draws indices without replacement, reshuffling when a pass is used up."""

    def __init__(self, size: int, rng: np.random.Generator):
        self.size, self.rng, self.order, self.at = size, rng, [], 0

    def next(self) -> int:
        if self.at >= len(self.order):
            self.order, self.at = self.rng.permutation(self.size).tolist(), 0
        self.at += 1
        return self.order[self.at - 1]


class MixedBatchSampler(BatchSampler):
    """Yields batches of dataset indices following a `Composition`, reseeded every epoch.

    Under DDP every rank builds the same global plan and takes every world_size-th batch, so all ranks run the
    same number of steps. `sampler` only carries rank and epoch (Lightning re-creates this class with its
    DistributedSampler, so the argument must be called `sampler`).
    """

    def __init__(self, sampler, composition: Composition, offsets: dict[str, int], seed: int = 0):
        self.sampler, self.composition, self.offsets, self.seed = sampler, composition, dict(offsets), int(seed)
        self.batch_size, self.drop_last = composition.batch_size, False
        self._resume: tuple[int, int] | None = None

    def resume_at(self, epoch: int, batches: int) -> None:
        """The next pass over `epoch` starts after its first `batches` batches (a run resumed mid-epoch goes on where it
        stopped); any other epoch, and every later pass, is whole."""
        self._resume = (int(epoch), int(batches))

    def _rank_world_epoch(self) -> tuple[int, int, int]:
        if isinstance(self.sampler, DistributedSampler):
            return self.sampler.rank, self.sampler.num_replicas, self.sampler.epoch
        return 0, 1, getattr(self.sampler, "epoch", 0)

    def __len__(self) -> int:
        _, world, _ = self._rank_world_epoch()
        return math.ceil(self.composition.steps / world)

    def __iter__(self):
        rank, world, epoch = self._rank_world_epoch()
        resume, self._resume = self._resume, None
        skip = resume[1] if resume is not None and resume[0] == epoch else 0
        plan = self.composition.plan(stream(self.seed, "batches", epoch), len(self) * world)
        for batch in plan[rank::world][skip:]:
            yield [self.offsets[f] + i for f, i in batch]
