"""A study's `results.md`, plots and `verdicts.json`, made from its kept records alone (`<study>/runs`, committed):
the commands of its README, a verdict per finding (rules: mfff/analyze/verdicts.py), the table of its arms and the
CPU time spent. `mfff-analyze study=experiments/<study>` writes them; nothing in them is typed by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path

from mfff.analyze.collect import collect, row
from mfff.analyze.fit import MIN_POINTS, loglog_fit
from mfff.analyze.report import checked, unit_of
from mfff.analyze.study_spec import Finding, Fit, Part, StudySpec, load_spec
from mfff.analyze.verdicts import (
    INCONCLUSIVE,
    Arm,
    arms_of,
    cka_outcome,
    cka_verdict,
    combined,
    compare_level,
    comparison_verdict,
    fit_verdict,
    matches,
    shrink_verdict,
)
from mfff.errors import UserError
from mfff.runs.kept_records import CONFIG_FILE
from mfff.utils.atomic import atomic_write_text

RESULTS, VERDICTS = "results.md", "verdicts.json"


def readme_commands(study_dir: Path) -> list[str]:
    """The README's sweep commands, or the script that runs a study of single runs (representations)."""
    readme = study_dir / "README.md"
    lines = readme.read_text().splitlines() if readme.is_file() else []
    return [line for line in lines if line.startswith(("mfff-train -m ", "bash experiments/"))]


def _metric_unit(column: str) -> str:
    return unit_of(column.rsplit(".", 1)[-1])


def _number(value: float) -> str:
    return f"{value:.4g}"


def _summary(arm: Arm, column: str) -> str:
    found = arm.summary(column)
    if found is None:
        return ""
    mid, low, high = found
    return _number(mid) if low == high else f"{_number(mid)} [{_number(low)}, {_number(high)}]"


