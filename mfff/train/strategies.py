"""Training strategies as small objects: which fidelities get heads and data. New strategy = new class."""

from __future__ import annotations

from mfff.data.errors import DataError


class Strategy:
    name: str = "strategy"

    def __init__(self, fidelities: list[str], name: str | None = None):
        self.name = name or self.name
        self.fidelities = sorted(str(f) for f in fidelities)
        if not self.fidelities:
            raise DataError(f"strategy={self.name} has no fidelities to train on (strategy.fidelities)")

    def describe(self) -> dict:
        return {"name": self.name, "fidelities": self.fidelities}


class Scratch(Strategy):
    """One fidelity, one head, trained from random weights (the expensive-data-only baseline)."""

    name = "scratch"

    def __init__(self, fidelity: str, name: str | None = None):
        super().__init__([fidelity], name)


class MultiHead(Strategy):
    """One shared backbone and one head per fidelity, trained on all of them at once."""

    name = "multihead"

    def __init__(self, fidelities: list[str], name: str | None = None):
        super().__init__(fidelities, name)
        if len(self.fidelities) < 2:
            raise DataError(
                f"strategy=multihead needs at least two fidelities, got {self.fidelities} "
                "(strategy.fidelities); use strategy=scratch for one"
            )
