"""The multi-fidelity data module: mixes the per-fidelity sources into graph batches."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from mfff.data.batch import Collater
from mfff.data.errors import DataError
from mfff.data.sources import FidelitySource


class MultiFidelityDataModule(pl.LightningDataModule):
    """Combines the sources named in `fidelities`; fidelity index = position in the sorted names.

    Training mixes sources proportionally (every training structure once per epoch, shuffled together).
    Validation merges all fidelities' val sets; each test-set name (e.g. `test`, `test_mol`) is one loader.
    `fidelity` names the target (expensive) fidelity that single-fidelity strategies train on.
    """

    def __init__(
        self,
        sources: dict[str, FidelitySource],
        fidelities: list[str],
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        cutoff: float = 5.0,
        neighbours: str = "auto",
        use_forces: bool = True,
        num_workers: int = 0,
        seed: int = 0,
        fidelity: str | None = None,
        dtype: str = "float32",
    ):
        super().__init__()
        self.target_fidelity = fidelity  # the expensive fidelity single-fidelity strategies train on
        fidelities = list(fidelities)
        if not fidelities:
            raise DataError("no fidelities selected (strategy.fidelities is empty)")
        missing = [f for f in fidelities if f not in sources]
        if missing:
            raise DataError(
                f"fidelity {missing[0]!r} (strategy.fidelities) has no source in data.sources; "
                f"available: {', '.join(sorted(sources))}"
            )
        self.fidelities = sorted(fidelities)
        self.sources = {f: sources[f] for f in self.fidelities}
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.seed = num_workers, seed
        self.train_collate = Collater(cutoff, neighbours, use_forces=use_forces, dtype=dtype)
        self.eval_collate = Collater(cutoff, neighbours, use_forces=True, dtype=dtype)
        self.test_names: list[str] = []

    def setup(self, stage: str | None = None) -> None:
        for source in self.sources.values():
            source.setup(stage)
        self.test_names = sorted({name for s in self.sources.values() for name in s.tests})

    def _items(self, pick) -> list:
        return [(s, index) for index, f in enumerate(self.fidelities) for s in pick(self.sources[f])]

    def train_dataloader(self):
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            self._items(lambda s: s.train),
            batch_size=self.batch_size,
            shuffle=True,
            collate_fn=self.train_collate,
            num_workers=self.num_workers,
            generator=generator,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self):
        return DataLoader(
            self._items(lambda s: s.val),
            batch_size=self.eval_batch_size,
            collate_fn=self.eval_collate,
            num_workers=self.num_workers,
        )

    def test_dataloader(self):
        return [
            DataLoader(
                self._items(lambda s, n=name: s.tests.get(n, [])),
                batch_size=self.eval_batch_size,
                collate_fn=self.eval_collate,
                num_workers=self.num_workers,
            )
            for name in self.test_names
        ]

    def stats(self) -> dict[str, dict]:
        return {f: s.stats() for f, s in self.sources.items()}
