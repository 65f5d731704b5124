"""Cost against accuracy: the Pareto front of measured runs, and the cheapest label mix for a target error or the
most accurate one for a budget, with a warning where the answer leans on extrapolated curves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfff.analyze.fit import MIN_POINTS, LogLogFit, loglog_fit
from mfff.errors import UserError


@dataclass(frozen=True)
class Point:
    """One measured run: its family (runs that differ only in how many labels they bought, e.g. 'pretrain_finetune
    gfn2=2000'), its label cost and its error; `label` says what was bought (e.g. 'dft=200, gfn2=2000') and `labels`
    how many of the family's varied (expensive) labels."""

    family: str
    cost: float
    error: float
    label: str
    labels: int


@dataclass(frozen=True)
class Plan:
    family: str
    label: str  # the measured run, or what the family's curve predicts
    cost: float
    error: float
    measured: bool
    extrapolated: bool
    why: str

    def describe(self, cost_unit: str, error_unit: str) -> str:
        kind = "measured" if self.measured else ("EXTRAPOLATED" if self.extrapolated else "interpolated")
        return (f"{self.label} ({self.family}): {self.error:.4g} {error_unit} for {self.cost:.4g} {cost_unit} "
                f"[{kind}] {self.why}")  # fmt: skip


def pareto_front(points: list[Point]) -> list[Point]:
    """The runs no other run beats in both cost and error (lower is better in both), by rising cost."""
    ordered = sorted(points, key=lambda p: (p.cost, p.error))
    front, best = [], np.inf
    for p in ordered:
        if p.error < best:
            front.append(p)
            best = p.error
    return front


def family_curves(points: list[Point]) -> dict[str, tuple[LogLogFit, float, float]]:
    """Per family with at least 3 label counts: its log-log error-vs-cost fit and its measured cost range (seeds
    of one count differ in cost too, but that spread is no curve to follow)."""
    curves = {}
    for family in sorted({p.family for p in points}):
        members = [p for p in points if p.family == family]
        if len({p.labels for p in members}) >= MIN_POINTS:
            costs = [p.cost for p in members]
            fit = loglog_fit(costs, [p.error for p in members], what=f"the curve of {family}")
            curves[family] = (fit, min(costs), max(costs))
    return curves


def plan(points: list[Point], target_error: float | None = None, budget: float | None = None) -> list[Plan]:
    """The cheapest way to `target_error`, or the lowest error within `budget` (label cost), from measured runs
    and, between them, each family's fitted curve. First the best answer the measurements support; then, if a
    curve followed beyond its measured costs promises better, that one, flagged `extrapolated`."""
    if (target_error is None) == (budget is None):
        raise UserError("give exactly one of a target error (--target) and a label budget (--budget)")
    if not points:
        raise UserError("no runs with a label cost and an error to plan from")
    limit = target_error if target_error is not None else budget
    if not limit > 0:
        raise UserError(f"the {'target error' if target_error is not None else 'budget'} must be positive, got {limit}")
    options = [Plan(p.family, p.label, p.cost, p.error, True, False, "a run of the sweep") for p in points
               if (p.error <= target_error if target_error is not None else p.cost <= budget)]  # fmt: skip
    for family, (fit, low, high) in family_curves(points).items():
        if target_error is not None:
            if fit.slope >= 0:
                continue  # more labels did not lower this family's error: it cannot be planned along
            cost, error = _rounded(10 ** ((np.log10(target_error) - fit.intercept) / fit.slope)), target_error
        else:
            cost, error = budget, _rounded(fit.predict([budget])[0])
        options.append(Plan(family, f"{family} at cost {cost:.4g}", cost, error, False, not low <= cost <= high,
                            _range_note(cost, low, high)))  # fmt: skip
    # measured runs come first, so a tie goes to what was measured
    key = (lambda o: (o.cost, o.error)) if target_error is not None else (lambda o: (o.error, o.cost))
    supported = [o for o in options if not o.extrapolated]
    extrapolated = [o for o in options if o.extrapolated]
    plans = [min(supported, key=key)] if supported else []
    if extrapolated and (not plans or key(min(extrapolated, key=key)) < key(plans[0])):
        plans.append(min(extrapolated, key=key))
    if not plans:
        wanted = f"an error of {target_error:g}" if target_error is not None else f"a cost of {budget:g} or less"
        raise UserError(
            f"no run reaches {wanted}, and no family has {MIN_POINTS} label budgets to fit a curve through; "
            "sweep more label counts"
        )
    return plans


def _rounded(value: float) -> float:
    """To 9 significant digits. A curve through a measured run gives back its cost up to round-off (99.99999999999974
    for 100 with numpy 2.4), which must neither beat the measurement nor fall outside the measured costs."""
    return float(f"{float(value):.9g}")


def _range_note(cost: float, low: float, high: float) -> str:
    if cost < low:
        return f"below the family's measured costs ({low:.4g}-{high:.4g})"
    if cost > high:
        return f"beyond the family's measured costs ({low:.4g}-{high:.4g})"
    return f"within the family's measured costs ({low:.4g}-{high:.4g})"
