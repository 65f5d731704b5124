"""A fixed labelling budget split between an expensive and a cheap fidelity ("partial replacement")."""

from __future__ import annotations

from mfff.errors import UserError

KEY = "data.budget"


class LabelBudget:
    """Sets the training sizes of two sources from one budget.

    Args:
        total: the budget as a number of labels, or
        cost: the budget in CPU seconds, spent using the label costs the data records (the built-in dataset does).
        fraction: the share of the budget that goes to `expensive`; `cheap` gets the rest (in cost mode, the cost
            the expensive labels did not use).
    Both subsets are prefixes of each source's fixed seeded order, so for one seed they nest across budgets.
    """

    def __init__(
        self,
        expensive: str,
        cheap: str,
        fraction: float,
        total: int | None = None,
        cost: float | None = None,
    ):
        if (total is None) == (cost is None):
            raise UserError(f"set exactly one of {KEY}.total (labels) and {KEY}.cost (CPU seconds)")
        if not 0.0 <= float(fraction) <= 1.0:
            raise UserError(f"{KEY}.fraction={fraction} must lie between 0 and 1 (the expensive fidelity's share)")
        if expensive == cheap:
            raise UserError(f"{KEY}.expensive and {KEY}.cheap are both {expensive!r}; name two fidelities")
        if total is not None and int(total) < 1:
            raise UserError(f"{KEY}.total={total} must be a positive number of labels")
        if cost is not None and float(cost) <= 0:
            raise UserError(f"{KEY}.cost={cost} must be a positive number of CPU seconds")
        self.expensive, self.cheap, self.fraction = expensive, cheap, float(fraction)
        self.total = int(total) if total is not None else None
        self.cost = float(cost) if cost is not None else None

    def describe(self) -> str:
        amount = f"total={self.total}" if self.total is not None else f"cost={self.cost:g} CPU s"
        return f"{KEY} ({amount}, fraction={self.fraction:g} to {self.expensive}, rest to {self.cheap})"

    def apply(self, sources: dict) -> None:
        """Fix `n_train` of both sources (reading their pools), or fail naming what the data lacks."""
        for role, name in (("expensive", self.expensive), ("cheap", self.cheap)):
            if name not in sources:
                raise UserError(f"{KEY}.{role}={name!r} has no source in data.sources ({', '.join(sorted(sources))})")
            if sources[name].n_train is not None:
                raise UserError(
                    f"{KEY} sets the training size of {name}; remove data.sources.{name}.n_train "
                    f"(it is {sources[name].n_train})"
                )
        expensive, cheap = sources[self.expensive], sources[self.cheap]
        if self.total is not None:
            n_expensive = round(self.fraction * self.total)
            sizes = {self.expensive: n_expensive, self.cheap: self.total - n_expensive}
        else:
            n_expensive, spent = self._within(expensive, self.fraction * self.cost)
            sizes = {self.expensive: n_expensive, self.cheap: self._within(cheap, self.cost - spent)[0]}
        for name, n in sizes.items():
            available = len(sources[name].training_pool())
            if n > available:
                raise UserError(
                    f"{self.describe()} needs {n} {name} training labels but {sources[name].reader.describe()} has "
                    f"only {available} after validation; lower the budget or the fraction"
                )
            sources[name].n_train = n

    def _within(self, source, cost: float) -> tuple[int, float]:
        """The longest prefix of the source's training order whose labels cost at most `cost`."""
        costs = [s.cost for s in source.training_pool()]
        if any(c != c for c in costs):  # NaN: the file records no cost
            raise UserError(
                f"{KEY}.cost needs recorded label costs but {source.reader.describe()} has none for "
                f"{source.fidelity}; use {KEY}.total (a label count) instead"
            )
        spent, n = 0.0, 0
        for c in costs:
            if spent + c > cost:
                return n, spent
            spent, n = spent + c, n + 1
        if cost > spent:
            raise UserError(
                f"{self.describe()} gives {source.fidelity} {cost:.0f} CPU s but all its {n} training labels cost "
                f"only {spent:.0f} CPU s; lower the budget or the fraction"
            )
        return n, spent
