"""metrics.json through the typed, versioned `RunRecord`: every record in the repository loads (those of mfff before
records had a schema too), writes round-trip, and a record this mfff cannot read is named with the fix."""

import json
import subprocess
from pathlib import Path

import pytest

from mfff.errors import UserError
from mfff.records import FILENAME, SCHEMA, PretrainRef, RunRecord

ROOT = Path(__file__).resolve().parents[1]
LEGACY = ROOT / "tests" / "fixtures" / "legacy_records"


def committed_records() -> list[Path]:
    """Every metrics.json that git tracks (study records under experiments/ and benchmarks/), and the legacy ones."""
    tracked = subprocess.run(["git", "ls-files", f"*{FILENAME}"], cwd=ROOT, capture_output=True, text=True, check=True)
    return sorted({*(ROOT / line for line in tracked.stdout.split()), *LEGACY.glob("*.json")})


@pytest.mark.parametrize("path", committed_records(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_committed_record_loads(path):
    record = RunRecord.read(path)
    raw = json.loads(path.read_text())
    assert record.status == raw["status"] and record.strategy == raw["strategy"]
    assert record.metrics == raw.get("metrics", {})
    if record.finished:
        assert record.n_train and all(n > 0 for n in record.n_train.values())
        # a fidelity with force labels (CCSD(T) has none)
        test = next(f for f, values in record.metrics["test"].items() if f != "_all" and "forces_mae" in values)
        assert record.metric("test", test, "forces_mae") > 0
    again = RunRecord.from_json(record.to_json())
    assert again == record and json.loads(record.to_json())["schema"] == SCHEMA


def test_legacy_records_are_upgraded():
    entry = RunRecord.read(LEGACY / "pretrain_cache_entry.json")
    assert entry.seed == 0 and entry.key and entry.settings["data"]["batch_size"] == 8  # seed from its settings
    tuned = RunRecord.read(LEGACY / "pretrain_finetune.json")
    assert isinstance(tuned.pretrain, PretrainRef) and tuned.pretrain.cache == "built"
    assert tuned.pretrain.metric("test", "gfn2", "forces_mae") > 0
    assert RunRecord.read(LEGACY / "diverged.json").diverged["what"] == "the training loss"
    assert RunRecord.read(LEGACY / "interrupted.json").interrupted["signal"] == "SIGTERM"
    unversioned = {"metrics": {"test": {"dft": {"forces_mae": 1.0}}}, "strategy": {"name": "pretrain"}}
    assert RunRecord.from_json(json.dumps(unversioned)).finished  # the earliest cache entries had no status


def test_records_this_mfff_cannot_read_are_refused_by_name(tmp_path):
    path = tmp_path / FILENAME
    for text, message in [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "is not a run record"),
        (json.dumps({"schema": SCHEMA + 1, "status": "finished"}), f"schema {SCHEMA + 1}.*upgrade mfff"),
        (json.dumps({"schema": SCHEMA, "status": "finished", "new_field": 1}), "new_field.*newer mfff"),
        (json.dumps({"schema": SCHEMA}), "has no status"),
    ]:
        path.write_text(text)
        with pytest.raises(UserError, match=str(path) + ".*" + message):
            RunRecord.read(path)
    with pytest.raises(UserError, match="does not exist"):
        RunRecord.read(tmp_path / "missing" / FILENAME)


def test_a_written_record_round_trips_and_nonfinite_metrics_read_as_missing(tmp_path):
    record = RunRecord("finished", {"name": "scratch", "fidelities": ["dft"]}, {"test": {"dft": {"forces_mae": 12.5,
                       "energy_mae": float("nan")}}}, n_train={"dft": 50}, pretrain=PretrainRef("x.ckpt"))  # fmt: skip
    record.write(tmp_path / FILENAME)
    loaded = RunRecord.read(tmp_path / FILENAME)
    assert loaded.n_train == {"dft": 50} and loaded.pretrain == PretrainRef("x.ckpt")
    assert loaded.metric("test", "dft", "forces_mae") == 12.5
    assert loaded.metric("test", "dft", "energy_mae") is None and loaded.metric("val", "dft", "forces_mae") is None
    assert [p.name for p in tmp_path.iterdir()] == [FILENAME]  # no temporary file left beside it


def test_a_schema_1_zero_label_cost_reads_as_unknown():
    """Schema 1 wrote 0.0 for a cost the data did not record; no label is free, so it reads as None (unknown)."""
    data = json.loads((LEGACY / "scratch.json").read_text())
    data["label_cost_cpu_s"] = {"dft": 0.0, "gfn2": 12.5}
    record = RunRecord.from_json(json.dumps(data))
    assert record.label_cost_cpu_s == {"dft": None, "gfn2": 12.5}
