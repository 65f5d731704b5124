"""One LightningDataModule per data source (= one fidelity): read, split, subset, statistics."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from mfff.data.batch import Collater
from mfff.data.errors import DataError
from mfff.data.readers.base import Reader
from mfff.data.stats import average_neighbours, energy_residual_rms, fit_reference_energies, force_rms
from mfff.data.structure import Structure
from mfff.utils.seeding import stream

SPLIT_MODES = ("predefined", "random", "group")


class FidelitySource(pl.LightningDataModule):
    """Structures of one fidelity, split by seed into train / val / named test sets.

    Args:
        split: 'predefined' uses the file's split tags (train pool = `train`, each other tag is a test set, e.g.
            the built-in `test` and `test_mol`); 'random' splits conformers; 'group' holds out whole molecules.
        n_train, n_val, n_test: subset sizes (None = all that remain). Training subsets of one seed nest: the
            first n of a fixed seeded order, so n_train=100 is contained in n_train=250.
    """

    def __init__(
        self,
        fidelity: str,
        reader: Reader,
        split: str = "predefined",
        test_fraction: float = 0.1,
        val_fraction: float = 0.1,
        n_train: int | None = None,
        n_val: int | None = None,
        n_test: int | None = None,
        seed: int = 0,
        cutoff: float = 5.0,
        batch_size: int = 16,
        molecules: list[str] | None = None,
        exclude_molecules: list[str] | None = None,
        exclude_molecules_of: list[str] | None = None,
    ):
        super().__init__()
        if split not in SPLIT_MODES:
            raise DataError(f"unknown split mode {split!r} in data.sources.{fidelity}.split; choose {SPLIT_MODES}")
        self.fidelity, self.reader, self.split_mode = fidelity, reader, split
        self.test_fraction, self.val_fraction = test_fraction, val_fraction
        self.n_train, self.n_val, self.n_test = n_train, n_val, n_test
        self.seed, self.cutoff, self.batch_size = seed, cutoff, batch_size
        self.molecules = list(molecules) if molecules is not None else None
        self.exclude_molecules = set(exclude_molecules or [])
        # other sources whose molecules this one must not train on; the data module resolves them into groups
        self.exclude_molecules_of = list(exclude_molecules_of or [])
        self.train: list[Structure] = []
        self.val: list[Structure] = []
        self.tests: dict[str, list[Structure]] = {}
        self._pool: list[Structure] | None = None
        self._ready = False

    @property
    def key(self) -> str:
        return f"data.sources.{self.fidelity}"

    def read(self) -> list[Structure]:
        structures = self.reader.read()
        if not structures:
            raise DataError(f"{self.reader.describe()} gave no structures with {self.fidelity} labels ({self.key})")
        return structures

    def groups(self) -> set[str]:
        """The molecules (groups) this source has labels for, in any split."""
        self._split_pool()
        return self._groups

    def _keep(self, pool: list[Structure]) -> list[Structure]:
        """The molecule filters act on the training pool only; test sets stay whole, so errors stay comparable."""
        known = {s.group for s in pool}
        named = set(self.molecules or []) | self.exclude_molecules
        unknown = sorted(named - known)
        if unknown:
            raise DataError(
                f"{self.key}.molecules / exclude_molecules name {unknown}, which are not in the training pool of "
                f"{self.reader.describe()}; known: {', '.join(sorted(known))}"
            )
        kept = [
            s
            for s in pool
            if (self.molecules is None or s.group in self.molecules) and s.group not in self.exclude_molecules
        ]
        if not kept:
            raise DataError(f"the molecule filters of {self.key} leave no training structures; relax them")
        return kept

    def exclude_groups(self, groups: set[str]) -> None:
        """Drop these molecules from the training pool (e.g. those another fidelity has labels for)."""
        self.exclude_molecules |= groups & {s.group for s in self._split_pool()}

    def _split_pool(self) -> list[Structure]:
        """The train/val pool before filters (read and split once); sets the test sets."""
        if self._pool is None:
            structures = self.read()
            self._groups = {s.group for s in structures}
            self._pool, self.tests = self._split(structures)
        return self._pool

    def _ordered(self) -> tuple[list[Structure], int]:
        """The filtered pool in its fixed seeded order, and how many of its first entries are validation."""
        pool = self._keep(self._split_pool())
        pool = [pool[i] for i in stream(self.seed, "pool", self.fidelity).permutation(len(pool))]
        n_val = self.n_val if self.n_val is not None else max(1, int(math.ceil(self.val_fraction * len(pool))))
        return pool, n_val

    def training_pool(self) -> list[Structure]:
        """Candidates for training in their fixed order; n_train takes a prefix, so subsets of one seed nest."""
        pool, n_val = self._ordered()
        return pool[n_val:]

    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        pool, n_val = self._ordered()
        available = len(pool) - n_val
        if self.n_train is not None and self.n_train > available:
            raise DataError(
                f"{self.key}.n_train={self.n_train} but only {available} training structures remain in "
                f"{self.reader.path} after n_val={n_val}; lower n_train or n_val"
            )
        self.val = pool[:n_val]
        self.train = pool[n_val : n_val + (self.n_train if self.n_train is not None else available)]
        if self.n_test is not None:
            self.tests = {name: items[: self.n_test] for name, items in self.tests.items()}
        for name, items in {"train": self.train, "val": self.val, **self.tests}.items():
            if not items:
                raise DataError(
                    f"the {name} split of {self.key} ({self.reader.path}) is empty; check the split "
                    f"settings and sizes (split={self.split_mode}, n_{name if name in ('train', 'val') else 'test'})"
                )
        self.e0 = fit_reference_energies(self.train)
        self.energy_scale = energy_residual_rms(self.train, self.e0)
        self.avg_neighbours = average_neighbours(self.train, self.cutoff)
        self.elements = sorted({int(z) for s in self.train for z in s.numbers})
        self._ready = True

    def _split(self, structures: list[Structure]) -> tuple[list[Structure], dict[str, list[Structure]]]:
        if self.split_mode == "predefined":
            tags = sorted({s.split for s in structures})
            if tags == [""]:
                raise DataError(
                    f"{self.key}.split=predefined but {self.reader.path} has no split tags; "
                    "use split=random or split=group"
                )
            pool = [s for s in structures if s.split == "train"]
            return pool, {tag: [s for s in structures if s.split == tag] for tag in tags if tag not in ("train", "")}
        if self.split_mode == "random":
            order = stream(self.seed, "test", self.fidelity).permutation(len(structures))
            n_test = int(round(self.test_fraction * len(structures)))
            test = set(order[:n_test].tolist())
            return (
                [s for i, s in enumerate(structures) if i not in test],
                {"test": [s for i, s in enumerate(structures) if i in test]},
            )
        groups = sorted({s.group for s in structures})
        if len(groups) < 2:
            raise DataError(
                f"{self.key}.split=group needs at least two molecules (groups); {self.reader.path} has "
                f"{len(groups)}; use split=random"
            )
        order = [groups[i] for i in stream(self.seed, "groups").permutation(len(groups))]
        sizes = Counter(s.group for s in structures)
        held, count = set(), 0
        for g in order:  # the same seed holds out the same molecules in every fidelity
            if count >= self.test_fraction * len(structures) or len(held) == len(groups) - 1:
                break
            held.add(g)
            count += sizes[g]
        return [s for s in structures if s.group not in held], {"test": [s for s in structures if s.group in held]}

    @property
    def label_cost(self) -> float:
        """CPU seconds of the training labels, where the file records them (0 otherwise)."""
        return float(np.nansum([s.cost for s in self.train]))

    def stats(self, use_forces: bool = True) -> dict:
        """Training-set statistics; with use_forces=False the force labels are not touched."""
        has_forces = use_forces and any(s.forces is not None for s in self.train)
        return {
            "e0": self.e0,
            "force_rms": force_rms(self.train) if has_forces else float("nan"),
            "has_forces": has_forces,
            "energy_scale": self.energy_scale,
            "avg_neighbours": self.avg_neighbours,
            "n_train": len(self.train),
            "label_cost": self.label_cost,
            "elements": self.elements,
        }

    # Single-source use (the multi-fidelity module normally mixes sources)
    def _loader(self, items, shuffle):
        return DataLoader(
            [(s, 0) for s in items], batch_size=self.batch_size, shuffle=shuffle, collate_fn=Collater(self.cutoff)
        )

    def train_dataloader(self):
        return self._loader(self.train, True)

    def val_dataloader(self):
        return self._loader(self.val, False)