def arms_table(spec: StudySpec, arms: list[Arm]) -> str:
    head = [*spec.arms, "seeds", *(f"{m} ({_metric_unit(m)})" for m in spec.metrics), "CPU s (sum)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm in arms:
        cpu = sum(v for v in arm.values("cpu_s").values())
        cells = [*(str(v) for v in arm.key), str(len(arm.by_seed)), *(_summary(arm, m) for m in spec.metrics),
                 _number(cpu)]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _arm(rows: list[dict], want: dict) -> Arm | None:
    chosen = [r for r in rows if matches(r, want)]
    return arms_of(chosen, [])[0] if chosen else None


def judge_part(part: Part, rows: list[dict]) -> dict:
    """The levels, verdict and key number of one comparison."""
    rows = [r for r in rows if matches(r, part.where)]
    values = sorted({r.get(part.per) for r in rows if r.get(part.per) is not None}) if part.per else [None]
    levels = []
    for value in values:
        at = [r for r in rows if part.per is None or r.get(part.per) == value]
        better, worse = _arm(at, part.better), _arm(at, part.worse)
        level = compare_level(value, better, worse, part.metric) if better and worse else None
        if level is not None:
            levels.append(level)
    verdicts = [comparison_verdict(levels)]
    rho = None
    if part.gain_shrinks:
        shrink, rho = shrink_verdict(levels)
        verdicts.append(shrink)
    what = f"{_describe(part.worse)} / {_describe(part.better)}, median {part.metric}"
    gains = ", ".join(f"{level.gain:.2f}x" + (f" at {part.per}={level.level}" if part.per else "") for level in levels)
    key = f"{what}: {gains or 'no runs of both arms'}" + (f" (Spearman rho of gain vs {part.per}: {rho:.2f})"
                                                           if rho is not None else "")  # fmt: skip
    return {"verdict": combined(verdicts), "key": key, "levels": levels, "rho": rho}


def _describe(want: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in want.items())


def judge(finding: Finding, rows: list[dict]) -> dict:
    parts = [judge_part(p, rows) for p in finding.parts]
    return {"id": finding.id, "claim": finding.claim, "verdict": combined([p["verdict"] for p in parts]),
            "key": "; ".join(p["key"] for p in parts), "parts": parts, "differs": finding.differs}  # fmt: skip


def _levels_table(part: Part, judged: dict) -> str:
    if not judged["levels"]:
        return "No kept records of both arms yet."
    unit = _metric_unit(part.metric)
    head = [part.per or "", f"{_describe(part.better)} ({unit})", f"{_describe(part.worse)} ({unit})", "gain",
            "seeds", "outcome"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for level in judged["levels"]:
        b, w = (f"{_number(m)} [{_number(lo)}, {_number(hi)}]" for m, lo, hi in (level.better, level.worse))
        lines.append(f"| {'' if level.level is None else level.level} | {b} | {w} | {level.gain:.2f}x | {level.seeds} "
                     f"| {level.outcome} |")  # fmt: skip
    return "\n".join(lines)


def fit_runs(fit: Fit, rows: list[dict]) -> dict:
    """The fits of one spec: per value of `by` (with enough points) and pooled, and the pooled fit's verdict."""
    chosen = [r for r in rows if matches(r, fit.where) and r.get(fit.x) and r.get(fit.y)]
    groups: dict[str, list[dict]] = {}
    for r in chosen:
        groups.setdefault(", ".join(f"{c}={r.get(c)}" for c in fit.by) or "all", []).append(r)
    what = f"{fit.y} against {fit.x}"
    found = {}
    for name, members in [*sorted(groups.items()), ("pooled", chosen)] if fit.by else [("pooled", chosen)]:
        if len(members) >= MIN_POINTS:
            found[name] = loglog_fit([r[fit.x] for r in members], [r[fit.y] for r in members], what=f"{what}, {name}")
    pooled = found.get("pooled")
    verdict = fit_verdict(pooled.slope_ci, pooled.r2) if pooled else INCONCLUSIVE
    key = (f"pooled slope {pooled.slope:.2f} [{pooled.slope_ci[0]:.2f}, {pooled.slope_ci[1]:.2f}], R² {pooled.r2:.2f}, "
           f"{pooled.n} runs" if pooled else f"fewer than {MIN_POINTS} runs with both errors")  # fmt: skip
    return {"fits": found, "groups": groups, "points": chosen, "verdict": verdict, "key": key, "what": what}


def _fits_table(judged: dict) -> str:
    lines = ["| runs | n | slope [95% interval] | intercept | R² |", "|---|---|---|---|---|"]
    for name, f in judged["fits"].items():
        lines.append(f"| {name} | {f.n} | {f.slope:.3f} [{f.slope_ci[0]:.3f}, {f.slope_ci[1]:.3f}] | "
                     f"{f.intercept:.3f} | {f.r2:.3f} |")  # fmt: skip
    return "\n".join(lines)


def _cost_section(cost, runs, out_dir: Path) -> str:
    from mfff.analyze import plots
    from mfff.analyze.planner import pareto_front, plan
    from mfff.analyze.studies import cost_points

    unit = unit_of(cost.metric)
    points = cost_points(runs, cost.fidelity, cost.metric, cost.split)
    if not points:
        return "## Cost and accuracy\n\nNo run records the cost of every label.\n"
    plots.cost_plot(points, cost.fidelity, cost.metric, unit, out_dir / "cost_accuracy.png")
    front = "\n".join(
        f"- {p.label}, {p.family}: {p.error:.4g} {unit} for {p.cost:.4g} CPU s" for p in pareto_front(points)
    )
    text = f"## Cost and accuracy\n\n![cost and accuracy](cost_accuracy.png)\n\nPareto front:\n{front}\n"
    if cost.target_error is not None or cost.budget is not None:
        answers = plan(points, cost.target_error, cost.budget)
        text += "\nThe planner:\n" + "\n".join(f"- {a.describe('CPU s', unit)}" for a in answers) + "\n"
    return text


def similarity_claims(spec, study_dir: Path) -> tuple[list[dict], str]:
    """The verdicts of the representation claims, and the section showing the CKA matrix and each comparison."""
    path = study_dir / spec.similarity.file
    if not path.is_file():
        raise UserError(f"{path} does not exist: run the mfff-analyze similarity command of {study_dir}/README.md")
    found = json.loads(path.read_text())
    names = found.get("names") or []
    if len(names) != len(found["linear_cka"]):
        raise UserError(f"{path} has no names for its checkpoints; make it with similarity.names=[...]")
    cka = {(a, b): found["linear_cka"][i][j] for i, a in enumerate(names) for j, b in enumerate(names)}
    lines = ["| | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    lines += [f"| {a} | " + " | ".join(f"{cka[a, b]:.3f}" for b in names) + " |" for a in names]
    picture = Path(spec.similarity.file).with_name("similarity.png")
    sections = [
        f"## Representations\n\nLinear CKA of the backbones' per-atom features ({found['atoms']} atoms; "
        f"`{spec.similarity.file}`):\n\n![similarity]({picture.as_posix()})\n\n" + "\n".join(lines) + "\n"
    ]
    verdicts = []
    for claim in spec.similarity.claims:
        outcomes, keys = [], []
        for part in claim.parts:
            pairs = [tuple(part["higher"]), *[tuple(p) for p in _pairs(part["lower"])]]
            unknown = sorted({n for pair in pairs for n in pair} - set(names))
            if unknown:
                raise UserError(f"{study_dir / 'study.yaml'}: similarity claim {claim.id} names {', '.join(unknown)}, "
                                f"not in {path} (names {', '.join(names)})")  # fmt: skip
            high = cka[pairs[0]]
            for low_pair in pairs[1:]:
                outcomes.append(cka_outcome(high, cka[low_pair]))
                keys.append(f"CKA({', '.join(pairs[0])}) {high:.3f} vs CKA({', '.join(low_pair)}) {cka[low_pair]:.3f}")
        verdict = cka_verdict(outcomes)
        verdicts.append({"id": claim.id, "claim": claim.claim, "verdict": verdict, "key": "; ".join(keys),
                         "parts": [], "differs": claim.differs})  # fmt: skip
        sections.append(f"- ({claim.id}) {claim.claim}: **{verdict}**: " + "; ".join(
            f"{k} ({o})" for k, o in zip(keys, outcomes)))  # fmt: skip
    return verdicts, "\n".join(sections) + "\n"


def _pairs(lower) -> list:
    """`lower` as a list of pairs: one pair [a, b] or several [[a, b], [c, d]]."""
    return [lower] if lower and isinstance(lower[0], str) else list(lower)


def cpu_hours(runs) -> tuple[float, float, int]:
    """(CPU h of the jobs' own stages, CPU h of their distinct pre-trainings, runs without a cpu_s)."""
    own = sum(r.record.cpu_s or 0.0 for r in runs)
    pretrainings = {r.record.pretrain.key or r.record.pretrain.checkpoint: r.record.pretrain.cpu_s or 0.0
                    for r in runs if r.record.pretrain is not None}  # fmt: skip
    missing = sum(r.record.cpu_s is None for r in runs)
    return own / 3600, sum(pretrainings.values()) / 3600, missing


def analysis_cpu_hours(study_dir: Path) -> tuple[float, float]:
    """(own, pre-training) CPU h of the runs in `analysis/runs.csv` (what mfff-analyze runs= wrote for them)."""
    import csv

    table = study_dir / "analysis" / "runs.csv"
    if not table.is_file():
        return 0.0, 0.0
    rows = list(csv.DictReader(table.open()))
    hours = [sum(float(r[k]) for r in rows if r.get(k)) / 3600 for k in ("cpu_s", "pretrain_cpu_s")]
    return hours[0], hours[1]


def _plot_name(plot) -> str:
    where = "_".join(f"{k}-{v}" for k, v in plot.where.items())
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{plot.y}_vs_{plot.x}{'_' + where if where else ''}") + ".png"


CONFIG_PREFIX = "config."


def _columns(spec: StudySpec) -> set[str]:
    wanted = {*spec.arms, *spec.metrics}
    for plot in spec.plots:
        wanted |= {plot.x, plot.y, *plot.by, *plot.where}
    for finding in spec.findings:
        for part in finding.parts:
            wanted |= {part.metric, *part.better, *part.worse, *part.where, *([part.per] if part.per else [])}
    for fit in spec.fits:
        wanted |= {fit.x, fit.y, *fit.by, *fit.where}
    return wanted


def with_config_columns(rows: list[dict], runs, wanted: set[str]) -> None:
    """Fill `config.<key>` columns from each run's kept resolved config.yaml (settings a record does not hold, e.g.
    config.data.sources.gfn2.exclude_molecules_of); a list becomes its text, e.g. [dft]."""
    from omegaconf import OmegaConf

    keys = sorted(c for c in wanted if c.startswith(CONFIG_PREFIX))
    if not keys:
        return
    for out, run in zip(rows, runs):
        path = run.path / CONFIG_FILE
        if not path.is_file():
            raise UserError(f"{path} does not exist; the study's spec reads {keys[0]} from it (rerun that job)")
        config = OmegaConf.load(path)
        for key in keys:
            value = OmegaConf.select(config, key[len(CONFIG_PREFIX) :])
            if OmegaConf.is_config(value):
                value = OmegaConf.to_container(value)
            out[key] = "[" + ",".join(map(str, value)) + "]" if isinstance(value, list) else value


def study_results(study_dir: Path, out_dir: Path | None = None) -> dict:
    """Write results.md, the plots and verdicts.json of `study_dir` into `out_dir` (default: the study dir)."""
    from mfff.analyze import plots

    study_dir = Path(study_dir).resolve()
    out_dir = Path(out_dir or study_dir)
    spec = load_spec(study_dir)
    runs, problems = [], []
    if (study_dir / "runs").is_dir():
        runs, problems = checked(collect([study_dir / "runs"]), require_finished=False)
    elif spec.arms or not spec.similarity:  # a study of representations alone has no runs of its own
        raise UserError(f"{study_dir / 'runs'} does not exist: run the study's commands first (its README)")
    runs = sorted(runs, key=lambda r: r.path.name)
    rows = [row(r, relative_to=study_dir) for r in runs]
    with_config_columns(rows, runs, _columns(spec))
    arms = arms_of(rows, spec.arms)
    judged = [judge(f, rows) for f in spec.findings]
    fitted = [fit_runs(f, rows) for f in spec.fits]
    similar, similar_section = similarity_claims(spec, study_dir) if spec.similarity else ([], "")
    judged += [{"id": f.id, "claim": f.claim, "verdict": j["verdict"], "key": j["key"], "parts": [],
                "differs": f.differs} for f, j in zip(spec.fits, fitted) if f.id]  # fmt: skip
    judged += similar
    own, pre, missing = cpu_hours(runs)
    if not runs and spec.similarity:  # single runs, not kept records: their table from the similarity analysis
        own, pre = analysis_cpu_hours(study_dir)
    name = study_dir.name
    sections = [
        f"# {name}: results\n",
        f"Made by `mfff-analyze study=experiments/{name}` from the {len(runs)} kept records in `runs/` (each job's "
        "`metrics.json` and resolved `config.yaml`); do not edit by hand. Errors are medians over seeds with "
        "[min, max]; the verdict rules are in `mfff/analyze/verdicts.py`.\n",
        "## Commands\n\n```bash\n" + "\n".join(readme_commands(study_dir)) + "\n```\n",
    ]
    if problems:
        sections.append("Left out: " + "; ".join(str(p) for p in problems) + "\n")
    if judged:
        sections.append("## Verdicts\n")
        sections.append("| finding | claim | verdict | key numbers |\n|---|---|---|---|")
        sections.append("\n".join(f"| ({j['id']}) | {j['claim']} | **{j['verdict']}** | {j['key']} |" for j in judged)
                        + "\n")  # fmt: skip
        for finding, j in zip(spec.findings, judged[: len(spec.findings)]):
            sections.append(f"### ({j['id']}) {j['claim']}: {j['verdict']}\n")
            if finding.differs:
                sections.append(f"Our setting: {finding.differs}\n")
            for part, p in zip(finding.parts, j["parts"]):
                where = f" ({_describe(part.where)})" if part.where else ""
                sections.append(f"{_describe(part.better)} against {_describe(part.worse)}{where}, "
                                f"{part.metric}: {p['verdict']}\n\n{_levels_table(part, p)}\n")  # fmt: skip
    if fitted:
        sections.append("## Log-log fits\n")
    for fit, j in zip(spec.fits, fitted):
        file = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"fit_{fit.y}_vs_{fit.x}") + ".png"
        title = f"({fit.id}) {fit.claim}: {j['verdict']}" if fit.id else j["what"]
        differs = f"Our setting: {fit.differs}\n\n" if fit.differs else ""
        sections.append(f"### {title}\n\n{differs}log10({fit.y}) = intercept + slope log10({fit.x}):\n\n"
                        f"{_fits_table(j)}\n")  # fmt: skip
        if j["fits"]:
            plots.fits_plot(j, fit, _metric_unit(fit.y), out_dir / file)
            sections.append(f"![{j['what']}]({file})\n")
    if spec.cost is not None:
        sections.append(_cost_section(spec.cost, runs, out_dir))
    if similar_section:
        sections.append(similar_section)
    sections.append(f"## Every arm\n\n{arms_table(spec, arms)}\n")
    if spec.plots:
        sections.append("## Plots\n")
        for plot in spec.plots:
            file = _plot_name(plot)
            chosen = [r for r in rows if matches(r, plot.where)]
            plots.arms_plot(arms_of(chosen, [*plot.by, plot.x]), plot, _metric_unit(plot.y), out_dir / file)
            sections.append(f"![{plot.y} against {plot.x}]({file})\n")
    missing_line = f" ({missing} records without cpu_s, from before mfff recorded it)" if missing else ""
    sections.append(f"## CPU time\n\n{own + pre:.2f} CPU hours: {own:.2f} in the jobs' own training and evaluation, "
                    f"{pre:.2f} in their distinct pre-trainings (shared with other studies where their settings are "
                    f"the same){missing_line}.\n")  # fmt: skip
    atomic_write_text(out_dir / RESULTS, "\n".join(sections))
    verdicts = [{k: j[k] for k in ("id", "claim", "verdict", "key")} for j in judged]
    atomic_write_text(out_dir / VERDICTS, json.dumps(verdicts, indent=1) + "\n")
    return {"runs": len(runs), "out": out_dir / RESULTS, "verdicts": verdicts}


TABLE_START, TABLE_END = "<!-- findings: made by mfff-analyze studies=experiments -->", "<!-- /findings -->"


def all_studies(experiments: Path) -> dict:
    """Every study under `experiments` with a spec and kept records: its results.md anew, then the findings table of
    `experiments/README.md` (between its markers) from their verdicts."""
    experiments = Path(experiments)
    readme = experiments / "README.md"
    text = readme.read_text() if readme.is_file() else ""
    if TABLE_START not in text or TABLE_END not in text:
        raise UserError(f"{readme} has no findings table markers; add the lines {TABLE_START} and {TABLE_END}")
    done, rows = {}, []
    for study in sorted(p.parent for p in experiments.glob("*/study.yaml")):
        spec = load_spec(study)
        if not (study / "runs").is_dir() and not (spec.similarity and (study / spec.similarity.file).is_file()):
            continue  # nothing run yet
        result = study_results(study)
        done[study.name] = result
        plots = sorted(p.name for p in study.glob("*.png"))
        if not plots and spec.similarity:  # a representation study's plot is the heat map beside its CKA table
            heat_map = (study / spec.similarity.file).with_suffix(".png")
            plots = [str(heat_map.relative_to(study))] if heat_map.is_file() else []
        plot = f"[plot]({study.name}/{plots[0]})" if plots else ""
        for v in result["verdicts"]:
            rows.append(f"| ({v['id']}) | {v['claim']} | **{v['verdict']}** | {v['key']} | "
                        f"[{study.name}]({study.name}/results.md) {plot} |")  # fmt: skip
    table = "\n".join(["| finding | the paper's claim | verdict | key numbers | study, plot |", "|---|---|---|---|---|",
                       *sorted(rows)])  # fmt: skip
    head, rest = text.split(TABLE_START, 1)
    atomic_write_text(readme, f"{head}{TABLE_START}\n{table}\n{TABLE_END}{rest.split(TABLE_END, 1)[1]}")
    return done
