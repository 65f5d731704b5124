"""Run dirs to a table: each finished run once, flat columns, unfinished and failed runs told apart, bad paths named."""

import csv
import io
import json

import pytest

from mfff.analyze.collect import collect, row, to_csv, to_markdown
from mfff.errors import UserError


def _record(strategy, seed, n_train, test, pretrain=None, status="finished"):
    return {"status": status, "strategy": {"name": strategy, "fidelities": sorted(test), "use_forces": True,
            "finetune": {"lr_scale": 0.2}}, "backbone": "painn", "size": "s", "seed": seed, "n_train": n_train,
            "label_cost_cpu_s": {f: 2.0 * n for f, n in n_train.items()}, "epochs": 5, "best_epoch": 4,
            "stopped": "max_epochs=5 reached", "wall_s": 12.5,
            "metrics": {"test": {"_all": {"loss": 1.0}, **{f: {"forces_mae": v} for f, v in test.items()}}},
            "pretrain": pretrain}  # fmt: skip


def _write(directory, record, program="train"):
    directory.mkdir(parents=True)
    (directory / ".hydra").mkdir()
    (directory / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (directory / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  job:\n    name: app\n    config_name: {program}\n")
    if record is not None:
        (directory / "metrics.json").write_text(json.dumps(record))


@pytest.fixture
def sweep(tmp_path):
    pretrain = {"n_train": {"gfn2": 100}, "wall_s": 30.0, "metrics": {"test": {"gfn2": {"forces_mae": 40.0}}}}
    _write(tmp_path / "sweep" / "0", _record("pretrain_finetune", 0, {"gfn2": 100, "dft": 10}, {"dft": 90.0},
                                              pretrain))  # fmt: skip
    _write(tmp_path / "sweep" / "1", _record("multihead", 1, {"gfn2": 100, "dft": 10}, {"dft": 80.0, "gfn2": 50.0}))
    _write(tmp_path / "sweep" / "2", None)  # started, killed before metrics.json
    _write(tmp_path / "sweep" / "3", _record("scratch", 0, {"dft": 10}, {"dft": 200.0}, status="diverged"))
    _write(tmp_path / "sweep" / "eval", None, program="eval")  # mfff-eval's run dir: no training run
    _write(tmp_path / "sweep" / "analysis", None, program="analyze")
    return tmp_path / "sweep"


def test_collect_reads_every_run_once_and_tells_unfinished_and_failed_apart(sweep):
    found = collect([sweep, sweep / "0", sweep / "1"])  # a run dir inside a given sweep is not counted twice
    assert sorted(r.path.name for r in found.runs) == ["0", "1"]
    assert [p.name for p in found.unfinished] == ["2"] and [r.path.name for r in found.failed] == ["3"]
    (ptf,) = [r for r in found.runs if r.path.name == "0"]
    assert ptf.metric("test", "gfn2", "forces_mae", stage="pretrain") == 40.0 and ptf.pretrain_fidelities == ["gfn2"]
    assert ptf.metric("test", "dft", "forces_mae") == 90.0 and ptf.metric("test", "cc", "forces_mae") is None


def test_rows_are_flat_and_the_table_formats_round_trip(sweep):
    rows = [row(r, relative_to=sweep) for r in sorted(collect([sweep]).runs, key=lambda r: r.path.name)]
    ptf, multihead = rows
    assert ptf["run"] == "0" and ptf["strategy"] == "pretrain_finetune" and ptf["fidelities"] == "dft"
    assert ptf["strategy.finetune.lr_scale"] == 0.2 and ptf["n_train.dft"] == 10 and ptf["n_train"] == 110
    assert ptf["label_cost_cpu_s"] == 220.0 and ptf["test.dft.forces_mae"] == 90.0
    assert ptf["pretrain.test.gfn2.forces_mae"] == 40.0 and ptf["pretrain_wall_s"] == 30.0
    assert multihead["test.gfn2.forces_mae"] == 50.0 and "test._all.loss" not in multihead
    table = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert [t["test.dft.forces_mae"] for t in table] == ["90.0", "80.0"]
    assert list(table[0])[:4] == ["run", "status", "strategy", "backbone"]
    markdown = to_markdown(rows, ["run", "strategy", "test.dft.forces_mae", "nothing"]).splitlines()
    assert markdown[0] == "| run | strategy | test.dft.forces_mae |" and markdown[2] == "| 0 | pretrain_finetune | 90 |"


def test_bad_paths_are_named(tmp_path, sweep):
    with pytest.raises(UserError, match="missing is not a directory"):
        collect([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty holds no runs"):
        collect([tmp_path / "empty"])
    (sweep / "1" / "metrics.json").write_text("{not json")
    with pytest.raises(UserError, match="1/metrics.json is not valid JSON"):
        collect([sweep])


def test_an_unrecorded_label_cost_stays_unknown_and_leaves_the_cost_plot(tmp_path):
    from mfff.analyze.studies import cost_points

    known = _record("scratch", 0, {"dft": 10}, {"dft": 90.0})
    unknown = {**_record("scratch", 1, {"dft": 10}, {"dft": 95.0}), "schema": 2, "label_cost_cpu_s": {"dft": None}}
    _write(tmp_path / "runs" / "0", known)
    _write(tmp_path / "runs" / "1", unknown)
    runs = collect([tmp_path / "runs"]).runs
    rows = {r.record.seed: row(r) for r in runs}
    assert rows[0]["label_cost_cpu_s"] == 20.0 and rows[1]["label_cost_cpu_s"] is None
    points = cost_points(runs, "dft", "forces_mae", "test")
    assert [(p.cost, p.error) for p in points] == [(20.0, 90.0)]
