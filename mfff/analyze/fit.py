"""Straight lines through log-log data (fine-tuned vs pre-trained error, head vs head), with bootstrap intervals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfff.errors import UserError

MIN_POINTS = 3  # two points always lie on a line: R² and an interval need a third


@dataclass(frozen=True)
class LogLogFit:
    """log10(y) = intercept + slope * log10(x), fitted by least squares over `n` runs.

    `slope_ci` and `intercept_ci` are bootstrap percentile intervals at `level` (runs resampled with replacement).
    """

    slope: float
    intercept: float
    r2: float
    n: int
    slope_ci: tuple[float, float]
    intercept_ci: tuple[float, float]
    level: float
    _boot: np.ndarray  # (n_boot, 2): slope, intercept of each resample, for the band

    def predict(self, x) -> np.ndarray:
        return 10 ** (self.intercept + self.slope * np.log10(np.asarray(x, dtype=float)))

    def band(self, x) -> tuple[np.ndarray, np.ndarray]:
        """The pointwise bootstrap interval of the fitted line at `x` (the shaded band of a plot)."""
        logs = np.log10(np.asarray(x, dtype=float))
        lines = self._boot[:, 1:2] + self._boot[:, 0:1] * logs[None, :]
        tail = 100 * (1 - self.level) / 2
        low, high = np.percentile(lines, [tail, 100 - tail], axis=0)
        return 10**low, 10**high

    def summary(self) -> dict:
        return {"slope": self.slope, "intercept": self.intercept, "r2": self.r2, "n": self.n, "level": self.level,
                "slope_ci": list(self.slope_ci), "intercept_ci": list(self.intercept_ci)}  # fmt: skip


def _line(logx: np.ndarray, logy: np.ndarray) -> tuple[float, float]:
    slope, intercept = np.polyfit(logx, logy, 1)
    return float(slope), float(intercept)


def loglog_fit(x, y, what: str = "the fit", n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> LogLogFit:
    """Fit log10(y) against log10(x); `what` names the pair in errors (e.g. 'fine-tuned vs pre-trained dft')."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-d and of one length, got {x.shape} and {y.shape}")
    if len(x) < MIN_POINTS:
        raise UserError(
            f"{what} needs at least {MIN_POINTS} runs with both errors, got {len(x)}; add runs (seeds, sizes) "
            "to the sweep"
        )
    if not (np.all(np.isfinite(x) & (x > 0)) and np.all(np.isfinite(y) & (y > 0))):
        raise UserError(f"{what}: errors must be positive and finite for a log-log fit (a diverged run?)")
    logx, logy = np.log10(x), np.log10(y)
    if np.ptp(logx) == 0:
        raise UserError(f"{what}: every run has the same x error ({x[0]:g}), so there is no line to fit")
    slope, intercept = _line(logx, logy)
    residual = logy - (intercept + slope * logx)
    total = np.sum((logy - logy.mean()) ** 2)
    r2 = float(1 - np.sum(residual**2) / total) if total > 0 else 1.0
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(x), len(x))
        if np.ptp(logx[pick]) > 0:  # a resample of one x value has no slope; draw again
            boot.append(_line(logx[pick], logy[pick]))
    boot = np.array(boot)
    tail = 100 * (1 - level) / 2
    slope_ci = tuple(float(v) for v in np.percentile(boot[:, 0], [tail, 100 - tail]))
    intercept_ci = tuple(float(v) for v in np.percentile(boot[:, 1], [tail, 100 - tail]))
    return LogLogFit(slope, intercept, r2, len(x), slope_ci, intercept_ci, level, boot)
