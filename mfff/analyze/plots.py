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


def log_axes(ax) -> None:
    """Log scales with round, labelled ticks over each axis's whole range (errors often span less than a decade,
    where matplotlib's default labels only one or two ticks). Call it once everything is drawn."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    _label_log_axis(ax.xaxis, ax.get_xlim())
    _label_log_axis(ax.yaxis, ax.get_ylim())


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=DPI)
    plt.close(fig)
    return path


def pairs_plot(pairs: Pairs, unit: str, path: Path) -> Path:
    """Log-log scatter of the runs, the fitted line and its confidence band (t interval)."""
    plt, fig, ax = _figure()
    ax.scatter(pairs.x, pairs.y, color="C0", zorder=3, label=f"runs ({len(pairs.x)})")
    if pairs.fit is not None:
        fit = pairs.fit
        grid = np.geomspace(min(pairs.x) / 1.1, max(pairs.x) * 1.1, 100)
        low, high = fit.band(grid)
        interval = f"[{fit.slope_ci[0]:.2f}, {fit.slope_ci[1]:.2f}]"
        ax.plot(grid, fit.predict(grid), color="C1", label=f"slope {fit.slope:.2f} {interval}, R² {fit.r2:.2f}")
        ax.fill_between(grid, low, high, color="C1", alpha=0.25, label=f"{100 * fit.level:.0f}% band (t interval)")
    log_axes(ax)
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
    counts = sorted({n for curve in curves for n in curve.n})
    log_axes(ax)
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
    log_axes(ax)
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


NICE_STEPS = ((1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9))


def labelled_log_ticks(low: float, high: float, at_least: int = 4) -> list[float]:
    """Round ticks (1-2-5, then finer) covering [low, high] on a log axis, at least `at_least` of them where the range
    allows, so every part of the axis has a readable number."""
    import math

    ticks: list[float] = []
    for steps in NICE_STEPS:
        ticks = [m * 10.0**e for e in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
                 for m in steps if low <= m * 10.0**e <= high]  # fmt: skip
        if len(ticks) >= at_least:
            break
    return ticks or [low, high]


def _label_log_axis(axis, limits, ticks: list[float] | None = None) -> None:
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    low, high = sorted(limits)
    axis.set_major_locator(FixedLocator(ticks or labelled_log_ticks(low, high)))
    axis.set_major_formatter(lambda value, _: f"{value:g}")
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())
    if axis.axis_name == "x":  # a fixed locator must not widen the view to ticks outside it
        axis.axes.set_xlim(low, high)
    else:
        axis.axes.set_ylim(low, high)


def arms_plot(arms: list, plot, unit: str, path: Path) -> Path:
    """`plot.y` against `plot.x`: one line per value of `plot.by` (arms keyed by (*by, x)), the median over seeds
    with the min-max range as error bars. A numeric x gets a log axis; otherwise the values are categories."""
    plt, fig, ax = _figure()
    lines: dict[tuple, list] = {}
    for arm in arms:
        if arm.summary(plot.y) is not None and arm.key[-1] is not None:
            lines.setdefault(arm.key[:-1], []).append(arm)
    numeric = all(isinstance(a.key[-1], (int, float)) and not isinstance(a.key[-1], bool)
                  for members in lines.values() for a in members)  # fmt: skip
    categories = sorted({str(a.key[-1]) for members in lines.values() for a in members})
    ys = []
    for k, (label, members) in enumerate(sorted(lines.items(), key=lambda item: str(item[0]))):
        xs = [float(a.key[-1]) if numeric else categories.index(str(a.key[-1])) for a in members]
        mid, low, high = zip(*(a.summary(plot.y) for a in members))
        ys += [*low, *high]
        seeds = max(len(a.by_seed) for a in members)
        name = ", ".join(f"{c}={v}" for c, v in zip(plot.by, label)) or plot.y
        ax.errorbar(xs, mid, yerr=[[m - lo for m, lo in zip(mid, low)], [hi - m for m, hi in zip(mid, high)]],
                    fmt="o-" if numeric else "o", color=f"C{k % 10}", capsize=3,
                    label=f"{name} ({seeds} seeds)")  # fmt: skip  # categories get no connecting line
    ax.set_yscale("log")
    if ys:
        _label_log_axis(ax.yaxis, ax.get_ylim())
    if numeric:
        ax.set_xscale("log")
        xs = sorted({float(a.key[-1]) for members in lines.values() for a in members})
        _label_log_axis(ax.xaxis, ax.get_xlim(), xs if len(xs) <= 8 else None)  # a sweep's own values, when few
    else:
        ax.set_xticks(range(len(categories)), categories, rotation=20, ha="right", fontsize=8)
        ax.set_xlim(-0.5, len(categories) - 0.5)
    ax.set_xlabel(plot.x)
    ax.set_ylabel(f"{plot.y} [{unit}] (median, min-max over seeds)")
    ax.set_title(f"{plot.y} against {plot.x}" + (f" ({', '.join(f'{k}={v}' for k, v in plot.where.items())})"
                                                  if plot.where else ""))  # fmt: skip
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def fits_plot(judged: dict, fit, unit: str, path: Path) -> Path:
    """The runs of a log-log fit, coloured by group, each group's line, and the pooled line with its t-interval band."""
    plt, fig, ax = _figure()
    xs_all = [r[fit.x] for r in judged["points"]]
    grid = np.geomspace(min(xs_all) / 1.1, max(xs_all) * 1.1, 100)
    for k, (name, members) in enumerate(sorted(judged["groups"].items())):
        color = f"C{k % 10}"
        ax.scatter([r[fit.x] for r in members], [r[fit.y] for r in members], color=color, zorder=3, s=18)
        line = judged["fits"].get(name)
        label = f"{name}: slope {line.slope:.2f}, R² {line.r2:.2f}" if line else f"{name} ({len(members)} runs)"
        if line is not None:
            ax.plot(grid, line.predict(grid), color=color, lw=1, label=label)
        else:
            ax.plot([], [], "o", color=color, label=label)
    pooled = judged["fits"].get("pooled")
    if pooled is not None and len(judged["groups"]) > 1:
        low, high = pooled.band(grid)
        ax.plot(grid, pooled.predict(grid), color="black", lw=2,
                label=f"pooled: slope {pooled.slope:.2f} [{pooled.slope_ci[0]:.2f}, {pooled.slope_ci[1]:.2f}], "
                      f"R² {pooled.r2:.2f}")  # fmt: skip
        ax.fill_between(grid, low, high, color="black", alpha=0.12)
    log_axes(ax)
    ax.set_xlabel(f"{fit.x} [{unit}]")
    ax.set_ylabel(f"{fit.y} [{unit}]")
    ax.set_title(judged["what"], fontsize=9)
    ax.legend(fontsize=6)
    return _save(plt, fig, path)
