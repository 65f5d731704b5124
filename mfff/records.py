"""A run's record, `metrics.json`: a typed, versioned dataclass that every writer and reader goes through.

Schema 1 is what mfff wrote before records had a version (no `schema` key); it still loads, upgraded on the way in.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mfff.errors import UserError
from mfff.utils.atomic import atomic_write_text

SCHEMA = 3  # 3 added cpu_s
FILENAME = "metrics.json"
FINISHED, DIVERGED, INTERRUPTED = "finished", "diverged", "interrupted"


def _known(cls, data: dict, where: str, strict: bool) -> dict:
    """`data` restricted to the dataclass's fields; with `strict`, a key it does not know is refused."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown and strict:
        raise UserError(
            f"{where} has keys {', '.join(unknown)} that {cls.__name__} (schema {SCHEMA}) does not know; was it "
            "written by a newer mfff? Upgrade mfff to read it"
        )
    return {k: v for k, v in data.items() if k in names}


def _metric(metrics: dict, split: str, fidelity: str, name: str) -> float | None:
    try:
        value = metrics[split][fidelity][name]
    except KeyError:
        return None
    return float(value) if value is not None and math.isfinite(float(value)) else None


@dataclass
class PretrainRef:
    """The pre-training a fine-tuned run started from: its checkpoint and what its own record said."""

    checkpoint: str | None = None
    strategy: dict = field(default_factory=dict)
    n_train: dict[str, int] = field(default_factory=dict)
    label_cost_cpu_s: dict[str, float | None] = field(default_factory=dict)  # None: not recorded
    epochs: int | None = None
    wall_s: float | None = None
    cpu_s: float | None = None
    metrics: dict = field(default_factory=dict)  # {split: {fidelity: {metric: value}}}
    key: str | None = None  # the pre-training cache key (pretrain_finetune)
    cache: str | None = None  # "built" or "reused"

    @classmethod
    def of(cls, checkpoint: Path, record: RunRecord | None) -> PretrainRef:
        if record is None:
            return cls(str(checkpoint))
        return cls(str(checkpoint), record.strategy, record.n_train, record.label_cost_cpu_s, record.epochs,
                   record.wall_s, record.cpu_s, record.metrics)  # fmt: skip

    def metric(self, split: str, fidelity: str, name: str) -> float | None:
        return _metric(self.metrics, split, fidelity, name)


@dataclass
class RunRecord:
    """What a run (or a pre-training cache entry) recorded. Metrics are nested {split: {fidelity: {name: value}}},
    with stage-level values under the fidelity '_all'; units in `units` (meV, meV/atom, meV/Å)."""

    status: str
    strategy: dict = field(default_factory=dict)  # the strategy's describe(): name, fidelities and its options
    metrics: dict = field(default_factory=dict)
    n_train: dict[str, int] = field(default_factory=dict)  # every label used, over all stages
    label_cost_cpu_s: dict[str, float | None] = field(default_factory=dict)  # None: not recorded
    backbone: str | None = None
    size: str | None = None
    seed: int | None = None
    threads: int | None = None
    overrides: list[str] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)
    config_hash: str | None = None  # mfff.train.settings.config_hash: a rerun sweep skips a finished job with it
    slurm: dict | None = None
    epochs: int | None = None
    steps: int | None = None
    best_epoch: int | None = None
    stopped: str | None = None
    wall_s: float | None = None
    cpu_s: float | None = None  # CPU seconds of the process (schema 3); a resumed run counts its last part only
    resumed_from: str | None = None
    best_checkpoint: str | None = None
    pretrain: PretrainRef | None = None
    diverged: dict | None = None  # where: stage, epoch, step, what
    interrupted: dict | None = None  # where: signal, stage, epoch, step, checkpoint, requeued
    key: str | None = None  # a pre-training cache entry's key, and the settings it hashed
    settings: dict | None = None
    schema: int = SCHEMA

    @property
    def finished(self) -> bool:
        return self.status == FINISHED

    def metric(self, split: str, fidelity: str, name: str) -> float | None:
        """A finite metric value, or None."""
        return _metric(self.metrics, split, fidelity, name)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = FILENAME) -> RunRecord:
        """Parse a record of any schema up to this one; `where` names it in errors."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(f"{where} is not valid JSON ({err}); rerun that job or delete the file") from None
        if not isinstance(data, dict):
            raise UserError(f"{where} is not a run record (a JSON object); was it written by mfff-train?")
        schema = data.pop("schema", 1)
        if not isinstance(schema, int) or schema > SCHEMA:
            raise UserError(f"{where} has record schema {schema!r}; this mfff reads up to {SCHEMA}: upgrade mfff")
        if schema == 1:
            data = _upgrade_from_1(data)
        data = _known(cls, data, where, strict=schema == SCHEMA)
        if "status" not in data:
            raise UserError(f"{where} has no status; was it written by mfff-train?")
        pretrain = data.get("pretrain")
        if pretrain is not None:
            data["pretrain"] = PretrainRef(**_known(PretrainRef, pretrain, f"{where}: pretrain", schema == SCHEMA))
        return cls(**data)

    @classmethod
    def read(cls, path) -> RunRecord:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path} does not exist; give a run dir of mfff-train (it writes {FILENAME})")
        return cls.from_json(path.read_text(), str(path))

    def write(self, path) -> None:
        """Atomically: a reader sees the old record or the new one, never a torn file."""
        atomic_write_text(path, self.to_json())


def _upgrade_from_1(data: dict[str, Any]) -> dict[str, Any]:
    """Records without a schema: pre-training cache entries kept their seed in `settings`, and the earliest had no
    status (finished when they had metrics)."""
    data = dict(data)
    if "status" not in data:
        data["status"] = FINISHED if data.get("metrics") else "unknown"
    settings = data.get("settings")
    if data.get("seed") is None and isinstance(settings, dict) and "seed" in settings:
        data["seed"] = settings["seed"]
    # schema 1 wrote 0.0 for a label cost the data did not record: it was unknown
    data["label_cost_cpu_s"] = _unknown_zero_costs(data.get("label_cost_cpu_s"))
    if isinstance(data.get("pretrain"), dict):
        pretrain = data["pretrain"]
        data["pretrain"] = {**pretrain, "label_cost_cpu_s": _unknown_zero_costs(pretrain.get("label_cost_cpu_s"))}
    return data


def _unknown_zero_costs(costs):
    return {f: (c or None) for f, c in costs.items()} if isinstance(costs, dict) else (costs or {})
