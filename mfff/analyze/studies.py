"""The questions asked of a set of runs: how errors transfer (log-log), how they fall with labels, what they cost."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from statistics import median

from mfff.analyze.collect import Run
from mfff.analyze.fit import MIN_POINTS, LogLogFit, loglog_fit
from mfff.analyze.planner import Point
from mfff.errors import UserError


@dataclass
class Pairs:
    """Errors of runs on two axes, e.g. pre-trained GFN2 test error (x) against fine-tuned DFT test error (y)."""

    name: str
    x_label: str
    y_label: str
    x: list[float]
    y: list[float]
    runs: list[Run]
    fit: LogLogFit | None = None
    skipped: str | None = None  # why there is no fit

    def fitted(self) -> Pairs:
        if len(self.x) < MIN_POINTS:
            self.skipped = f"{self.name}: a fit needs at least {MIN_POINTS} runs with both errors, got {len(self.x)}"
            return self
        try:
            self.fit = loglog_fit(self.x, self.y, what=self.name)
        except UserError as err:
            self.skipped = str(err)
        return self


def transfer(runs: list[Run], metric: str, split: str) -> list[Pairs]:
    """Fine-tuned error (on each fine-tuned fidelity) against the pre-trained model's error (on its fidelity), one
    fit per number of fine-tuning labels: the relation holds at a fixed fine-tuning set, across pre-trainings."""
    groups: dict[tuple[str, str, int], Pairs] = {}
    for run in runs:
        for pre in run.pretrain_fidelities:
            x = run.metric(split, pre, metric, stage="pretrain")
            for target in run.trained:
                y, n = run.metric(split, target, metric), run.record.n_train.get(target)
                if x is None or y is None or n is None:
                    continue
                pairs = groups.setdefault((pre, target, n), Pairs(
                    f"fine-tuned {target} (n={n}) vs pre-trained {pre}", f"pre-trained {pre} {split} {metric}",
                    f"fine-tuned {target} {split} {metric}", [], [], []))  # fmt: skip
                pairs.x.append(x)
                pairs.y.append(y)
                pairs.runs.append(run)
    return [groups[k].fitted() for k in sorted(groups)]


def heads(runs: list[Run], metric: str, split: str) -> list[Pairs]:
    """For multi-head runs: each head's error against each other head's, across runs."""
    groups: dict[tuple[str, str], Pairs] = {}
    for run in runs:
        if run.record.pretrain or len(run.trained) < 2:
            continue
        for a, b in combinations(run.trained, 2):
            x, y = run.metric(split, a, metric), run.metric(split, b, metric)
            if x is None or y is None:
                continue
            pairs = groups.setdefault((a, b), Pairs(f"head {b} vs head {a}", f"head {a} {split} {metric}",
                                                    f"head {b} {split} {metric}", [], [], []))  # fmt: skip
            pairs.x.append(x)
            pairs.y.append(y)
            pairs.runs.append(run)
    return [groups[k].fitted() for k in sorted(groups)]


def model_name(run: Run) -> str:
    return f"{run.record.backbone}-{run.record.size}"


def family(run: Run, target: str) -> str:
    """Runs that differ only in how many `target` labels they had (and their seed)."""
    others = {f: n for f, n in run.record.n_train.items() if f != target}
    cheap = ", ".join(f"{f}={n}" for f, n in sorted(others.items()))
    return f"{run.record.strategy['name']} {model_name(run)}" + (f" + {cheap}" if cheap else "")


@dataclass
class Curve:
    family: str
    n: list[int]  # target labels
    median: list[float]
    low: list[float]
    high: list[float]
    seeds: list[int]


def learning_curves(runs: list[Run], target: str, metric: str, split: str) -> list[Curve]:
    """Error on `target` against its number of training labels, per family, with the spread over seeds."""
    points: dict[str, dict[int, list[float]]] = {}
    for run in runs:
        n, error = run.record.n_train.get(target), run.metric(split, target, metric)
        if n is not None and error is not None:
            points.setdefault(family(run, target), {}).setdefault(int(n), []).append(error)
    curves = []
    for name in sorted(points):
        ns = sorted(points[name])
        values = [points[name][n] for n in ns]
        curves.append(Curve(name, ns, [median(v) for v in values], [min(v) for v in values],
                            [max(v) for v in values], [len(v) for v in values]))  # fmt: skip
    return curves


def has_cost(run: Run) -> bool:
    costs = run.record.label_cost_cpu_s
    return bool(costs) and None not in costs.values()


def cost_points(runs: list[Run], target: str, metric: str, split: str) -> list[Point]:
    """Each run's total recorded label cost (CPU s) and its `target` error; runs whose data does not record the cost
    of every label (a None cost, see `has_cost`) are left out."""
    points = []
    for run in runs:
        costs = run.record.label_cost_cpu_s
        error = run.metric(split, target, metric)
        if error is None or not has_cost(run):
            continue
        n_train = run.record.n_train
        label = ", ".join(f"{f}={n}" for f, n in sorted(n_train.items())) + f" (seed {run.record.seed})"
        points.append(Point(family(run, target), float(sum(costs.values())), error, label, int(n_train.get(target, 0))))
    return points
