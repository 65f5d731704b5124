"""Bad training input gets one clear message naming the file or key and the fix (never a deep traceback)."""

import subprocess
import sys

import ase.io
import numpy as np
import pytest
import torch
from ase.build import molecule

from mfff.data.readers import ASEReader
from mfff.errors import UserError
from mfff.model.backbones import SchNet
from mfff.model.heads import MLPHead
from mfff.model.potential import Potential
from mfff.train.checkpoints import read_checkpoint
from mfff.train.module import MultiFidelityModule
from mfff.train.strategies import MultiHead
from tests import physics
from tests.train.conftest import quick_overrides


def _cli(module, args, cwd):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def test_missing_data_file(tmp_path):
    with pytest.raises(UserError, match="data file .*nope.extxyz \\(from reader.path\\) does not exist"):
        ASEReader(tmp_path / "nope.extxyz").read()


def test_nan_positions(tmp_path):
    atoms = molecule("H2O")
    atoms.positions[1, 0] = np.nan
    atoms.info["energy"] = -1.0
    ase.io.write(tmp_path / "bad.extxyz", atoms)
    with pytest.raises(UserError, match="structure 0 in .*bad.extxyz has non-finite \\(NaN/inf\\) positions"):
        ASEReader(tmp_path / "bad.extxyz", forces_key=None).read()


def test_element_never_seen_in_training():
    potential = Potential(SchNet(n_features=8, n_interactions=1), {"dft": MLPHead(8)}).double().eval()
    potential.mark_known_elements([1, 6, 8])
    with pytest.raises(UserError, match="element\\(s\\) N never appeared in this model's training data \\(H, C, O\\)"):
        potential(physics.batch_of([molecule("H3CNH2")], 5.0))


def test_fidelity_without_head():
    module = MultiFidelityModule(
        {
            "backbone": {"_target_": "mfff.model.backbones.SchNet", "n_features": 8},
            "head": {"_target_": "mfff.model.heads.MLPHead"},
        },
        ["gfn1", "gfn2"],
    )
    with pytest.raises(UserError, match="fidelity 'dft' in the data has no head in this model \\(heads: gfn1, gfn2\\)"):
        module.bind_data({"train": ["gfn2"], "val": ["dft", "gfn2"]})
    with pytest.raises(UserError, match="the model has no head for fidelity 'cc'; its heads are gfn1, gfn2"):
        module.potential.head_index("cc")


def test_multihead_needs_two_fidelities():
    with pytest.raises(UserError, match="strategy=multihead needs at least two fidelities"):
        MultiHead(["dft"])


def test_missing_checkpoint(tmp_path):
    with pytest.raises(UserError, match="checkpoint .*missing.ckpt does not exist"):
        read_checkpoint(tmp_path / "missing.ckpt")


def test_cli_n_train_too_large_is_one_clear_line(tmp_path):
    result = _cli(
        "mfff.cli.train",
        [
            *quick_overrides(tmp_path, ("gfn2",)),
            "strategy=scratch",
            "data.fidelity=gfn2",
            "data.sources.gfn2.n_train=100000",
            f"hydra.run.dir={tmp_path}",
        ],
        tmp_path,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "mfff-train: error: data.sources.gfn2.n_train=100000 but only" in result.stderr
    assert "lower n_train or n_val" in result.stderr and "Traceback" not in result.stderr


def test_cli_unknown_reader(tmp_path):
    result = _cli(
        "mfff.cli.train",
        [
            *quick_overrides(tmp_path, ("gfn2",)),
            "strategy=scratch",
            "data.fidelity=gfn2",
            "data.sources.gfn2.reader._target_=mfff.data.readers.NoSuchReader",
            f"hydra.run.dir={tmp_path}",
        ],
        tmp_path,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        "mfff-train: error: data.sources.gfn2.reader._target_=mfff.data.readers.NoSuchReader cannot be imported; "
        "check the class path (for example mfff.data.readers.ASEReader)"
    )
    assert "Traceback" not in result.stderr


def test_cli_unknown_fidelity_for_scratch(tmp_path):
    result = _cli(
        "mfff.cli.train",
        [f"paths.output_dir={tmp_path}", "strategy=scratch", "data.fidelity=ccsdt", f"hydra.run.dir={tmp_path}"],
        tmp_path,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert (
        "strategy.fidelity names fidelity 'ccsdt', which has no source in data.sources (cc, dft, gfn1, gfn2)"
        in result.stderr
    )


def test_resume_from_a_checkpoint_of_another_backbone(multihead_run, tmp_path):
    _, metrics = multihead_run
    result = _cli(
        "mfff.cli.train",
        [
            *quick_overrides(tmp_path),
            "strategy.fidelities=[gfn1,gfn2]",
            "model/backbone=schnet",
            f"resume={metrics['best_checkpoint']}",
            f"hydra.run.dir={tmp_path}",
        ],
        tmp_path,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "holds a different architecture" in result.stderr
    assert "mfff.model.backbones.PaiNN" in result.stderr and "mfff.model.backbones.SchNet" in result.stderr


def test_checkpoint_loads_with_its_reference_energies(multihead_run):
    _, metrics = multihead_run
    module = MultiFidelityModule.load_from_checkpoint(metrics["best_checkpoint"], map_location="cpu")
    e0 = module.potential.heads["gfn2"].e0
    assert e0[1] != 0 and e0[6] != 0 and torch.all(e0[[2, 3, 4, 5]] == 0)


def test_loss_weight_for_a_fidelity_that_is_no_source(tmp_path):
    from tests.train.conftest import train_quick

    with pytest.raises(UserError, match="loss.per_fidelity names \\['dfft'\\], which are not in data.sources"):
        train_quick(tmp_path, "+loss.per_fidelity={dfft: {energy_weight: 2.0}}", epochs=1)
