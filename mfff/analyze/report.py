"""From run dirs to an analysis dir: the runs table, the fits, the plots and `report.md` that shows them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from mfff.analyze import plots
from mfff.analyze.checkpoints import (
    Predictions,
    atom_features,
    checkpoint_source,
    load_checkpoints,
    predictions,
    test_structures,
)
from mfff.analyze.collect import Collection, Run, collect, row, to_csv, to_markdown
from mfff.analyze.planner import pareto_front, plan
from mfff.analyze.similarity import linear_cka, mean_cca
from mfff.analyze.studies import cost_points, has_cost, heads, learning_curves, transfer
from mfff.errors import UserError
from mfff.inference.files import load
from mfff.records import FILENAME, RunRecord
from mfff.runs.report import UNITS
from mfff.utils.atomic import atomic_write_text

SUMMARY_COLUMNS = ["run", "strategy", "backbone", "size", "seed", "n_train", "label_cost_cpu_s", "best_epoch",
                   "wall_s"]  # fmt: skip


def unit_of(metric: str) -> str:
    quantity, _, statistic = metric.rpartition("_")
    if quantity not in UNITS or statistic not in ("mae", "rmse"):
        raise UserError(f"metric={metric!r} is not one mfff records; choose e.g. forces_mae, energy_per_atom_rmse")
    return UNITS[quantity]


def checked(collection: Collection, require_finished: bool) -> tuple[list[Run], list[str]]:
    """The finished runs and what is wrong with the others, which are skipped, or refused with `require_finished`."""
    problems = [f"{p} (no metrics.json: killed or still running)" for p in collection.unfinished]
    problems += [f"{r.path} (status {r.record.status})" for r in collection.failed]
    if problems and require_finished:
        raise UserError(f"{len(problems)} run(s) did not finish: {'; '.join(problems)}; rerun them, or drop "
                        "require_finished=true to analyse the rest")  # fmt: skip
    if not collection.runs:
        raise UserError("none of the runs finished; nothing to analyse")
    return collection.runs, problems


def target_fidelity(runs: list[Run], target: str | None) -> str:
    """The fidelity the learning curves and costs are about: `target`, or the runs' own `data.fidelity`."""
    if target:
        return target
    found = Counter()
    for run in runs:
        saved = run.path / ".hydra" / "config.yaml"
        if saved.is_file():
            fidelity = OmegaConf.load(saved).get("data", {}).get("fidelity")
            if fidelity:
                found[str(fidelity)] += 1
    if len(found) != 1:
        named = ", ".join(sorted(found)) or "none recorded"
        raise UserError(f"cannot tell the target fidelity from the runs' configs ({named}); set target=<fidelity>")
    return next(iter(found))


