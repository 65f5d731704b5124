"""What a study's results.md shows, read from `experiments/<study>/study.yaml`:

arms: [strategy, n_train.dft]          # row columns (mfff-analyze's runs.csv) that tell arms apart; seeds pooled
metrics: [test.dft.forces_mae, test_mol.dft.forces_mae]   # the table's columns: median [min, max] over seeds
plots:                                 # one plot each: y against x, a line per value of `by`
  - {x: n_train.dft, y: test.dft.forces_mae, by: [strategy]}
findings:
  - id: a
    claim: the paper's claim, in words
    differs: where our setting differs from the paper's
    parts:                             # each a comparison (mfff/analyze/verdicts.py has the rules)
      - {better: {strategy: pretrain_finetune}, worse: {strategy: scratch}, per: n_train.dft,
         metric: test.dft.forces_mae, where: {backbone: painn}, gain_shrinks: true}
"""

from __future__ import annotations

import re
from dataclasses import MISSING, dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from mfff.errors import UserError

SPEC_FILE = "study.yaml"


@dataclass
class Part:
    better: dict
    worse: dict
    metric: str
    per: str | None = None
    where: dict = field(default_factory=dict)
    gain_shrinks: bool = False


@dataclass
class Finding:
    id: str
    claim: str
    parts: list[Part]
    differs: str = ""


@dataclass
class Plot:
    x: str
    y: str
    by: list[str] = field(default_factory=list)
    where: dict = field(default_factory=dict)


@dataclass
class Fit(Plot):
    """log10(y) against log10(x) over runs, one fit per value of `by` and one pooled; a finding when `id` is set."""

    id: str | None = None
    claim: str = ""
    differs: str = ""


@dataclass
class Cost:
    """Error against label CPU cost (mfff-analyze's cost plot and Pareto front), and the planner's answer."""

    fidelity: str
    metric: str = "forces_mae"
    split: str = "test"
    target_error: float | None = None
    budget: float | None = None


@dataclass
class SimilarityClaim:
    """CKA of the `higher` pair of checkpoints (by name) exceeds that of each `lower` pair, in every part."""

    id: str
    claim: str
    parts: list[dict]
    differs: str = ""


@dataclass
class Similarity:
    file: str  # a similarity.json of mfff-analyze (similarity.names set), relative to the study dir
    claims: list[SimilarityClaim] = field(default_factory=list)


@dataclass
class StudySpec:
    arms: list[str]
    metrics: list[str]
    plots: list[Plot] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    fits: list[Fit] = field(default_factory=list)
    cost: Cost | None = None
    similarity: Similarity | None = None


def _fields(cls, data, where: str) -> dict:
    if not isinstance(data, dict):
        raise UserError(f"{where} must be a mapping, got {data!r}")
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; the keys are {', '.join(sorted(known))}")
    missing = [n for n in cls.__dataclass_fields__ if n not in data and _required(cls, n)]
    if missing:
        raise UserError(f"{where}: missing key(s) {', '.join(missing)}")
    return data


def _required(cls, name: str) -> bool:
    f = cls.__dataclass_fields__[name]
    return f.default is MISSING and f.default_factory is MISSING


# a recorded error: <split>.<fidelity>.<metric>, or the pre-training's as pretrain.<split>.<fidelity>.<metric>
METRIC_COLUMN = re.compile(r"(pretrain\.)?[\w-]+\.[\w-]+\.(?P<metric>\w+)")


def _check_metric(column: str, where: str) -> None:
    """Refuse a column that no record holds as an error, so a typo fails before a study's jobs run, not after."""
    from mfff.analyze.report import unit_of

    found = METRIC_COLUMN.fullmatch(str(column))
    if not found:
        raise UserError(f"{where}: {column!r} is not a recorded error; write <split>.<fidelity>.<metric> "
                        "(e.g. test.dft.forces_mae) or pretrain.<split>.<fidelity>.<metric>")  # fmt: skip
    try:
        unit_of(found["metric"])
    except UserError as err:
        raise UserError(f"{where}: {column!r}: {err}") from None


def _check_metrics(spec: StudySpec, path: Path) -> None:
    named = [(m, f"{path}: metrics") for m in spec.metrics]
    named += [(p.y, f"{path}: plots[{i}].y") for i, p in enumerate(spec.plots)]
    named += [(f.y, f"{path}: fits[{i}].y") for i, f in enumerate(spec.fits)]
    for i, finding in enumerate(spec.findings):
        named += [(p.metric, f"{path}: findings[{i}].parts[{j}].metric") for j, p in enumerate(finding.parts)]
    for column, where in named:
        _check_metric(column, where)


def load_spec(study_dir: Path) -> StudySpec:
    path = study_dir / SPEC_FILE
    if not path.is_file():
        raise UserError(f"{path} does not exist; a study dir needs a {SPEC_FILE} (see mfff/analyze/study_spec.py)")
    data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    data = _fields(StudySpec, data, str(path))
    plots = [Plot(**_fields(Plot, p, f"{path}: plots[{i}]")) for i, p in enumerate(data.get("plots") or [])]
    findings = []
    for i, f in enumerate(data.get("findings") or []):
        f = _fields(Finding, f, f"{path}: findings[{i}]")
        parts = [Part(**_fields(Part, p, f"{path}: findings[{i}].parts[{j}]")) for j, p in enumerate(f["parts"])]
        findings.append(Finding(str(f["id"]), f["claim"], parts, f.get("differs", "")))
    fits = [Fit(**_fields(Fit, f, f"{path}: fits[{i}]")) for i, f in enumerate(data.get("fits") or [])]
    cost = Cost(**_fields(Cost, data["cost"], f"{path}: cost")) if data.get("cost") else None
    similarity = None
    if data.get("similarity"):
        given = _fields(Similarity, data["similarity"], f"{path}: similarity")
        claims = [SimilarityClaim(**_fields(SimilarityClaim, c, f"{path}: similarity.claims[{i}]"))
                  for i, c in enumerate(given.get("claims") or [])]  # fmt: skip
        similarity = Similarity(given["file"], claims)
    spec = StudySpec(list(data["arms"]), list(data["metrics"]), plots, findings, fits, cost, similarity)
    _check_metrics(spec, path)
    return spec
