"""`mfff-analyze` on two tiny real multiruns (pre-train -> fine-tune, multi-head): the table, fits, PNGs, report."""

import csv
import json

import numpy as np
import pytest
from matplotlib.image import imread

from tests.test_cli import _run
from tests.train.conftest import QUICK

SIZES = [f"data.sources.{f}.{k}={n}" for f in ("gfn2", "dft") for k, n in (("n_val", 16), ("n_test", 16))]


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("analyze")
    finetune = ["-m", "mfff.cli.train", "-m", "strategy=pretrain_finetune", "seed=0,1,2",
                "data.sources.dft.n_train=8,16", "data.sources.gfn2.n_train=32",
                "+strategy.pretrain.trainer.max_epochs=1", "trainer.max_epochs=1",
                f"paths.cache_dir={tmp}/cache", f"hydra.sweep.dir={tmp}/finetune", *SIZES, *QUICK]  # fmt: skip
    multihead = ["-m", "mfff.cli.train", "-m", "strategy=multihead", "strategy.fidelities=[dft,gfn2]", "seed=0,1,2",
                 "data.sources.dft.n_train=16", "data.sources.gfn2.n_train=32", "trainer.max_epochs=1",
                 f"hydra.sweep.dir={tmp}/multihead", *SIZES, *QUICK]  # fmt: skip
    other_size = ["-m", "mfff.cli.train", "strategy=scratch", "model/size=m", "data.sources.dft.n_train=16",
                  "trainer.max_epochs=1", f"hydra.run.dir={tmp}/size_m", *SIZES,
                  *[q for q in QUICK if not q.startswith("model/size")]]  # fmt: skip
    for command in (finetune, multihead, other_size):
        result = _run(command, tmp)
        assert result.returncode == 0, result.stderr[-3000:]
    return tmp


def test_analyze_writes_the_table_fits_plots_and_report(sweeps):
    out = sweeps / "analysis"
    result = _run(["-m", "mfff.cli.analyze", f"runs=[{sweeps}/finetune,{sweeps}/multihead]", "plan.budget=1e9",
                   f"hydra.run.dir={out}"], sweeps)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"mfff-analyze: 9 runs (target dft); wrote {out / 'report.md'}" in result.stdout
    rows = list(csv.DictReader((out / "runs.csv").open()))
    assert len(rows) == 9 and sorted(r["strategy"] for r in rows).count("pretrain_finetune") == 6
    finetuned = [r for r in rows if r["strategy"] == "pretrain_finetune"]
    assert sorted(r["n_train.dft"] for r in finetuned) == ["16"] * 3 + ["8"] * 3
    assert all(float(r["pretrain.test.gfn2.forces_mae"]) > 0 and float(r["test.dft.forces_mae"]) > 0 for r in finetuned)
    fits = json.loads((out / "fits.json").read_text())
    # one transfer fit per fine-tuning set (8 and 16 labels), each over the three seeds' pre-trainings
    assert fits["fine-tuned dft (n=8) vs pre-trained gfn2"]["n"] == 3 and fits["head gfn2 vs head dft"]["n"] == 3
    assert fits["fine-tuned dft (n=16) vs pre-trained gfn2"]["n"] == 3
    for fit in fits.values():
        assert fit["slope_ci"][0] <= fit["slope"] <= fit["slope_ci"][1] and fit["r2"] <= 1.0
    report = (out / "report.md").read_text()
    pictures = sorted(p.name for p in out.glob("*.png"))
    assert pictures == ["cost_accuracy.png", "fine-tuned_dft__n_16__vs_pre-trained_gfn2.png",
                        "fine-tuned_dft__n_8__vs_pre-trained_gfn2.png", "head_gfn2_vs_head_dft.png",
                        "learning_curves.png"]  # fmt: skip
    for name in pictures:
        assert f"]({name})" in report
        assert imread(out / name).shape == (480, 640, 4)  # an RGBA image of the promised size
    assert "Pareto front:" in report and "Plan:" in report and "[measured]" in report


def test_unfinished_runs_are_listed_then_skipped_or_refused(sweeps, tmp_path):
    (sweeps / "finetune" / "0" / "metrics.json").rename(tmp_path / "kept.json")  # as if job 0 had been killed
    try:
        result = _run(["-m", "mfff.cli.analyze", f"runs={sweeps}/finetune", f"hydra.run.dir={tmp_path}/a"], sweeps)
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"skipping {sweeps / 'finetune' / '0'} (no metrics.json" in result.stdout
        assert "mfff-analyze: 5 runs" in result.stdout
        refused = _run(["-m", "mfff.cli.analyze", f"runs={sweeps}/finetune", "require_finished=true",
                        f"hydra.run.dir={tmp_path}/b"], sweeps)  # fmt: skip
        assert refused.returncode == 2, refused.stderr[-3000:]
        assert refused.stderr.strip().splitlines()[-1].startswith("mfff-analyze: error: 1 run(s) did not finish: ")
    finally:
        (tmp_path / "kept.json").rename(sweeps / "finetune" / "0" / "metrics.json")


