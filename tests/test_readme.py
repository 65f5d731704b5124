"""The README's code runs as pasted: the own-data recipe and the ASE snippet for real, on extxyz files this test
writes (real ωB97X and GFN2-xTB labels from the built-in dataset); every other mfff-train line composes."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import ase.io
import hydra
import numpy as np
import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

import mfff
from mfff.train.checks import check_train_config
from tests.helpers import compose_config

README = Path(__file__).resolve().parents[1] / "README.md"
TAGGED = re.compile(
    r"<!-- readme-test (?P<group>[\w-]+)(?: file=(?P<file>\S+))? -->\n```(?P<lang>\w+)\n(?P<code>.*?)```", re.S
)
BLOCK = re.compile(r"```(?P<lang>\w+)\n(?P<code>.*?)```", re.S)


def tagged_blocks(group: str) -> list[dict]:
    return [m.groupdict() for m in TAGGED.finditer(README.read_text()) if m["group"] == group]


def run_blocks(group: str, directory: Path) -> list[subprocess.CompletedProcess]:
    """Run a group's blocks in order in `directory` as a user would paste them: files written, bash and python run.
    Returns each run block's result (stdout, stderr)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    outputs = []
    for block in tagged_blocks(group):
        if block["file"]:
            (directory / block["file"]).parent.mkdir(parents=True, exist_ok=True)
            (directory / block["file"]).write_text(block["code"])
            continue
        command = ["bash", "-euo", "pipefail", "-c"] if block["lang"] == "bash" else [sys.executable, "-c"]
        result = subprocess.run([*command, block["code"]], cwd=directory, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"{block['code']}\n{result.stderr[-3000:]}"
        outputs.append(result)
    return outputs


def test_own_data_recipe_and_ase_snippet_run_as_pasted(tmp_path):
    """Stand-in files exported from the built-in data (real ωB97X and GFN2-xTB labels), the data file, the
    pre-train -> fine-tune run, both evaluations and the ASE snippet, in the README's order."""
    blocks = tagged_blocks("own-data")
    assert [b["lang"] for b in blocks] == ["python", "yaml", "bash", "bash", "python", "python", "python"]
    assert len(blocks[1]["code"].splitlines()) <= 15 + 1  # the promise: two fidelities in at most 15 lines
    exported, trained, test_only, snippet, loaded, _ = run_blocks("own-data", tmp_path)
    printed = trained.stdout
    assert [len(ase.io.read(tmp_path / "data" / f"{n}.xyz", ":")) for n in ("xtb_train", "dft_train", "dft_test")] == [
        72, 48, 18
    ]  # fmt: skip
    record = json.loads((tmp_path / "runs" / "mine" / "metrics.json").read_text())
    assert record["status"] == "finished" and record["strategy"]["name"] == "pretrain_finetune"
    assert record["n_train"] == {"xtb": 72 - 8, "dft": 48 - 5}  # 10% of each training file held out (rounded up)
    assert record["pretrain"]["n_train"] == {"xtb": 64}
    assert set(record["metrics"]["test"]) == {"_all", "dft"}  # _all: the test loss
    assert "forces MAE [meV/Å]" in printed and str(tmp_path / "runs" / "mine" / "metrics.json") in printed
    assert re.search(r"mfff-eval: .* on every structure of the test sets \(dft: test 18 structures\)", printed)
    assert re.search(r"test\s+dft\s+[\d.]+", printed) and "eval_metrics.json" in printed
    reports = [
        json.loads((d / "eval_metrics.json").read_text()) for d in sorted((tmp_path / "outputs" / "eval").iterdir())
    ]
    assert len(reports) == 2  # the data config's test sets, then the test file alone: the same 18 structures
    for report in reports:
        assert report["test_sizes"] == {"dft": {"test": 18}}  # the fine-tuned model has the dft head only
        assert report["metrics"]["test"]["dft"]["forces_mae"] == pytest.approx(
            record["metrics"]["test"]["dft"]["forces_mae"], rel=1e-4
        )
    assert "mfff-eval: " in test_only.stdout and not exported.stdout
    # not on a terminal: no per-step progress bars, in training or evaluation
    assert "it/s]" not in trained.stderr + test_only.stderr
    energy_line, *force_lines = snippet.stdout.strip().splitlines()
    assert energy_line.endswith(" eV") and float(energy_line.split()[0]) < -1000  # a total energy of CH3OH
    assert force_lines[-1].endswith("eV/Å")
    assert loaded.stdout.startswith("['dft'] HeadInfo(name='dft', elements=(1, 6, 7, 8), cutoff=5.0")  # H, C, N, O
    assert mfff.load(tmp_path / "mine.pt").heads == ["dft"]
    relaxed = ase.io.read(tmp_path / "relax.traj", -1)  # the MD recipe: relaxed, then 200 steps logged every 10
    assert np.linalg.norm(relaxed.get_forces(), axis=1).max() < 0.05
    assert len(ase.io.read(tmp_path / "md.traj", ":")) == 21
    log = (tmp_path / "md.log").read_text().splitlines()
    assert len(log) == 22 and float(log[-1].split()[0]) == pytest.approx(0.1)  # header, 21 lines; ps


def test_label_example_runs_as_pasted(tmp_path):
    """The mfff-label example: a tiny real job (tblite GFN2-xTB, PySCF ωB97X), then its summary; a rerun resumes."""
    printed = run_blocks("label", tmp_path)[0].stdout
    frames = ase.io.read(tmp_path / "labelling" / "mine" / "dataset" / "mine.extxyz.gz", ":")
    assert len(frames) == 24 and sum("energy_gfn2" in f.info for f in frames) == 24
    dft = [f for f in frames if "energy_dft" in f.info]
    assert len(dft) == 2 and {f.info["molecule"] for f in dft} == {"H2CO"}
    assert all(f.info["energy_dft"] < -3000 and f.arrays["forces_dft"].shape == (4, 3) for f in dft)  # eV, H2CO
    assert "dft: H2CO shard 0000.json done" in printed
    # the table of labels done / failed / pending, after the run and from summary=true
    assert (
        len(re.findall(r"^gfn2\s+24\s+0\s+0\s", printed, re.M))
        == len(re.findall(r"^dft\s+2\s+0\s+0\s", printed, re.M))
        == 2
    )
    again = run_blocks("label", tmp_path)[0].stdout  # a rerun resumes: every label is done, none is computed again
    assert "shard" not in again and re.search(r"^dft\s+2\s+0\s+0\s", again, re.M), again
    assert ase.io.read(tmp_path / "labelling" / "mine" / "dataset" / "mine.extxyz.gz", ":")[0].info == frames[0].info


def readme_commands() -> list[str]:
    """Every mfff-train line of the README's bash blocks that is not run for real above."""
    lines = [
        line.strip()
        for block in BLOCK.finditer(README.read_text())
        if block["lang"] == "bash"
        for line in block["code"].splitlines()
        if line.strip().startswith("mfff-train") and "--config-dir" not in line
    ]
    return lines


def first_of_each_sweep(override: str) -> str:
    """`key=a,b` -> `key=a` (the first job of a sweep), leaving commas inside [] and {} alone."""
    key, _, value = override.partition("=")
    depth, cut = 0, len(value)
    for i, char in enumerate(value):
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            cut = i
            break
    return f"{key}={value[:cut]}"


@pytest.mark.parametrize("command", readme_commands())
def test_every_readme_training_command_composes(command, tmp_path):
    words = [w for w in shlex.split(command.split("#")[0])[1:] if w != "-m"]
    overrides = [first_of_each_sweep(w) for w in words] + [f"paths.output_dir={tmp_path}"]
    cfg = compose_config("train", overrides, hydra=True)
    # the launcher's settings resolve (site values from the root's `cluster` node), and so do settings that read
    # them (trainer=ddp_slurm's devices and nodes)
    HydraConfig.instance().set_config(cfg)
    try:
        launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
        trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    finally:
        HydraConfig.instance().cfg = None  # no Hydra runtime leaks into other tests
    assert launcher["_target_"].startswith("hydra")
    if "hydra/launcher=slurm" in command:
        assert launcher["signal_delay_s"] > 0 and launcher["tasks_per_node"] >= 1
    if "trainer=ddp_slurm" in command:
        assert (trainer["devices"], trainer["num_nodes"]) == (launcher["tasks_per_node"], launcher["nodes"])
    with open_dict(cfg):
        del cfg["hydra"]
    check_train_config(cfg)
    strategy = hydra.utils.instantiate(cfg.strategy, _convert_="all")
    assert strategy.describe()["name"] == cfg.strategy.name
