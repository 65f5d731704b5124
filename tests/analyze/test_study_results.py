"""A study's results.md from its kept records: the arm table, the verdict rules and the regeneration of every
committed results.md."""

from pathlib import Path

import pytest

from mfff.analyze.plots import labelled_log_ticks
from mfff.analyze.study_results import RESULTS, study_results
from mfff.analyze.study_spec import load_spec
from mfff.analyze.verdicts import (
    CONFIRMED,
    HOLDS,
    INCONCLUSIVE,
    NOT_CONFIRMED,
    ONE_SEED,
    REVERSED,
    WITHIN,
    Arm,
    compare_level,
    shrink_verdict,
    spearman,
)
from mfff.errors import UserError
from mfff.records import PretrainRef, RunRecord

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
METRIC = "test.dft.forces_mae"


def arm(*values: float) -> Arm:
    return Arm(("x",), {seed: {METRIC: v} for seed, v in enumerate(values)})


@pytest.mark.parametrize(
    ("better", "worse", "outcome"),
    [
        ((10, 11, 12), (20, 21, 22), HOLDS),  # d = 10 > 2 x spread 2
        ((10, 11, 12), (12.5, 13, 15), HOLDS),  # d = 2 < 2 x 3, but every seed's own pair agrees (3 seeds)
        ((10, 11, 14), (12, 13, 9), WITHIN),  # d = 2 within 2 x 5 and seed 2 disagrees
        ((10, 12), (11, 13), WITHIN),  # two seeds: the pairing rule needs three
        ((20, 21, 22), (10, 11, 12), REVERSED),
        ((10,), (20,), ONE_SEED),  # no spread to judge a difference by
    ],
)
def test_a_level_holds_only_beyond_the_seed_spread_or_seed_by_seed(better, worse, outcome):
    level = compare_level(100, arm(*better), arm(*worse), METRIC)
    assert level.outcome == outcome
    assert level.better[0] == sorted(better)[len(better) // 2] if len(better) % 2 else True


def test_the_gain_must_fall_with_the_level_to_confirm_that_it_shrinks():
    falling = [compare_level(n, arm(10, 10.5, 11), arm(w, w + 0.5, w + 1), METRIC)
               for n, w in ((50, 30), (100, 20), (200, 15), (400, 12))]  # fmt: skip
    assert [round(level.gain, 2) for level in falling] == [2.9, 1.95, 1.48, 1.19]
    assert shrink_verdict(falling) == (CONFIRMED, -1.0)
    assert shrink_verdict(falling[::-1])[0] == CONFIRMED  # the order of the levels is their value, not the list's
    growing = [compare_level(n, arm(10, 10.5, 11), arm(w, w + 0.5, w + 1), METRIC)
               for n, w in ((50, 12), (100, 15), (200, 20))]  # fmt: skip
    assert shrink_verdict(growing)[0] == NOT_CONFIRMED
    assert shrink_verdict(falling[:2])[0] == INCONCLUSIVE  # two levels cannot show a trend
    assert spearman([1, 2, 3, 4], [4, 3, 1, 2]) == pytest.approx(-0.8)


def test_log_ticks_label_the_whole_range_of_a_narrow_axis():
    ticks = labelled_log_ticks(55, 110)  # the old transfer plot labelled only 60 and 100
    assert len(ticks) >= 4 and min(ticks) <= 60 and max(ticks) >= 100 and all(55 <= t <= 110 for t in ticks)
    assert labelled_log_ticks(20, 900) == [20, 50, 100, 200, 500]


SPEC = """arms: [strategy, n_train.dft]
metrics: [test.dft.forces_mae]
plots:
  - {x: n_train.dft, y: test.dft.forces_mae, by: [strategy]}
findings:
  - id: a
    claim: A beats B
    differs: a made-up study
    parts:
      - {better: {strategy: pretrain_finetune}, worse: {strategy: scratch}, per: n_train.dft,
         metric: test.dft.forces_mae, gain_shrinks: true}
"""


def make_study(root: Path, errors: dict) -> Path:
    """A study dir with kept records of made-up errors {(strategy, n): [per seed]}: the aggregation under test,
    not chemistry."""
    study = root / "demo_study"
    (study / "runs").mkdir(parents=True)
    (study / "study.yaml").write_text(SPEC)
    (study / "README.md").write_text("**Run:**\n```bash\nmfff-train -m experiment=demo_study seed=0,1,2\n```\n")
    for (strategy, n), values in errors.items():
        for seed, value in enumerate(values):
            record = RunRecord("finished", strategy={"name": strategy, "fidelities": ["dft"]}, n_train={"dft": n},
                               seed=seed, cpu_s=10.0, metrics={"test": {"dft": {"forces_mae": value}}},
                               config_hash=f"{strategy}{n}{seed}")  # fmt: skip
            record.write(study / "runs" / record.config_hash / "metrics.json")
    return study


def test_results_md_has_the_table_verdict_and_cpu_time_and_is_reproducible(tmp_path):
    errors = {("scratch", 50): [30, 31, 32], ("pretrain_finetune", 50): [10, 11, 12], ("scratch", 200): [20, 21, 22],
              ("pretrain_finetune", 200): [12, 13, 14], ("scratch", 800): [15, 16, 17],
              ("pretrain_finetune", 800): [13, 14, 15]}  # fmt: skip
    study = make_study(tmp_path, errors)
    done = study_results(study)
    text = (study / RESULTS).read_text()
    assert done["runs"] == 18
    assert "| pretrain_finetune | 50 | 3 | 11 [10, 12] | 30 |" in text
    assert "| scratch | 800 | 3 | 16 [15, 17] | 30 |" in text
    # gains 31/11 = 2.82, 21/13 = 1.62, 16/14 = 1.14: beats at 50 and 200, not beyond the spread at 800
    assert "| 800 | 14 [13, 15] | 16 [15, 17] | 1.14x | 3 | holds |" in text  # each seed's pair agrees
    assert done["verdicts"][0]["verdict"] == CONFIRMED
    assert "2.82x at n_train.dft=50, 1.62x at n_train.dft=200, 1.14x at n_train.dft=800" in done["verdicts"][0]["key"]
    assert "mfff-train -m experiment=demo_study seed=0,1,2" in text
    assert "0.05 CPU hours" in text  # 18 x 10 s
    assert (study / "test.dft.forces_mae_vs_n_train.dft.png").stat().st_size > 10_000
    study_results(study, tmp_path / "again")
    assert (tmp_path / "again" / RESULTS).read_text() == text


def test_a_reversed_level_is_not_confirmed(tmp_path):
    study = make_study(tmp_path, {("scratch", 50): [10, 11, 12], ("pretrain_finetune", 50): [20, 21, 22]})
    assert study_results(study)["verdicts"][0]["verdict"] == NOT_CONFIRMED


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("arms: [strategy]\n", "missing key(s) metrics"),
        ("arms: [strategy]\nmetrics: []\nplot: []\n", "unknown key(s) plot"),
        (
            "arms: [a]\nmetrics: []\nfindings:\n  - {id: a, claim: c, parts: [{better: {}, metric: m}]}\n",
            "findings[0].parts[0]: missing key(s) worse",
        ),
        ("arms: [strategy]\nmetrics: [test.dft.forces_mae, label_cost_cpu_s]\n", "metrics: 'label_cost_cpu_s'"),
        ("arms: [strategy]\nmetrics: []\nplots: [{x: n_train.dft, y: test.dft.force_mae}]\n", "plots[0].y"),
        (
            "arms: [a]\nmetrics: []\nfindings:\n  - {id: a, claim: c, parts: [{better: {}, worse: {}, metric: m}]}\n",
            "findings[0].parts[0].metric: 'm' is not a recorded error",
        ),
    ],
)
def test_a_bad_study_spec_names_the_file_and_key(tmp_path, spec, said):
    study = make_study(tmp_path, {("scratch", 50): [1.0]})
    (study / "study.yaml").write_text(spec)
    with pytest.raises(UserError, match=r"study\.yaml") as err:
        study_results(study)
    assert said in str(err.value)