def test_similarity_and_parity_from_checkpoints(sweeps):
    out, pretrained = sweeps / "checkpoints", sorted(str(p) for p in (sweeps / "cache" / "pretrain").glob("*[!k]"))
    finetuned, multihead = sweeps / "finetune" / "0", sweeps / "multihead" / "0"
    started_from = json.loads((finetuned / "metrics.json").read_text())["pretrain"]["checkpoint"]
    # <run dir>:pretrain is the pre-training that run started from: the same checkpoint as the cache entry's
    other_seed = next(p for p in pretrained if not started_from.startswith(p))  # cache keys sort in any order
    similarity = [started_from, f"'{finetuned}:pretrain'", other_seed, str(finetuned), str(multihead)]
    names = "similarity.names=[a,a_again,b,finetuned,multihead]"
    result = _run(["-m", "mfff.cli.analyze", f"runs={sweeps}/multihead", f"parity.checkpoints=[{multihead}]",
                   f"similarity.checkpoints=[{','.join(similarity)}]", names, "data.sources.dft.n_test=16",
                   "data.sources.gfn2.n_test=16", f"hydra.run.dir={out}"], sweeps)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads((out / "similarity.json").read_text())
    cka = np.array(found["linear_cka"])
    assert found["atoms"] > 40 and cka.shape == (5, 5)  # the 16 dft test structures
    np.testing.assert_allclose(cka, cka.T)
    np.testing.assert_allclose(np.diag(cka), 1.0)
    assert cka[0, 1] == pytest.approx(1.0)  # one checkpoint twice: the same features
    assert found["checkpoints"][1] == started_from and found["names"] == ["a", "a_again", "b", "finetuned", "multihead"]
    assert np.all((cka > 0) & (cka <= 1 + 1e-9)) and cka[0, 2] < 1 - 1e-6  # two seeds' pre-trainings differ
    assert imread(out / "similarity.png").shape == (480, 640, 4)
    # the parity predictions reproduce the run's own test metrics, on the same 16 test structures per head
    parity = json.loads((out / "parity.json").read_text())[str(multihead)]
    metrics = json.loads((multihead / "metrics.json").read_text())["metrics"]["test"]
    for fidelity in ("dft", "gfn2"):
        assert parity[fidelity]["overall"]["structures"] == 16
        for key in ("forces_mae", "energy_per_atom_mae"):
            assert parity[fidelity]["overall"][key] == pytest.approx(metrics[fidelity][key], rel=1e-4), (fidelity, key)
        molecules = parity[fidelity]["by_molecule"]
        assert sum(m["structures"] for m in molecules) == 16  # by molecule: the same errors, split up
        weighted = sum(m["structures"] * m["energy_per_atom_mae"] for m in molecules) / 16
        assert weighted == pytest.approx(parity[fidelity]["overall"]["energy_per_atom_mae"], rel=1e-9)
        for kind in ("energy", "forces"):
            picture = out / f"parity_multihead_dft_16_gfn2_32_s0_{fidelity}_{kind}.png"  # named by what it trained
            assert imread(picture).shape == (480, 640, 4)
    mixed = f"similarity.checkpoints=[{multihead},{sweeps}/size_m]"
    refused = _run(["-m", "mfff.cli.analyze", f"runs={sweeps}/multihead", mixed, f"hydra.run.dir={out}-m"], sweeps)
    assert refused.returncode == 2, refused.stderr[-3000:]
    (line,) = [x for x in refused.stderr.splitlines() if x.startswith("mfff-analyze: error:")]
    assert "size_m has another backbone or size than" in line and "compare checkpoints of one architecture" in line


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["runs=nowhere"], "nowhere is not a directory"),
        (["runs=empty"], "empty holds no runs"),
        (["runs=finetune", "metric=forces_median"], "metric='forces_median' is not one mfff records"),
        ([], "runs is required"),
    ],
)
def test_bad_input_is_one_line(sweeps, tmp_path, arguments, message):
    (sweeps / "empty").mkdir(exist_ok=True)
    result = _run(["-m", "mfff.cli.analyze", *arguments, f"hydra.run.dir={tmp_path}/out"], sweeps)
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = [x for x in result.stderr.strip().splitlines() if x.startswith("mfff-analyze: error:")]
    assert message in line
