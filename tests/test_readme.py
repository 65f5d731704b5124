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
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from mfff.data import builtin
from mfff.train.checks import check_train_config
from tests.helpers import compose_config

README = Path(__file__).resolve().parents[1] / "README.md"
TAGGED = re.compile(
    r"<!-- readme-test (?P<group>[\w-]+)(?: file=(?P<file>\S+))? -->\n```(?P<lang>\w+)\n(?P<code>.*?)```", re.S
)
BLOCK = re.compile(r"```(?P<lang>\w+)\n(?P<code>.*?)```", re.S)


def tagged_blocks(group: str) -> list[dict]:
    return [m.groupdict() for m in TAGGED.finditer(README.read_text()) if m["group"] == group]


def write_user_files(directory: Path) -> None:
    """What a user brings: extxyz files with `energy` and `forces` (as ASE writes a calculator's results)."""
    molecules = ["HCN", "H2CO", "CH3OH"]
    for fidelity, name, per_molecule in (("dft", "dft", 16), ("gfn2", "xtb", 24)):
        for split, part in (("train", slice(0, per_molecule)), ("test", slice(per_molecule, per_molecule + 6))):
            frames = []
            for molecule in molecules:
                for atoms in builtin.load(fidelity, split="train", molecules=[molecule])[part]:
                    labelled = atoms.copy()
                    labelled.info = {"molecule": molecule}
                    labelled.arrays = {k: v for k, v in atoms.arrays.items() if k in ("numbers", "positions")}
                    labelled.calc = SinglePointCalculator(
                        labelled, energy=atoms.info[f"energy_{fidelity}"], forces=atoms.arrays[f"forces_{fidelity}"]
                    )
                    frames.append(labelled)
            (directory / "data").mkdir(exist_ok=True)
            ase.io.write(directory / "data" / f"{name}_{split}.xyz", frames)


def test_own_data_recipe_and_ase_snippet_run_as_pasted(tmp_path):
    blocks = tagged_blocks("own-data")
    assert [b["lang"] for b in blocks] == ["yaml", "bash", "python"]
    write_user_files(tmp_path)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    outputs = []
    for block in blocks:
        if block["file"]:
            assert len(block["code"].splitlines()) <= 15 + 1  # the promise: two fidelities in at most 15 lines
            (tmp_path / block["file"]).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / block["file"]).write_text(block["code"])
            continue
        command = ["bash", "-euo", "pipefail", "-c"] if block["lang"] == "bash" else [sys.executable, "-c"]
        result = subprocess.run([*command, block["code"]], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs.append(result.stdout)
    record = json.loads((tmp_path / "runs" / "mine" / "metrics.json").read_text())
    assert record["status"] == "finished" and record["strategy"]["name"] == "pretrain_finetune"
    assert record["n_train"] == {"xtb": 72 - 8, "dft": 48 - 5}  # 10% of each training file held out (rounded up)
    assert record["pretrain"]["n_train"] == {"xtb": 64}
    assert set(record["metrics"]["test"]) == {"_all", "dft"}  # _all: the test loss
    printed = outputs[0]  # mfff-train's table, then mfff-eval's
    assert "forces MAE [meV/Å]" in printed and str(tmp_path / "runs" / "mine" / "metrics.json") in printed
    assert re.search(r"mfff-eval: .* on every structure of the test sets \(dft: test 18 structures\)", printed)
    assert re.search(r"test\s+dft\s+[\d.]+", printed) and "eval_metrics.json" in printed
    (eval_dir,) = (tmp_path / "outputs" / "eval").iterdir()
    report = json.loads((eval_dir / "eval_metrics.json").read_text())
    assert report["test_sizes"] == {"dft": {"test": 18}}  # the fine-tuned model has the dft head only
    assert report["metrics"]["test"]["dft"]["forces_mae"] == pytest.approx(
        record["metrics"]["test"]["dft"]["forces_mae"], rel=1e-4
    )
    energy_line, *force_lines = outputs[1].strip().splitlines()
    assert energy_line.endswith(" eV") and float(energy_line.split()[0]) < -1000  # a total energy of CH3OH
    assert force_lines[-1].endswith("eV/Å")


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
