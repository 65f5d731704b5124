"""The console scripts as a user runs them: multirun sweeps, wandb offline files, the packaged configs."""

import json
import subprocess
import sys
import zipfile

from tests.train.conftest import quick_overrides


def _run(args, cwd, env=None):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=900, cwd=cwd, env=env)


def test_tiny_multirun_writes_one_run_dir_per_job(tmp_path):
    overrides = [o for o in quick_overrides(tmp_path, ("gfn2",), n_train=16, epochs=1) if "output_dir" not in o]
    result = _run(
        [
            "-m",
            "mfff.cli.train",
            "-m",
            "seed=0,1",
            "strategy=scratch",
            "data.fidelity=gfn2",
            *overrides,
            f"hydra.sweep.dir={tmp_path}/sweep",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted((tmp_path / "sweep").glob("*/metrics.json"))
    assert len(runs) == 2
    seeds = [json.loads(p.read_text())["seed"] for p in runs]
    assert seeds == [0, 1]
    recorded = [json.loads(p.read_text())["overrides"] for p in runs]
    assert "seed=0" in recorded[0] and "seed=1" in recorded[1]
    assert not (tmp_path / "outputs").exists()  # the sweep dir holds everything; no chdir, no stray dirs


def test_wandb_groups_a_sweep_tags_its_runs_and_logs_their_config_flat(tmp_path):
    """Real offline wandb run files, read back record by record with wandb's protobuf classes."""
    from tests.wandb_records import run_summary

    env = {k: v for k, v in __import__("os").environ.items() if k != "WANDB_API_KEY"}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", HOME=str(tmp_path))
    overrides = [o for o in quick_overrides(tmp_path, ("gfn2",), n_train=16, epochs=2) if "output_dir" not in o]
    sweep = tmp_path / "sweep"
    result = _run(["-m", "mfff.cli.train", "-m", "seed=0,1", "strategy=scratch", "data.fidelity=gfn2", "logger=wandb",
                   *overrides, f"hydra.sweep.dir={sweep}"], tmp_path, env)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for job in (0, 1):
        (run_file,) = (sweep / str(job) / "wandb").glob("offline-run-*/run-*.wandb")  # in the job's own run dir
        run = run_summary(run_file)
        assert run["group"] == str(sweep)  # the sweep's jobs in one group
        assert {"strategy:scratch", "stage:scratch", "backbone:painn", "size:s", "n_train.gfn2:16"} <= set(run["tags"])
        assert run["name"].startswith(f"{job}: ") and f"seed={job}" in run["name"]
        config = run["config"]
        assert config["seed"] == job and config["strategy.name"] == "scratch"
        assert config["data.sources.gfn2.n_train"] == 16 and config["n_train.gfn2"] == 16
        assert config["model.backbone._target_"].endswith("PaiNN") and config["optimizer.lr"] > 0
        record = json.loads((sweep / str(job) / "metrics.json").read_text())
        logged = {k: v for row in run["history"] for k, v in row.items()}  # the last value of each metric
        for key in ("test/gfn2/forces_mae", "test/gfn2/energy_mae", "val/gfn2/forces_mae"):
            split, fidelity, metric = key.split("/")
            assert logged[key] == __import__("pytest").approx(record["metrics"][split][fidelity][metric], rel=1e-5)
        epochs_logged = sorted({row["epoch"] for row in run["history"] if "train/loss_epoch" in row})
        assert epochs_logged == [0, 1] and "train/loss_step" in logged


def test_wheel_ships_configs_and_dataset_and_runs_from_elsewhere(tmp_path):
    repo = __import__("pathlib").Path(__file__).resolve().parents[1]
    built = _run(["-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(repo)], tmp_path)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("mfff-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "mfff/conf/train.yaml",
        "mfff/conf/label/builtin.yaml",
        "mfff/data/builtin/builtin.extxyz.gz",
        "mfff/data/builtin/metadata.json",
        "mfff/data/builtin/README.md",
    } <= names
    target = tmp_path / "site"
    installed = _run(["-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)], tmp_path)
    assert installed.returncode == 0, installed.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**__import__("os").environ, "PYTHONPATH": str(target)}
    probe = _run(
        ["-c", "import mfff.config, mfff.data.builtin as b; print(mfff.config.conf_dir()); print(b.path())"],
        elsewhere,
        env,
    )
    assert probe.returncode == 0, probe.stderr
    assert all(line.startswith(str(target)) for line in probe.stdout.split())
    job = _run(["-m", "mfff.cli.train", "--cfg", "job", "strategy=scratch"], elsewhere, env)
    assert job.returncode == 0 and "mfff.train.strategies.Scratch" in job.stdout, job.stderr[-2000:]


def test_ddp_with_two_real_processes_matches_single_process_evaluation(tmp_path):
    """Metrics reduced over two DDP ranks equal a one-process evaluation of the same checkpoint."""
    run = tmp_path / "ddp"
    result = _run(
        [
            "-m",
            "mfff.cli.train",
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "strategy=scratch",
            "data.fidelity=gfn2",
            *quick_overrides(run, ("gfn2",), n_train=32, epochs=1),
            f"hydra.run.dir={run}",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MEMBER: 2/2" in result.stderr + result.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 2  # 32 structures in batches of 8, split over two ranks by the batch sampler
    evaluation = _run(
        [
            "-m",
            "mfff.cli.eval",
            f"ckpt={metrics['best_checkpoint']}",
            f"hydra.run.dir={tmp_path}/eval",
            "trainer.enable_progress_bar=false",
            "data.sources.gfn2.n_test=32",
        ],
        tmp_path,
    )
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    report = json.loads((tmp_path / "eval" / "eval_metrics.json").read_text())
    for stage in ("test", "test_mol"):
        for name, value in metrics["metrics"][stage]["gfn2"].items():
            assert abs(report["metrics"][stage]["gfn2"][name] - value) <= 1e-4 * abs(value), (stage, name)