@pytest.mark.parametrize("spec", sorted(EXPERIMENTS.glob("*/study.yaml")), ids=lambda p: p.parent.name)
def test_every_study_spec_names_recorded_errors_before_any_job_runs(spec):
    """A study whose records do not exist yet must not find out after its jobs ran that its spec names a column
    no record holds (partial_replacement once listed label_cost_cpu_s as a metric)."""
    loaded = load_spec(spec.parent)
    assert loaded.metrics or loaded.similarity


COMMITTED = sorted(p.parent.name for p in EXPERIMENTS.glob("*/results.md") if (p.parent / "study.yaml").is_file())


@pytest.mark.parametrize("study", COMMITTED)
def test_every_committed_results_md_is_what_its_kept_records_give(study, tmp_path):
    study_results(EXPERIMENTS / study, tmp_path)
    assert (tmp_path / RESULTS).read_text() == (EXPERIMENTS / study / RESULTS).read_text()


def test_the_findings_table_is_made_from_every_study_with_records(tmp_path):
    from mfff.analyze.study_results import TABLE_END, TABLE_START, all_studies

    make_study(tmp_path, {("scratch", 50): [30, 31, 32], ("pretrain_finetune", 50): [10, 11, 12]})
    (tmp_path / "no_runs_yet").mkdir()
    (tmp_path / "no_runs_yet" / "study.yaml").write_text(SPEC)
    readme = tmp_path / "README.md"
    readme.write_text(f"# Experiments\n\n{TABLE_START}\nold table\n{TABLE_END}\n\nmore text\n")
    done = all_studies(tmp_path)
    assert list(done) == ["demo_study"]
    text = readme.read_text()
    assert "old table" not in text and text.endswith(f"{TABLE_END}\n\nmore text\n")
    row = next(line for line in text.splitlines() if line.startswith("| (a)"))
    assert "**inconclusive**" in row  # one level only: the gain cannot be seen to shrink
    assert "2.82x at n_train.dft=50" in row and "[demo_study](demo_study/results.md)" in row
    readme.write_text("# no markers\n")
    with pytest.raises(UserError, match="findings table markers"):
        all_studies(tmp_path)


