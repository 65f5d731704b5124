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


def test_wandb_logger_writes_real_offline_run_files(tmp_path):
    env = {k: v for k, v in __import__("os").environ.items() if k != "WANDB_API_KEY"}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", HOME=str(tmp_path))
    result = _run(
        [
            "-m",
            "mfff.cli.train",
            "strategy=scratch",
            "data.fidelity=gfn2",
            "logger=wandb",
            *quick_overrides(tmp_path, ("gfn2",), n_train=16, epochs=2),
            f"hydra.run.dir={tmp_path}",
        ],
        tmp_path,
        env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    files = list(runs[0].glob("run-*.wandb"))
    assert len(files) == 1 and files[0].stat().st_size > 1000
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "csv" / "metrics.csv").is_file()
    # an offline run keeps its config and history as records in the .wandb file: the logged metrics and the
    # hyper-parameters must be in it
    records = files[0].read_bytes()
    for expected in (b"train/loss", b"val/gfn2/forces_mae", b"test/gfn2/forces_mae", b"fidelities", b"optimizer"):
        assert expected in records, expected


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
