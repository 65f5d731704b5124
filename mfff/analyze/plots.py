"""The figures of a report: matplotlib PNGs of one size, with labelled axes and units."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mfff.analyze.planner import Point, pareto_front
from mfff.analyze.studies import Curve, Pairs
from mfff.utils.atomic import atomic_open

SIZE_INCHES, DPI = (6.4, 4.8), 100  # 640 x 480 pixels


def _figure():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed (clusters, CI)
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=SIZE_INCHES, dpi=DPI)


def _log_axes(ax) -> None:
    """Log scales with plain numbers on the ticks (errors span a decade or two, not ten)."""
    from matplotlib.ticker import ScalarFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(ScalarFormatter())
        axis.get_major_formatter().set_scientific(False)
        axis.get_minor_formatter().set_scientific(False)


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=DPI)
    plt.close(fig)
    return path


def pairs_plot(pairs: Pairs, unit: str, path: Path) -> Path:
    """Log-log scatter of the runs, the fitted line and its bootstrap band."""
    plt, fig, ax = _figure()
    ax.scatter(pairs.x, pairs.y, color="C0", zorder=3, label=f"runs ({len(pairs.x)})")
    if pairs.fit is not None:
        fit = pairs.fit
        grid = np.geomspace(min(pairs.x) / 1.1, max(pairs.x) * 1.1, 100)
        low, high = fit.band(grid)
        interval = f"[{fit.slope_ci[0]:.2f}, {fit.slope_ci[1]:.2f}]"
        ax.plot(grid, fit.predict(grid), color="C1", label=f"slope {fit.slope:.2f} {interval}, R² {fit.r2:.2f}")
        ax.fill_between(grid, low, high, color="C1", alpha=0.25, label=f"{100 * fit.level:.0f}% band (bootstrap)")
    _log_axes(ax)
    ax.set_xlabel(f"{pairs.x_label} [{unit}]")
    ax.set_ylabel(f"{pairs.y_label} [{unit}]")
    ax.set_title(pairs.name)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def learning_curves_plot(curves: list[Curve], target: str, metric_label: str, unit: str, path: Path) -> Path:
    from matplotlib.ticker import NullFormatter

    plt, fig, ax = _figure()
    for k, curve in enumerate(curves):
        color = f"C{k % 10}"
        ax.plot(curve.n, curve.median, "o-", color=color, label=curve.family)
        ax.fill_between(curve.n, curve.low, curve.high, color=color, alpha=0.2)
    _log_axes(ax)
    counts = sorted({n for curve in curves for n in curve.n})
    ax.set_xticks(counts, [str(n) for n in counts])  # the label counts of the sweep, and no others
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"{target} training labels")
    ax.set_ylabel(f"{target} {metric_label} [{unit}] (median, min-max over seeds)")
    ax.set_title(f"learning curves on {target}")
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def cost_plot(points: list[Point], target: str, metric_label: str, unit: str, path: Path) -> Path:
    plt, fig, ax = _figure()
    families = sorted({p.family for p in points})
    for k, name in enumerate(families):
        members = [p for p in points if p.family == name]
        ax.scatter([p.cost for p in members], [p.error for p in members], color=f"C{k % 10}", label=name)
    front = pareto_front(points)
    ax.step([p.cost for p in front], [p.error for p in front], where="post", color="black", lw=1,
            label="Pareto front")  # fmt: skip
    _log_axes(ax)
    ax.set_xlabel("label cost [CPU s]")
    ax.set_ylabel(f"{target} {metric_label} [{unit}]")
    ax.set_title("cost and accuracy")
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def heatmap(names: list[str], values: np.ndarray, title: str, path: Path) -> Path:
    plt, fig, ax = _figure()
    image = ax.imshow(values, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if values[i, j] < 0.5 else "black")  # fmt: skip
    fig.colorbar(image, ax=ax, label="linear CKA")
    ax.set_title(title)
    return _save(plt, fig, path)


def parity_plot(label: np.ndarray, predicted: np.ndarray, quantity: str, unit: str, title: str, path: Path) -> Path:
    plt, fig, ax = _figure()
    ax.scatter(label, predicted, s=4, alpha=0.5)
    low, high = float(min(label.min(), predicted.min())), float(max(label.max(), predicted.max()))
    ax.plot([low, high], [low, high], color="black", lw=1)
    ax.set_xlabel(f"{quantity}, label [{unit}]")
    ax.set_ylabel(f"{quantity}, predicted [{unit}]")
    ax.set_title(title)
    ax.set_aspect("equal")
    return _save(plt, fig, path)