def test_a_fit_spec_reports_each_group_and_the_pooled_slope_with_its_verdict(tmp_path):
    study = make_study(tmp_path, {})
    for k, (backbone, scale) in enumerate((("painn", 1.0), ("schnet", 1.3))):
        for j, pre in enumerate((20.0, 40.0, 80.0)):  # y = scale * 2 * x^0.5: slope 0.5 in each group
            record = RunRecord("finished", strategy={"name": "pretrain_finetune", "fidelities": ["dft"]},
                               backbone=backbone, seed=0, cpu_s=1.0, config_hash=f"{k}{j}",
                               metrics={"test": {"dft": {"forces_mae": scale * 2 * pre**0.5}}},
                               pretrain=PretrainRef(metrics={"test": {"gfn2": {"forces_mae": pre}}}))  # fmt: skip
            record.write(study / "runs" / record.config_hash / "metrics.json")
    (study / "study.yaml").write_text(
        "arms: [backbone, run]\nmetrics: [test.dft.forces_mae]\nfits:\n  - {x: pretrain.test.gfn2.forces_mae, "
        "y: test.dft.forces_mae, by: [backbone], id: f, claim: log-log linear}\n"
    )
    done = study_results(study)
    text = (study / RESULTS).read_text()
    assert "| backbone=painn | 3 | 0.500 [0.500, 0.500] |" in text and "| backbone=schnet | 3 | 0.500" in text
    assert "| pooled | 6 | 0.500 [" in text  # the offset between the groups widens the pooled interval, not the slope
    # the same slope in both groups, their offset (1.3x) leaves part of the pooled variance unexplained
    assert [(v["id"], v["claim"]) for v in done["verdicts"]] == [("f", "log-log linear")]
    assert done["verdicts"][0]["key"].startswith("pooled slope 0.50 [")
    assert (study / "fit_test.dft.forces_mae_vs_pretrain.test.gfn2.forces_mae.png").is_file()


