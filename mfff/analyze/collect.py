"""Run dirs to one tidy table: a row per run, with its strategy and options, model, data, costs and every metric."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from mfff.errors import UserError
from mfff.records import FILENAME, RunRecord

METRICS_FILE = FILENAME
# the first columns of the table, in this order; the rest (options, sizes, costs, metrics) follow sorted
LEADING = ("run", "status", "strategy", "backbone", "size", "seed", "fidelities", "n_train", "label_cost_cpu_s",
           "epochs", "best_epoch", "stopped", "wall_s", "cpu_s", "pretrain_wall_s", "pretrain_cpu_s")  # fmt: skip


@dataclass
class Run:
    """One run dir and its metrics.json."""

    path: Path
    record: RunRecord

    @property
    def finished(self) -> bool:
        return self.record.finished

    def metric(self, split: str, fidelity: str, name: str, stage: str | None = None) -> float | None:
        """A test / val metric (stage 'pretrain': of the pre-training this run started from)."""
        if stage == "pretrain":
            return self.record.pretrain.metric(split, fidelity, name) if self.record.pretrain else None
        return self.record.metric(split, fidelity, name)

    @property
    def pretrain_fidelities(self) -> list[str]:
        return sorted(self.record.pretrain.n_train) if self.record.pretrain else []

    @property
    def trained(self) -> list[str]:
        return sorted(self.record.strategy.get("fidelities") or [])


@dataclass
class Collection:
    runs: list[Run]
    unfinished: list[Path] = field(default_factory=list)  # job dirs without metrics.json (killed, still running)
    failed: list[Run] = field(default_factory=list)  # metrics.json with a status other than finished


def _job_dirs(root: Path):
    """Dirs under `root` (itself included) that hold a run: metrics.json, or Hydra's record of a started mfff-train
    job (the run dirs of mfff-eval and mfff-analyze are no training runs)."""
    for marker in sorted({*root.rglob(METRICS_FILE), *root.rglob(".hydra/config.yaml")}):
        if marker.name == METRICS_FILE:
            yield marker.parent
        elif _started_by(marker.parent) in ("train", None):
            yield marker.parent.parent


def _started_by(hydra_dir: Path) -> str | None:
    """The root config (train, eval, analyze, label) of the Hydra job that wrote `hydra_dir`, if it says."""
    record = hydra_dir / "hydra.yaml"
    if not record.is_file():
        return None
    for line in record.read_text().splitlines():
        if line.strip().startswith("config_name:"):
            return line.split(":", 1)[1].strip()
    return None


def collect(paths: list[Path]) -> Collection:
    """Every run under `paths` (multirun dirs, sweep roots or run dirs), each once."""
    if not paths:
        raise UserError("give one or more multirun dirs or run dirs to analyse")
    seen: dict[Path, Run | None] = {}
    for path in paths:
        path = Path(path)
        if not path.is_dir():
            raise UserError(f"{path} is not a directory; give a multirun dir (multirun/...) or a run dir")
        found = list(_job_dirs(path))
        if not found:
            raise UserError(f"{path} holds no runs (no {METRICS_FILE} and no .hydra/ below it); is it a sweep dir?")
        for run_dir in found:
            run_dir = run_dir.resolve()
            if run_dir in seen:
                continue
            metrics = run_dir / METRICS_FILE
            if not metrics.is_file():
                seen[run_dir] = None
                continue
            seen[run_dir] = Run(run_dir, RunRecord.read(metrics))
    runs = [r for r in seen.values() if r is not None]
    return Collection(
        runs=[r for r in runs if r.finished],
        unfinished=sorted(p for p, r in seen.items() if r is None),
        failed=[r for r in runs if not r.finished],
    )


def _flat(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif isinstance(value, list):
        out[prefix] = "+".join(str(v) for v in value)
    else:
        out[prefix] = value


def row(run: Run, relative_to: Path | None = None) -> dict:
    """The run as one flat row: strategy options as `strategy.<option>`, `n_train.<fidelity>`,
    `label_cost_cpu_s.<fidelity>` (and their totals), metrics as `<split>.<fidelity>.<metric>` and the
    pre-training's as `pretrain.<split>.<fidelity>.<metric>`."""
    r = run.record
    out: dict = {"run": str(run.path.relative_to(relative_to)) if relative_to else str(run.path),
                 "status": r.status, "backbone": r.backbone, "size": r.size, "seed": r.seed}  # fmt: skip
    strategy = dict(r.strategy)
    out["strategy"] = strategy.pop("name", None)
    out["fidelities"] = "+".join(strategy.pop("fidelities", None) or [])
    _flat("strategy", strategy, out)
    for key, values in (("n_train", r.n_train), ("label_cost_cpu_s", r.label_cost_cpu_s)):
        _flat(key, values, out)
        out[key] = sum(values.values()) if values and None not in values.values() else None
    out.update(epochs=r.epochs, best_epoch=r.best_epoch, stopped=r.stopped, wall_s=r.wall_s, cpu_s=r.cpu_s)
    out["pretrain_wall_s"] = r.pretrain.wall_s if r.pretrain else None
    out["pretrain_cpu_s"] = r.pretrain.cpu_s if r.pretrain else None
    _flat_metrics("", r.metrics, out)
    if r.pretrain:
        _flat_metrics("pretrain.", r.pretrain.metrics, out)
    return out


def _flat_metrics(prefix: str, metrics: dict, out: dict) -> None:
    for split, fidelities in metrics.items():
        for fidelity, values in fidelities.items():
            if fidelity != "_all":
                _flat(f"{prefix}{split}.{fidelity}", values, out)


def columns(rows: list[dict]) -> list[str]:
    present = {k for r in rows for k in r}
    return [c for c in LEADING if c in present] + sorted(present - set(LEADING))


def to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns(rows), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def to_markdown(rows: list[dict], keep: list[str] | None = None) -> str:
    """A Markdown table of `keep` columns (default: all); numbers to 4 significant digits."""
    names = [c for c in (keep or columns(rows)) if any(c in r for r in rows)]

    def cell(value) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in names) + " |" for r in rows]
    return "\n".join(lines)