def analyse(cfg) -> dict:
    """Write the analysis of `cfg.runs` to `cfg.paths.output_dir`; return what was written and found."""
    paths = [cfg.runs] if isinstance(cfg.runs, str) else list(cfg.runs)
    runs, unfinished = checked(collect([Path(p) for p in paths]), bool(cfg.require_finished))
    out = Path(cfg.paths.output_dir)
    metric, split = str(cfg.metric), str(cfg.split)
    unit = unit_of(metric)
    target = target_fidelity(runs, cfg.target)
    common = Path(*[p for p, *rest in zip(*[r.path.parts for r in runs]) if all(q == p for q in rest)])
    rows = [row(r, relative_to=common) for r in sorted(runs, key=lambda r: str(r.path))]
    atomic_write_text(out / "runs.csv", to_csv(rows))
    atomic_write_text(out / "runs.md", to_markdown(rows) + "\n")
    sections = [f"# mfff-analyze: {len(runs)} runs\n", f"Runs under `{common}`; {split} {metric} in {unit} on "
                f"{target} unless named. Every run: `runs.csv` (one row per run, every metric).\n",
                to_markdown(rows, SUMMARY_COLUMNS + [f"{split}.{target}.{metric}"]) + "\n"]  # fmt: skip
    skipped, fits = [], {}
    for title, found in (("Transfer: fine-tuned against pre-trained error", transfer(runs, metric, split)),
                         ("Heads: one head's error against another's", heads(runs, metric, split))):  # fmt: skip
        if not found:
            continue
        sections.append(f"## {title}\n")
        for pairs in found:
            if pairs.skipped:
                skipped.append(pairs.skipped)
                sections.append(f"- {pairs.name}: no fit ({pairs.skipped})\n")
                continue
            name = _file_name(pairs.name) + ".png"
            plots.pairs_plot(pairs, unit, out / name)
            fits[pairs.name] = pairs.fit.summary()
            f = pairs.fit
            sections.append(
                f"{pairs.name} over {f.n} runs: log10(y) = {f.intercept:.3f} {'-' if f.slope < 0 else '+'} "
                f"{abs(f.slope):.3f} log10(x), "
                f"slope {100 * f.level:.0f}% interval [{f.slope_ci[0]:.3f}, {f.slope_ci[1]:.3f}], R² {f.r2:.3f}\n\n"
                f"![{pairs.name}]({name})\n"
            )
    atomic_write_text(out / "fits.json", json.dumps(fits, indent=1) + "\n")
    curves = learning_curves(runs, target, metric, split)
    if curves:
        plots.learning_curves_plot(curves, target, metric, unit, out / "learning_curves.png")
        sections.append("## Learning curves\n\n![learning curves](learning_curves.png)\n")
    points = cost_points(runs, target, metric, split)
    unknown = sum(not has_cost(run) for run in runs)
    left_out = (f"\n{unknown} of {len(runs)} runs are left out: their data files do not record the cost of every "
                "label (label_cost_cpu_s is null).\n" if unknown and points else "")  # fmt: skip
    if points:
        plots.cost_plot(points, target, metric, unit, out / "cost_accuracy.png")
        front = "\n".join(f"- {p.label}, {p.family}: {p.error:.4g} {unit} for {p.cost:.4g} CPU s"
                          for p in pareto_front(points))  # fmt: skip
        sections.append(f"## Cost and accuracy\n\n![cost and accuracy](cost_accuracy.png)\n{left_out}\nPareto front:\n"
                        f"{front}\n")  # fmt: skip
        if cfg.plan.target_error is not None or cfg.plan.budget is not None:
            answers = plan(points, cfg.plan.target_error, cfg.plan.budget)
            sections.append("Plan:\n" + "\n".join(f"- {a.describe('CPU s', unit)}" for a in answers) + "\n")
    else:
        sections.append("## Cost and accuracy\n\nNo run records a label cost (its data files do not record the cost of "
                        "every label: label_cost_cpu_s is null).\n")  # fmt: skip
    if cfg.similarity.checkpoints:
        sections.append(similarity_section(cfg, out))
    if cfg.parity.checkpoints:
        sections.append(parity_section(cfg, out))
    atomic_write_text(out / "report.md", "\n".join(sections))
    return {"out": out, "runs": len(runs), "unfinished": unfinished, "skipped": skipped, "fits": fits,
            "target": target}  # fmt: skip


def _names(sources: list[str]) -> list[str]:
    """Short names of checkpoints: what their run trained ('pretrain gfn2=500 s1', from metrics.json beside the
    checkpoints), else (or where two would read alike) their paths without the part all of them share."""
    parts = [Path(s).resolve().parts for s in sources]
    shared = 0
    while all(len(p) > shared + 2 for p in parts) and len({p[shared] for p in parts}) == 1:
        shared += 1
    paths = ["/".join(p[shared:]) for p in parts]
    described = [_described(Path(s)) for s in sources]
    if None in described or len(set(described)) < len(described):
        return paths
    return described


def _described(source: Path) -> str | None:
    run_dir = source if source.is_dir() else source.parent.parent  # <run dir>/checkpoints/<name>.ckpt
    metrics = run_dir / FILENAME
    if not metrics.is_file():
        return None
    record = RunRecord.read(metrics)
    counts = ",".join(f"{f}={n}" for f, n in sorted(record.n_train.items()))
    return f"{record.strategy.get('name', 'run')} {counts} s{record.seed}"


