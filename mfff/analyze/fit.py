"""Straight lines through log-log data (fine-tuned vs pre-trained error, head vs head), with least-squares
t intervals.

Why not a bootstrap: a fit of one architecture rests on 3-5 runs, and resampling 3 runs gives at most 27 resamples
whose slopes span only the pairwise slopes of the data; its "95%" interval covered the true slope in 64% of 200
simulated 3-run fits (the t interval: 96%; tests/analyze/test_math.py checks the latter). The t interval with n - 2
degrees of freedom is exact for normal residuals in log space at any n, and widens as it should with few runs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from mfff.errors import UserError

MIN_POINTS = 3  # two points always lie on a line: R² and an interval need a third


@dataclass(frozen=True)
class LogLogFit:
    """log10(y) = intercept + slope * log10(x), fitted by least squares over `n` runs.

    `slope_ci` and `intercept_ci` are t intervals at `level` (n - 2 degrees of freedom)."""

    slope: float
    intercept: float
    r2: float
    n: int
    slope_ci: tuple[float, float]
    intercept_ci: tuple[float, float]
    level: float
    _mean_logx: float
    _sxx: float  # sum of squared deviations of log10 x
    _half_width: float  # t quantile x residual standard error

    def predict(self, x) -> np.ndarray:
        return 10 ** (self.intercept + self.slope * np.log10(np.asarray(x, dtype=float)))

    def band(self, x) -> tuple[np.ndarray, np.ndarray]:
        """The pointwise confidence interval of the fitted line at `x` (the shaded band of a plot)."""
        logs = np.log10(np.asarray(x, dtype=float))
        centre = self.intercept + self.slope * logs
        half = self._half_width * np.sqrt(1 / self.n + (logs - self._mean_logx) ** 2 / self._sxx)
        return 10 ** (centre - half), 10 ** (centre + half)

    def summary(self) -> dict:
        return {"slope": self.slope, "intercept": self.intercept, "r2": self.r2, "n": self.n, "level": self.level,
                "slope_ci": list(self.slope_ci), "intercept_ci": list(self.intercept_ci)}  # fmt: skip


def loglog_fit(x, y, what: str = "the fit", level: float = 0.95) -> LogLogFit:
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
    n, mean_x = len(x), float(logx.mean())
    sxx = float(np.sum((logx - mean_x) ** 2))
    slope = float(np.sum((logx - mean_x) * (logy - logy.mean())) / sxx)
    intercept = float(logy.mean() - slope * mean_x)
    residual = logy - (intercept + slope * logx)
    total = np.sum((logy - logy.mean()) ** 2)
    r2 = float(1 - np.sum(residual**2) / total) if total > 0 else 1.0
    scale = float(np.sqrt(np.sum(residual**2) / (n - 2)))  # the residual standard error
    half_width = float(stats.t.ppf(0.5 + level / 2, n - 2)) * scale
    slope_half = half_width / np.sqrt(sxx)
    intercept_half = half_width * np.sqrt(1 / n + mean_x**2 / sxx)
    slope_ci = (slope - slope_half, slope + slope_half)
    intercept_ci = (intercept - intercept_half, intercept + intercept_half)
    return LogLogFit(slope, intercept, r2, n, slope_ci, intercept_ci, level, mean_x, sxx, half_width)