def test_config_columns_come_from_each_kept_resolved_config(tmp_path):
    study = make_study(tmp_path, {("pretrain_finetune", 100): [10, 11, 12, 20, 21, 22]})
    for path in sorted((study / "runs").iterdir()):
        excluded = "[dft]" if int(path.name[-1]) < 3 else "[]"  # seeds 0-2 pre-trained apart from the DFT molecules
        (path / "config.yaml").write_text(f"data:\n  sources:\n    gfn2:\n      exclude_molecules_of: {excluded}\n")
        record = RunRecord.read(path / "metrics.json")
        record.seed = int(path.name[-1]) % 3
        record.write(path / "metrics.json")
    key = "config.data.sources.gfn2.exclude_molecules_of"
    (study / "study.yaml").write_text(f"arms: [{key}]\nmetrics: [test.dft.forces_mae]\n")
    study_results(study)
    text = (study / RESULTS).read_text()
    assert "| [dft] | 3 | 11 [10, 12] |" in text and "| [] | 3 | 21 [20, 22] |" in text
    (study / "runs" / path.name / "config.yaml").unlink()
    with pytest.raises(UserError, match="config.yaml does not exist"):
        study_results(study)


def test_a_cost_spec_gives_the_cost_plot_the_pareto_front_and_the_plan(tmp_path):
    study = make_study(tmp_path, {})
    for k, (strategy, n_dft, n_gfn2, error) in enumerate((("scratch", 100, 0, 80.0), ("scratch", 400, 0, 40.0),
                                                           ("multihead", 100, 900, 50.0))):  # fmt: skip
        n_train = {"dft": n_dft, **({"gfn2": n_gfn2} if n_gfn2 else {})}
        record = RunRecord("finished", strategy={"name": strategy, "fidelities": sorted(n_train)}, seed=0, cpu_s=1.0,
                           n_train=n_train, label_cost_cpu_s={f: 2.0 * n if f == "dft" else 0.001 * n
                                                              for f, n in n_train.items()},
                           metrics={"test": {"dft": {"forces_mae": error}}}, config_hash=str(k))  # fmt: skip
        record.write(study / "runs" / record.config_hash / "metrics.json")
    (study / "study.yaml").write_text("arms: [strategy, n_train.dft]\nmetrics: [test.dft.forces_mae]\n"
                                      "cost: {fidelity: dft, target_error: 60}\n")  # fmt: skip
    study_results(study)
    text = (study / RESULTS).read_text()
    front = text.split("Pareto front:\n", 1)[1].split("\n\n", 1)[0]
    assert front.count("- ") == 3  # every run: scratch 100 is cheapest, multihead beats it for 0.9 s, scratch 400 best
    assert "50 meV/Å for 200.9 CPU s" in front and "40 meV/Å for 800 CPU s" in front
    assert "The planner:" in text and "200.9" in text.split("The planner:", 1)[1]
    assert (study / "cost_accuracy.png").is_file()


