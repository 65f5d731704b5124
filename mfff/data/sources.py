"""One LightningDataModule per data source (= one fidelity): read, split, subset, statistics."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from enum import Enum
from pathlib import Path

import numpy as np
import pytorch_lightning as pl

from mfff.data.readers.base import Reader, existing_file
from mfff.data.reference import energies_apart, fit_reference
from mfff.data.stats import SourceStats, average_neighbours, energy_residual_rms, force_rms
from mfff.data.structure import Structure
from mfff.errors import UserError
from mfff.utils.seeding import stream
from mfff.utils.values import choice

log = logging.getLogger(__name__)


class SplitMode(str, Enum):
    """How test sets are carved from one file."""

    PREDEFINED = "predefined"  # the file's split tags
    RANDOM = "random"  # conformers at random
    GROUP = "group"  # whole molecules held out


DEFAULT_VAL_FRACTION = 0.1  # n_val=null without a val file or `val` tags: this fraction of the training pool


def check_size(value, key: str) -> int | float | None:
    """A subset size: None (all), a count >= 1, or a fraction 0 < x < 1 of what is there."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{key}={value!r} must be a count (>= 1), a fraction between 0 and 1, or null for all")
    if 0 < value < 1:
        return float(value)
    if value < 1 or value != int(value):
        raise UserError(f"{key}={value!r} must be a positive count (>= 1) or a fraction between 0 and 1")
    return int(value)


def resolve_size(size: int | float | None, available: int) -> int:
    """How many of `available` a checked size takes (a fraction rounds up, so it never takes none)."""
    if size is None:
        return available
    if isinstance(size, float):
        return max(1, math.ceil(size * available))
    return size