def similarity_section(cfg, out: Path) -> str:
    """Linear CKA (and mean CCA) between every pair of checkpoints' per-atom features on the same structures."""
    sources = [checkpoint_source(str(s), "similarity.checkpoints") for s in cfg.similarity.checkpoints]
    if len(sources) < 2:
        raise UserError("similarity.checkpoints needs two or more checkpoints (run dirs or .ckpt files) to compare")
    given = [str(n) for n in cfg.similarity.get("names") or []]
    if given and len(given) != len(sources):
        raise UserError(f"similarity.names has {len(given)} names for {len(sources)} checkpoints; give one a "
                        "checkpoint or none")  # fmt: skip
    models = load_checkpoints(sources, "similarity.checkpoints")
    structures = test_structures(cfg.data, cfg.similarity.fidelity, cfg.similarity.split, cfg.similarity.structures)
    features = [atom_features(m, structures, cfg.similarity.layer) for m in models]
    n = len(sources)
    cka, cca = np.eye(n), np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            cka[i, j] = cka[j, i] = linear_cka(features[i], features[j])
            cca[i, j] = cca[j, i] = mean_cca(features[i], features[j])
    names = given or _names(sources)
    layer = cfg.similarity.layer or "the backbone's output"
    plots.heatmap(names, cka, f"linear CKA at {layer}", out / "similarity.png")
    record = {"checkpoints": sources, "names": names, "layer": cfg.similarity.layer, "atoms": int(features[0].shape[0]),
              "linear_cka": cka.tolist(), "mean_cca": cca.tolist()}  # fmt: skip
    atomic_write_text(out / "similarity.json", json.dumps(record, indent=1) + "\n")
    rows = [{"checkpoint": names[i], **{f"CKA {names[j]}": float(cka[i, j]) for j in range(n)},
             **{f"CCA {names[j]}": float(cca[i, j]) for j in range(n)}} for i in range(n)]  # fmt: skip
    return (f"## Representation similarity\n\nPer-atom features at {layer} on {len(structures)} "
            f"{cfg.similarity.fidelity} {cfg.similarity.split} structures ({features[0].shape[0]} atoms): linear "
            f"CKA (1: the same up to rotation and scale) and mean squared canonical correlation.\n\n"
            f"![similarity](similarity.png)\n\n{to_markdown(rows, list(rows[0]))}\n")  # fmt: skip


def parity_section(cfg, out: Path) -> str:
    """Predicted against labelled energies and forces of each checkpoint's heads, and the errors by molecule."""
    sources = [str(s) for s in cfg.parity.checkpoints]
    names, lines, record = _names(sources), ["## Parity and errors by molecule\n"], {}
    for source, name in zip(sources, names):
        model = load(source, key="parity.checkpoints")
        for fidelity in [f for f in model.heads if f in cfg.data.sources]:
            found = predictions(model, test_structures(cfg.data, fidelity, cfg.parity.split), fidelity)
            stem = _file_name(f"parity_{name}_{fidelity}")
            plots.parity_plot(found.energy_per_atom[:, 0], found.energy_per_atom[:, 1], f"{fidelity} energy",
                              "eV/atom", f"{name}: {fidelity} energies", out / f"{stem}_energy.png")  # fmt: skip
            lines.append(f"{name}, head {fidelity}:\n\n![energies]({stem}_energy.png)\n")
            if len(found.forces):
                plots.parity_plot(found.forces[:, 0], found.forces[:, 1], f"{fidelity} force components", "eV/Å",
                                  f"{name}: {fidelity} forces", out / f"{stem}_forces.png")  # fmt: skip
                lines.append(f"![forces]({stem}_forces.png)\n")
            molecules = by_molecule(found)
            lines.append(to_markdown(molecules, list(molecules[0])) + "\n")
            record.setdefault(source, {})[fidelity] = {"overall": overall(found), "by_molecule": molecules}
    atomic_write_text(out / "parity.json", json.dumps(record, indent=1) + "\n")
    return "\n".join(lines)


def overall(found: Predictions) -> dict:
    """Energy MAE per atom (meV/atom) and force MAE (meV/Å) over every structure, as metrics.json counts them."""
    energy, forces = found.energy_per_atom, found.forces
    return {"structures": len(energy),
            "energy_per_atom_mae": 1e3 * float(np.abs(energy[:, 1] - energy[:, 0]).mean()) if len(energy) else None,
            "forces_mae": 1e3 * float(np.abs(forces[:, 1] - forces[:, 0]).mean()) if len(forces) else None}  # fmt: skip


def by_molecule(found: Predictions) -> list[dict]:
    """Energy MAE per atom (meV/atom) and force MAE (meV/Å) of each molecule."""
    rows = []
    for group in sorted(set(found.groups) | set(found.force_groups)):
        part = Predictions(found.energy_per_atom[[g == group for g in found.groups]],
                           found.forces[[g == group for g in found.force_groups]], [], [])  # fmt: skip
        rows.append({"molecule": group, **overall(part)})
    return rows


def _file_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text)
