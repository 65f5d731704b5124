"""Arms of a study (runs that differ only in seed) and the rules that turn their errors into a verdict.

A comparison says that the `better` arm has a lower error than the `worse` arm, at each level of `per` (e.g. each
DFT training size). At one level, with d = median(worse) - median(better) over seeds and s the larger min-max range
over seeds of the two arms:
- *holds* when d > 2 s, or when d > 0 and, with 3 or more seeds in both arms, every seed's own pair agrees;
- *reversed* by the mirror rule;
- *within the seed spread* otherwise, and *one seed* when an arm has a single seed (no spread to judge by).

A comparison is *confirmed* when it holds at every level, *not confirmed* when it is reversed at one, and
*inconclusive* otherwise. With `gain_shrinks`, the gain median(worse) / median(better) must also fall as `per` grows:
Spearman's rank correlation of gain and level <= -0.7 confirms it, >= 0 rejects it, anything between is inconclusive.
A finding is confirmed when all its parts are, not confirmed when one is not, else inconclusive.

A representation claim (linear CKA of one pair of checkpoints above that of another) holds in a part when the
difference exceeds CKA_MARGIN (0.01), is reversed below -0.01, and is inconclusive between; it is confirmed when every
part holds.

A log-log fit (fine-tuned against pre-trained error) is *confirmed* linear when the pooled fit's slope interval lies
above 0 and R² >= 0.8, *not confirmed* when R² < 0.5 or the whole interval is <= 0, and *inconclusive* otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median

from mfff.errors import UserError

CONFIRMED, NOT_CONFIRMED, INCONCLUSIVE = "confirmed", "not confirmed", "inconclusive"
HOLDS, REVERSED, WITHIN, ONE_SEED = "holds", "reversed", "within the seed spread", "one seed"
SHRINKS_AT, GROWS_AT = -0.7, 0.0


def matches(row: dict, where: dict) -> bool:
    """Whether a run's row has every `where` value (compared as text, so 100 matches "100" and true matches True)."""
    return all(str(row.get(key)).lower() == str(value).lower() for key, value in where.items())


@dataclass
class Arm:
    """The runs of one setting, by seed."""

    key: tuple
    by_seed: dict[int, dict] = field(default_factory=dict)  # seed: row

    def values(self, column: str) -> dict[int, float]:
        return {s: float(r[column]) for s, r in self.by_seed.items() if r.get(column) is not None}

    def summary(self, column: str) -> tuple[float, float, float] | None:
        """(median, min, max) over seeds, or None when no run has the value."""
        values = list(self.values(column).values())
        return (median(values), min(values), max(values)) if values else None


def arms_of(rows: list[dict], columns: list[str]) -> list[Arm]:
    """Rows grouped by `columns` (seeds apart), in a stable order: numbers by value, then text."""
    arms: dict[tuple, Arm] = {}
    for row in rows:
        key = tuple(row.get(c) for c in columns)
        arm, seed = arms.setdefault(key, Arm(key)), int(row.get("seed") or 0)
        if seed in arm.by_seed:
            raise UserError(
                f"runs {arm.by_seed[seed].get('run')} and {row.get('run')} have the same seed {seed} and the same "
                f"{', '.join(f'{c}={v}' for c, v in zip(columns, key)) or 'values'}: name the setting that tells them "
                "apart (add it to the arms, or to the comparison's where)"
            )
        arm.by_seed[seed] = row
    return [arms[k] for k in sorted(arms, key=lambda k: tuple(_sort_key(v) for v in k))]


def _sort_key(value):
    if isinstance(value, bool) or value is None:
        return (2, str(value))
    if isinstance(value, (int, float)):
        return (0, value)
    return (1, str(value))


@dataclass
class Level:
    level: object
    better: tuple[float, float, float]
    worse: tuple[float, float, float]
    seeds: int
    outcome: str

    @property
    def gain(self) -> float:
        return self.worse[0] / self.better[0]


def compare_level(level, better: Arm, worse: Arm, metric: str) -> Level | None:
    b, w = better.values(metric), worse.values(metric)
    if not b or not w:
        return None
    sb, sw = better.summary(metric), worse.summary(metric)
    spread = max(sb[2] - sb[1], sw[2] - sw[1])
    d = sw[0] - sb[0]
    paired = [w[s] - b[s] for s in sorted(set(b) & set(w))]
    if min(len(b), len(w)) < 2:
        outcome = ONE_SEED
    elif abs(d) > 2 * spread or (len(paired) >= 3 and len(b) >= 3 and len(w) >= 3 and
                                 all(p * d > 0 for p in paired)):  # fmt: skip
        outcome = HOLDS if d > 0 else REVERSED
    else:
        outcome = WITHIN
    return Level(level, sb, sw, min(len(b), len(w)), outcome)


def spearman(x: list[float], y: list[float]) -> float:
    def ranks(values):
        order = sorted(range(len(values)), key=lambda i: values[i])
        out = [0.0] * len(values)
        for rank, i in enumerate(order):
            out[i] = float(rank)
        return out

    rx, ry = ranks(x), ranks(y)
    n = len(x)
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    var = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return cov / var if var else 0.0


def comparison_verdict(levels: list[Level]) -> str:
    if not levels:
        return INCONCLUSIVE
    if any(level.outcome == REVERSED for level in levels):
        return NOT_CONFIRMED
    return CONFIRMED if all(level.outcome == HOLDS for level in levels) else INCONCLUSIVE


def shrink_verdict(levels: list[Level]) -> tuple[str, float | None]:
    """Whether the gain falls as the level grows, and Spearman's rho of gain against level."""
    if len(levels) < 3:
        return INCONCLUSIVE, None
    rho = spearman([float(level.level) for level in levels], [level.gain for level in levels])
    if rho <= SHRINKS_AT:
        return CONFIRMED, rho
    return (NOT_CONFIRMED if rho >= GROWS_AT else INCONCLUSIVE), rho


def combined(verdicts: list[str]) -> str:
    if verdicts and all(v == CONFIRMED for v in verdicts):
        return CONFIRMED
    return NOT_CONFIRMED if NOT_CONFIRMED in verdicts else INCONCLUSIVE


LINEAR_R2, NOT_LINEAR_R2 = 0.8, 0.5


def fit_verdict(slope_ci: tuple[float, float], r2: float) -> str:
    if slope_ci[0] > 0 and r2 >= LINEAR_R2:
        return CONFIRMED
    return NOT_CONFIRMED if slope_ci[1] <= 0 or r2 < NOT_LINEAR_R2 else INCONCLUSIVE


CKA_MARGIN = 0.01


def cka_outcome(higher: float, lower: float) -> str:
    difference = higher - lower
    return HOLDS if difference > CKA_MARGIN else REVERSED if difference < -CKA_MARGIN else WITHIN


def cka_verdict(outcomes: list[str]) -> str:
    if outcomes and all(o == HOLDS for o in outcomes):
        return CONFIRMED
    return NOT_CONFIRMED if REVERSED in outcomes else INCONCLUSIVE