class FidelitySource(pl.LightningDataModule):
    """Structures of one fidelity, split by seed into train / val / named test sets.

    The data comes from `reader.path` (one file), or from separate `train`, `val` and `test` files read with the
    same reader settings (label keys, units). `test` may map names to files, e.g. {test: a.xyz, test_ood: b.xyz}.

    Args:
        split: how test sets are carved when no `test` file is given: 'predefined' uses the file's split tags
            (train pool = `train`, `val` = validation, each other tag a test set, e.g. the built-in `test` and
            `test_mol`); 'random' splits conformers; 'group' holds out whole molecules.
        n_train, n_val, n_test: subset sizes, each a count, a fraction (0 < x < 1) or None. n_train: None = the
            whole training pool; n_val: None = the whole val file, else 10% of the training pool; n_test: at most
            this many of each test set, None = all. Training subsets of one seed nest: the first n of a fixed
            seeded order, so n_train=100 is contained in n_train=250.
    """

    def __init__(
        self,
        fidelity: str,
        reader: Reader,
        split: str = "predefined",
        test_fraction: float = 0.1,
        n_train: int | float | None = None,
        n_val: int | float | None = None,
        n_test: int | float | None = None,
        seed: int = 0,
        cutoff: float = 5.0,
        molecules: list[str] | None = None,
        exclude_molecules: list[str] | None = None,
        exclude_molecules_of: list[str] | None = None,
        train: str | None = None,
        val: str | None = None,
        test: str | dict[str, str] | None = None,
    ):
        super().__init__()
        self.fidelity, self.reader = fidelity, reader
        self.split_mode = choice(split, SplitMode, f"{self.key}.split")
        if not 0 <= test_fraction < 1:
            raise UserError(f"{self.key}.test_fraction={test_fraction} must be in [0, 1)")
        self.test_fraction = test_fraction
        self.n_train, self.n_val, self.n_test = (
            check_size(n_train, f"{self.key}.n_train"),
            check_size(n_val, f"{self.key}.n_val"),
            check_size(n_test, f"{self.key}.n_test"),
        )
        self.files = self._check_files(train, val, test)
        self.seed, self.cutoff = seed, cutoff
        self.molecules = list(molecules) if molecules is not None else None
        self.exclude_molecules = set(exclude_molecules or [])
        # other sources whose molecules this one must not train on; the data module resolves them into groups
        self.exclude_molecules_of = list(exclude_molecules_of or [])
        self.train: list[Structure] = []
        self.val: list[Structure] = []
        self.tests: dict[str, list[Structure]] = {}
        self._pool: list[Structure] | None = None
        self._structures: list[Structure] = []  # every structure read, in any split
        self._val_set: list[Structure] | None = None  # from a val file or `val` tags; else carved from the pool
        self._base: FidelitySource | None = None  # labels are ours minus this source's (Δ-learning)
        self._ready = False

    @property
    def key(self) -> str:
        return f"data.sources.{self.fidelity}"

    def _check_files(self, train, val, test) -> dict:
        """{'train': path, 'val': path, 'test': {name: path}} of the given files; {} when the reader has the data."""
        if train is None and val is None and test is None:
            if self.reader.path is None:
                raise UserError(
                    f"{self.key} has no data: set {self.key}.reader.path (one file) or "
                    f"{self.key}.train (and .test, optionally .val) files"
                )
            return {}
        if self.reader.path is not None:
            raise UserError(
                f"{self.key} names both reader.path ({self.reader.path}) and train/val/test files; "
                f"give one: set {self.key}.reader.path=null to use the files"
            )
        if train is None and (val is not None or test is None):
            raise UserError(f"{self.key}.val file needs a training file too: set {self.key}.train")
        files = {"train": str(train)} if train is not None else {}  # test files alone: evaluation only
        if val is not None:
            files["val"] = str(val)
        if test is not None:
            files["test"] = (
                {"test": str(test)}
                if isinstance(test, (str, Path))
                else {str(k): str(v) for k, v in dict(test).items()}
            )
        return files

    def data_files(self) -> list[Path]:
        """Every file this source reads; one that is missing (or a directory) is refused naming its key."""
        if not self.files:
            named = {f"{self.key}.reader.path": self.reader.path}
        else:
            tests = self.files.get("test", {})
            named = {
                **{f"{self.key}.{role}": self.files[role] for role in ("train", "val") if role in self.files},
                **{f"{self.key}.test" + ("" if list(tests) == ["test"] else f".{n}"): p for n, p in tests.items()},
            }
        return [existing_file(path, key) for key, path in named.items()]

    @property
    def origin(self) -> str:
        """Where the data comes from, for messages."""
        if not self.files:
            return str(self.reader.path)
        tests = self.files.get("test", {})
        return ", ".join(
            ([f"train={self.files['train']}"] if "train" in self.files else [])
            + ([f"val={self.files['val']}"] if "val" in self.files else [])
            + [f"{name}={path}" for name, path in tests.items()]
        )

    def _read(self, reader: Reader) -> list[Structure]:
        structures = reader.read()
        if not structures:
            raise UserError(f"{reader.describe()} gave no structures with {self.fidelity} labels ({self.key})")
        return self._minus_base(structures, reader) if self._base is not None else structures

    def subtract(self, base: FidelitySource) -> None:
        """From now on this source's labels are its own minus `base`'s, on the conformers both label (the same
        numbers and positions); the others are dropped. Splits, sizes and statistics then apply to the differences."""
        if self._pool is not None:
            raise RuntimeError("subtract() must come before the source is read")
        self._base = base

    def all_structures(self) -> list[Structure]:
        """Every structure of this source, in any split."""
        self._split_pool()
        return self._structures

    def _minus_base(self, structures: list[Structure], reader: Reader) -> list[Structure]:
        if reader.lazy or self._base.reader.lazy:
            raise UserError(
                f"a Δ-model ({self.key} minus {self._base.key}) pairs the conformers of both sources in memory; "
                f"set reader.lazy=false in both"
            )
        base = {_geometry(s): s for s in self._base.all_structures()}
        paired = []
        for s in structures:
            match = base.get(_geometry(s))
            if match is None:
                continue
            both = s.forces is not None and match.forces is not None
            forces = s.forces - match.forces if both else None
            paired.append(dataclasses.replace(s, energy=s.energy - match.energy, forces=forces))
        if not paired:
            raise UserError(
                f"no structure of {reader.describe()} ({self.key}) has a {self._base.fidelity} label on the same "
                f"geometry in {self._base.origin}; a Δ-model learns from conformers both fidelities label"
            )
        log.info("%s: %d of %d structures paired with %s labels", self.key, len(paired), len(structures),
                 self._base.fidelity)  # fmt: skip
        return paired

    def read(self) -> list[Structure]:
        return self._read(self.reader)

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
            raise UserError(
                f"{self.key}.molecules / exclude_molecules name {unknown}, which are not in the training pool of "
                f"{self.origin}; known: {', '.join(sorted(known))}"
            )
        kept = [
            s
            for s in pool
            if (self.molecules is None or s.group in self.molecules) and s.group not in self.exclude_molecules
        ]
        if not kept:
            raise UserError(f"the molecule filters of {self.key} leave no training structures; relax them")
        return kept

    def exclude_groups(self, groups: set[str]) -> None:
        """Drop these molecules from the training pool (e.g. those another fidelity has labels for)."""
        self.exclude_molecules |= groups & {s.group for s in self._split_pool()}

    def _split_pool(self) -> list[Structure]:
        """The train/val pool before filters (read and split once); sets the test sets and a given val set."""
        if self._pool is None:
            if self.files:
                self.data_files()  # every file there, each named by its key, before reading any
            if self.files and "train" not in self.files:  # evaluation only
                pool, self._val_set = [], None
                self.tests = {n: self._read(self.reader.for_file(p)) for n, p in self.files["test"].items()}
                structures = [s for items in self.tests.values() for s in items]
            elif self.files:
                pool = self._read(self.reader.for_file(self.files["train"]))
                self._val_set = self._read(self.reader.for_file(self.files["val"])) if "val" in self.files else None
                if "test" in self.files:
                    self.tests = {n: self._read(self.reader.for_file(p)) for n, p in self.files["test"].items()}
                else:
                    pool, self.tests, tagged_val = self._split(pool)
                    self._val_set = self._val_set or tagged_val
                structures = pool + (self._val_set or []) + [s for items in self.tests.values() for s in items]
            else:
                structures = self.read()
                pool, self.tests, self._val_set = self._split(structures)
            self._structures = structures
            self._groups = {s.group for s in structures}
            self._pool = pool
        return self._pool

    def _ordered(self) -> tuple[list[Structure], int]:
        """The filtered pool in its fixed seeded order, and how many of its first entries are validation."""
        pool = self._keep(self._split_pool())
        pool = [pool[i] for i in stream(self.seed, "pool", self.fidelity).permutation(len(pool))]
        if self._val_set is not None:
            return pool, 0
        n_val = resolve_size(self.n_val if self.n_val is not None else DEFAULT_VAL_FRACTION, len(pool))
        if n_val >= len(pool):
            raise UserError(
                f"{self.key}.n_val={self.n_val} takes {n_val} of the {len(pool)} structures in the training pool of "
                f"{self.origin}, leaving none to train on; lower it (a fraction works: {self.key}.n_val=0.1) "
                "or give a val file"
            )
        return pool, n_val

    def training_pool(self) -> list[Structure]:
        """Candidates for training in their fixed order; n_train takes a prefix, so subsets of one seed nest."""
        pool, n_val = self._ordered()
        return pool[n_val:]

    @property
    def test_only(self) -> bool:
        """Only test files were given: the source can evaluate a model, not train one."""
        return bool(self.files) and "train" not in self.files

    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        if self.test_only:
            self._setup_tests_only(stage)
            return
        pool, n_val = self._ordered()
        available = len(pool) - n_val
        n_train = resolve_size(self.n_train, available)
        if n_train > available:
            raise UserError(
                f"{self.key}.n_train={self.n_train} but only {available} training structures remain in "
                f"{self.origin} after n_val={n_val}; lower n_train or n_val"
            )
        if self._val_set is not None:
            wanted = resolve_size(self.n_val, len(self._val_set))
            if wanted > len(self._val_set):
                raise UserError(
                    f"{self.key}.n_val={self.n_val} but the validation set of {self.origin} has "
                    f"{len(self._val_set)} structures; lower n_val or set it to null (all)"
                )
            order = stream(self.seed, "val", self.fidelity).permutation(len(self._val_set))
            self.val = [self._val_set[i] for i in order[:wanted]]
        else:
            self.val = pool[:n_val]
        self.train = pool[n_val : n_val + n_train]
        self.tests = {name: items[: resolve_size(self.n_test, len(items))] for name, items in self.tests.items()}
        for name, items in {"train": self.train, "val": self.val, **self.tests}.items():
            if not items:
                raise UserError(
                    f"the {name} split of {self.key} ({self.origin}) is empty; check the split "
                    f"settings and sizes (split={self.split_mode.value}, test_fraction={self.test_fraction})"
                )
        self.reference = fit_reference(self.train)
        self.e0 = self.reference.e0
        self.tests = energies_apart(self.tests, self.reference, self.key)
        self.energy_scale = energy_residual_rms(self.train, self.e0)
        self.avg_neighbours = average_neighbours(self.train, self.cutoff)
        self.elements = sorted({int(z) for s in self.train for z in s.numbers})
        self._ready = True

    def _setup_tests_only(self, stage: str | None) -> None:
        if stage != "test":
            raise UserError(
                f"{self.key} has only test files ({self.origin}); training needs a training file: set "
                f"{self.key}.train (test files alone serve mfff-eval)"
            )
        self._split_pool()
        self.tests = {name: items[: resolve_size(self.n_test, len(items))] for name, items in self.tests.items()}
        self.elements = sorted({int(z) for items in self.tests.values() for s in items for z in s.numbers})
        self._ready = True

    def _split(self, structures: list[Structure]):
        """(training pool, {test name: structures}, val set or None) by the split mode."""
        if self.split_mode is SplitMode.PREDEFINED:
            tags = sorted({s.split for s in structures})
            if tags == [""]:
                raise UserError(
                    f"{self.key}.split=predefined but {self.origin} has no split tags; use split=random or split=group"
                )
            pool = [s for s in structures if s.split == "train"]
            val = [s for s in structures if s.split == "val"] or None
            tests = {tag: [s for s in structures if s.split == tag] for tag in tags if tag not in ("train", "val", "")}
            return pool, tests, val
        if self.split_mode is SplitMode.RANDOM:
            order = stream(self.seed, "test", self.fidelity).permutation(len(structures))
            n_test = int(round(self.test_fraction * len(structures)))
            test = set(order[:n_test].tolist())
            return (
                [s for i, s in enumerate(structures) if i not in test],
                {"test": [s for i, s in enumerate(structures) if i in test]},
                None,
            )
        groups = sorted({s.group for s in structures})
        if len(groups) < 2:
            raise UserError(
                f"{self.key}.split=group needs at least two molecules (groups); {self.origin} has "
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
        pool = [s for s in structures if s.group not in held]
        return pool, {"test": [s for s in structures if s.group in held]}, None

    @property
    def label_cost(self) -> float | None:
        """CPU seconds of the training labels; None (unknown) unless the file records the cost of every one."""
        costs = [s.cost for s in self.train]
        return float(sum(costs)) if costs and all(np.isfinite(costs)) else None

    def stats(self, use_forces: bool = True) -> SourceStats:
        """Training-set statistics; with use_forces=False the force labels are not touched."""
        has_forces = use_forces and any(s.forces is not None for s in self.train)
        return SourceStats(
            e0=self.e0,
            force_rms=force_rms(self.train) if has_forces else float("nan"),
            has_forces=has_forces,
            energy_scale=self.energy_scale,
            avg_neighbours=self.avg_neighbours,
            n_train=len(self.train),
            label_cost=self.label_cost,
            elements=self.elements,
        )


def _geometry(structure: Structure) -> tuple:
    """The same conformer in two files: equal atomic numbers and positions (to 1e-6 Å)."""
    return structure.numbers.tobytes(), np.round(structure.positions, 6).tobytes()
