"""The multi-fidelity data module: mixes the per-fidelity sources into graph batches."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytorch_lightning as pl
import torch
from ase.data import chemical_symbols
from torch.utils.data import DataLoader, Dataset

from mfff.data.batch import Collater
from mfff.data.budget import LabelBudget
from mfff.data.loader import ResumableLoader
from mfff.data.sampler import Composition, EpochCounter, MixedBatchSampler
from mfff.data.sources import FidelitySource, check_size
from mfff.data.stats import SourceStats
from mfff.errors import UserError
from mfff.utils.values import options_for, whole_number

log = logging.getLogger(__name__)


class MultiFidelityDataModule(pl.LightningDataModule):
    """Combines the sources named in `fidelities`; each structure carries its fidelity's index in `heads` (the
    model's sorted head names; default: the loaded fidelities).

    Training batches follow `sampling` (a `Composition`: proportional, ratios or fixed; see mfff.data.sampler).
    Validation merges the val sets of all loaded fidelities; each test-set name (e.g. `test`, `test_mol`) is one
    loader. `eval_fidelities` are loaded for validation and test only (e.g. the pre-training fidelity, to measure
    forgetting during fine-tuning). `fidelity` is the dataset's target (expensive) fidelity, `data.fidelity`: the
    strategies read it from the config (`${data.fidelity}`); this module loads what the stage names.
    `budget` (a `LabelBudget` config) sets two sources' training sizes from one labelling budget; `n_train`
    ({fidelity: size}) sets a stage's own sizes, over the sources' (the budget's apply after them).
    """

    def __init__(
        self,
        sources: dict[str, FidelitySource],
        fidelities: list[str],
        eval_fidelities: list[str] | None = None,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        cutoff: float = 5.0,
        neighbours: str = "auto",
        energy_only: list[str] | None = None,
        num_workers: int = 0,
        seed: int = 0,
        fidelity: str | None = None,
        dtype: str = "float32",
        sampling: dict | None = None,
        budget: dict | None = None,
        heads: list[str] | None = None,
        bases: dict[str, str] | None = None,
        n_train: dict[str, int] | None = None,
    ):
        super().__init__()
        batch_size = whole_number(batch_size, "data.batch_size", 1)
        eval_batch_size = whole_number(eval_batch_size, "data.eval_batch_size", 1, allow_none=True)
        num_workers = whole_number(num_workers, "data.num_workers", 0)
        for name, source in sources.items():
            if not isinstance(source, FidelitySource):  # e.g. debug=quick's sizes for a source this data lacks
                held = f"only {', '.join(sorted(source))}" if isinstance(source, dict) else repr(source)
                raise UserError(
                    f"data.sources.{name} is not a data source (no _target_; it holds {held}): an override or "
                    "debug=quick named a source your data config does not define; define it or drop the key"
                )
            if source.fidelity != name:  # the head is named by the source; it must learn that fidelity's labels
                raise UserError(
                    f"data.sources.{name}.fidelity={source.fidelity!r} differs from the source's name {name!r}: the "
                    f"head {name!r} would learn {source.fidelity} labels and be reported as {name}; set "
                    f"data.sources.{name}.fidelity={name} (and the source's label keys), or name the source "
                    f"{source.fidelity}"
                )
        self.train_fidelities = sorted(fidelities)
        if not self.train_fidelities:
            raise UserError("no fidelities selected (strategy.fidelities is empty)")
        self.fidelities = sorted(set(self.train_fidelities) | set(eval_fidelities or []))
        missing = [f for f in self.fidelities if f not in sources]
        if missing:
            raise UserError(
                f"fidelity {missing[0]!r} (strategy) has no source in data.sources; "
                f"available: {', '.join(sorted(sources))}"
            )
        self.heads = sorted(heads) if heads is not None else self.fidelities
        headless = [f for f in self.fidelities if f not in self.heads]
        if headless:
            raise UserError(
                f"fidelity {headless[0]!r} in the data has no head in this model (heads: {', '.join(self.heads)})"
            )
        self.all_sources = dict(sources)
        self.bases = dict(bases or {})  # {fidelity: base}: Δ-learning, labels are fidelity minus base
        for fidelity, base in self.bases.items():
            if base not in self.all_sources or base == fidelity:
                raise UserError(
                    f"the base fidelity {base!r} of {fidelity} (strategy.base) has no source in data.sources "
                    f"({', '.join(sorted(set(self.all_sources) - {fidelity}))}); add one or name another"
                )
        self.sources = {f: sources[f] for f in self.fidelities}
        for name, size in (n_train or {}).items():  # a stage's own size for a fidelity (e.g. replayed structures)
            self.sources[name].n_train = check_size(size, f"the stage's n_train of {name}")
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.seed = num_workers, seed
        self.sampling = dict(sampling or {})
        self.budget = dict(budget or {})  # checked in setup, so its errors reach the user unwrapped
        self.energy_only = sorted(energy_only or [])  # trained on energies alone: force labels never read
        unknown = [f for f in self.energy_only if f not in self.train_fidelities]
        if unknown:
            raise UserError(
                f"energy-only fidelity {unknown[0]!r} is not trained here ({', '.join(self.train_fidelities)})"
            )
        energy_only_heads = [self.heads.index(f) for f in self.energy_only]
        # the structures of a dataset never move: their neighbour lists are computed once, in the first epoch
        # (not for streamed sources, whose structures are read anew for every batch and must not fill memory)
        cache = not any(s.reader.lazy for s in self.sources.values())
        self.train_collate = Collater(cutoff, neighbours, energy_only=energy_only_heads, dtype=dtype, cache=cache)
        self.eval_collate = Collater(cutoff, neighbours, dtype=dtype, cache=cache)
        self._ready = False

    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        for name, source in self.sources.items():
            for other in source.exclude_molecules_of:
                if other not in self.all_sources or other == name:
                    raise UserError(
                        f"{source.key}.exclude_molecules_of names {other!r}; name other sources of data.sources "
                        f"({', '.join(sorted(set(self.all_sources) - {name}))})"
                    )
                source.exclude_groups(self.all_sources[other].groups())
        for fidelity, base in self.bases.items():
            self.sources[fidelity].subtract(self.all_sources[base])
        if self.budget:
            LabelBudget(**options_for(LabelBudget, self.budget, "data.budget")).apply(self.all_sources)
        for source in self.sources.values():
            source.setup(stage)
        if stage != "test":  # the batch mix of training; an evaluation may have test files alone
            self.composition = Composition(
                {f: len(self.sources[f].train) for f in self.train_fidelities}, self.batch_size, **self.sampling
            )
        self._ready = True

    def leave_out_unpredictable(self, elements: list[int]) -> None:
        """Test structures with an element the model never trained on cannot be predicted at all (its embedding is
        untrained): they are left out of the test sets, with a warning naming how many and which elements."""
        known = set(elements)
        for source in self.sources.values():
            kept = {}
            for name, items in source.tests.items():
                inside = [s for s in items if known.issuperset(np.unique(s.numbers).tolist())]
                if len(inside) < len(items):
                    missing = sorted({int(z) for s in items for z in s.numbers} - known)
                    log.warning(
                        "%s: %d of %d structures of test set %r contain %s, which the model never trained on; "
                        "it cannot predict them, so they are left out",
                        source.key, len(items) - len(inside), len(items), name,
                        ", ".join(chemical_symbols[z] for z in missing),
                    )  # fmt: skip
                if inside:
                    kept[name] = inside
            source.tests = kept

    @property
    def test_names(self) -> list[str]:
        """Every test-set name of the loaded sources (e.g. `test`, `test_mol`), sorted: one test loader each."""
        return sorted({name for s in self.sources.values() for name in s.tests})

    def stage_fidelities(self) -> dict[str, list[str]]:
        """Which fidelities have data in each stage: {'train': ..., 'val': ..., <test set name>: ...}."""
        tests = {name: [f for f in self.fidelities if name in self.sources[f].tests] for name in self.test_names}
        return {"train": self.train_fidelities, "val": self.fidelities, **tests}

    def _items(self, pick, fidelities=None) -> LoadedItems:
        return LoadedItems([
            (s, self.heads.index(f))
            for f in self.fidelities
            if fidelities is None or f in fidelities
            for s in pick(self.sources[f])
        ])  # fmt: skip

    def train_dataloader(self):
        items = self._items(lambda s: s.train, self.train_fidelities)
        offsets, start = {}, 0
        for f in self.train_fidelities:  # _items lists the training sets in this (sorted) order
            offsets[f], start = start, start + len(self.sources[f].train)
        sampler = MixedBatchSampler(EpochCounter(items), self.composition, offsets, self.seed)
        return ResumableLoader(
            items,
            batch_sampler=sampler,
            collate_fn=self.train_collate,
            progress=self._training_progress,
            **self._loader_options(),
        )

    def steps_per_epoch(self, world_size: int = 1) -> int:
        """Training batches per epoch on each of `world_size` ranks (what `MixedBatchSampler` yields)."""
        return math.ceil(self.composition.steps / world_size)

    def _training_progress(self) -> tuple[int, int]:
        """(epoch, batches of it trained) from the trainer: what a checkpoint must record to resume mid-epoch.
        `processed` counts a batch whose end-of-batch hooks are running (a checkpoint saved there) as trained."""
        trainer = self.trainer
        if trainer is None:
            return 0, 0
        return trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.processed

    def _loader_options(self) -> dict:
        # persistent workers keep their neighbour-list caches and are not restarted every epoch (eval loaders too);
        # pinned memory makes the copy to a GPU asynchronous
        return {"num_workers": self.num_workers, "persistent_workers": self.num_workers > 0,
                "pin_memory": torch.cuda.is_available()}  # fmt: skip

    def val_dataloader(self):
        return DataLoader(
            self._items(lambda s: s.val),
            batch_size=self.eval_batch_size,
            collate_fn=self.eval_collate,
            **self._loader_options(),
        )

    def test_dataloader(self):
        return [
            DataLoader(
                self._items(lambda s, n=name: s.tests.get(n, [])),
                batch_size=self.eval_batch_size,
                collate_fn=self.eval_collate,
                **self._loader_options(),
            )
            for name in self.test_names
        ]

    def stats(self) -> dict[str, SourceStats]:
        """Training-set statistics of the trained fidelities (force statistics only when forces are used)."""
        return {f: self.sources[f].stats(use_forces=f not in self.energy_only) for f in self.train_fidelities}


class LoadedItems(Dataset):
    """(structure, head index) pairs; a structure streamed from disk is read when its batch is built."""

    def __init__(self, items: list):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        structure, head = self.items[index]
        return structure.load(), head