def test_representation_claims_compare_named_cka_pairs_beyond_a_margin(tmp_path):
    import json

    study = tmp_path / "representations"
    (study / "analysis").mkdir(parents=True)
    names = ["gfn2_s0", "gfn2_s1", "gfn1_s0", "multihead"]
    cka = [[1.0, 0.95, 0.80, 0.90], [0.95, 1.0, 0.82, 0.91], [0.80, 0.82, 1.0, 0.805], [0.90, 0.91, 0.805, 1.0]]
    (study / "analysis" / "similarity.json").write_text(json.dumps({"names": names, "atoms": 100, "linear_cka": cka}))
    (study / "study.yaml").write_text("""arms: []
metrics: []
similarity:
  file: analysis/similarity.json
  claims:
    - {id: R1, claim: method-specific, parts: [{higher: [gfn2_s0, gfn2_s1], lower: [gfn2_s0, gfn1_s0]}]}
    - {id: R2, claim: within the margin, parts: [{higher: [gfn1_s0, multihead], lower: [[gfn2_s0, gfn1_s0]]}]}
    - {id: R3, claim: reversed, parts: [{higher: [gfn2_s0, gfn1_s0], lower: [gfn2_s0, multihead]}]}
""")
    done = study_results(study)
    assert [v["verdict"] for v in done["verdicts"]] == [CONFIRMED, INCONCLUSIVE, NOT_CONFIRMED]
    assert done["verdicts"][0]["key"] == "CKA(gfn2_s0, gfn2_s1) 0.950 vs CKA(gfn2_s0, gfn1_s0) 0.800"
    text = (study / RESULTS).read_text()
    assert "| gfn1_s0 | 0.800 | 0.820 | 1.000 | 0.805 |" in text and "![similarity](analysis/similarity.png)" in text
    (study / "study.yaml").write_text(
        "arms: []\nmetrics: []\nsimilarity:\n  file: analysis/similarity.json\n  claims:\n"
        "    - {id: R1, claim: c, parts: [{higher: [gfn2_s0, dft], lower: [gfn2_s0, gfn1_s0]}]}\n"
    )
    with pytest.raises(UserError, match="names dft, not in"):
        study_results(study)


@pytest.mark.slow
def test_the_representation_study_script_runs_end_to_end_at_tiny_size(tmp_path):
    """experiments/representations/run.sh as written (its six trainings, the CKA and results.md), at debug=quick
    sizes, in a scratch copy of the study dir: the claims resolve to the names it gives."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    study = tmp_path / "representations"
    shutil.copytree(EXPERIMENTS / "representations", study, ignore=shutil.ignore_patterns("analysis", "results.md"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "MFFF_REPRESENTATIONS_RUNS": str(tmp_path / "runs"), "MFFF_REPRESENTATIONS_DIR": str(study),
           "MFFF_EXTRA": "debug=quick trainer.max_epochs=1 "
                         "data.sources.gfn1.n_train=48 data.sources.dft.n_train=48",
           "MFFF_ANALYZE_EXTRA": "similarity.structures=16 data.sources.dft.n_test=16"}  # fmt: skip
    done = subprocess.run(["bash", str(EXPERIMENTS / "representations" / "run.sh")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads((study / "analysis" / "similarity.json").read_text())
    assert found["names"] == ["gfn2_s0", "gfn2_s1", "gfn1_s0", "finetuned_s0", "dft_s0", "multihead_s0"]
    verdicts = json.loads((study / "verdicts.json").read_text())
    assert [v["id"] for v in verdicts] == ["repr-specific", "repr-agnostic", "repr-finetune"]
    assert all(v["verdict"] in (CONFIRMED, NOT_CONFIRMED, INCONCLUSIVE) and "CKA(" in v["key"] for v in verdicts)


def test_two_runs_of_one_seed_in_one_arm_are_refused_not_silently_dropped(tmp_path):
    study = make_study(tmp_path, {("scratch", 50): [30, 31, 32], ("scratch", 100): [20, 21, 22]})
    (study / "study.yaml").write_text("arms: [strategy]\nmetrics: [test.dft.forces_mae]\n")  # n_train.dft left out
    with pytest.raises(UserError, match="have the same seed 0 and the same strategy=scratch: name the setting"):
        study_results(study)
