"""Inference models and files: `mfff.load` of a run dir, a checkpoint or an inference file gives a plain nn.Module
(no Lightning, no Hydra) with the checkpoint's predictions; the file is small, versioned and refused when foreign."""

import pickle

import numpy as np
import pytest
import torch
from ase.build import molecule

import mfff
from mfff.errors import UserError
from mfff.inference.files import FORMAT, VERSION
from mfff.inference.model import HeadInfo
from mfff.train.checkpoints import load_module
from tests import physics


@pytest.fixture(scope="module")
def saved(multihead_run, tmp_path_factory):
    return mfff.save(mfff.load(multihead_run[0]), tmp_path_factory.mktemp("inference") / "model.pt")


def test_an_inference_file_predicts_what_the_checkpoint_does_and_is_small(multihead_run, saved):
    run_dir, metrics = multihead_run
    module = load_module(run_dir)
    model = mfff.load(saved)
    assert model.heads == ["gfn1", "gfn2"] and model.dtype == torch.float32
    batch = physics.batch_of([molecule("CH3OH"), molecule("CH4")], model.cutoff).to(dtype=torch.float32)
    for head in model.heads:
        ours, theirs = model(batch, head=head), module.potential(batch, head=head)
        assert torch.equal(ours["energy"], theirs["pred_energy"])
        assert torch.equal(ours["forces"], theirs["pred_forces"])
    checkpoint_size = (run_dir / "checkpoints" / "best.ckpt").stat().st_size
    assert saved.stat().st_size < 0.5 * checkpoint_size  # no optimiser state, no trainer state


def test_the_inference_model_holds_no_lightning_or_hydra_object(saved):
    model = mfff.load(saved)
    modules = {type(m).__module__.split(".")[0] for m in model.modules()}
    assert modules <= {"mfff", "torch"}, modules
    assert not any("lightning" in type(m).__module__ or "omegaconf" in type(m).__module__ for m in model.modules())
    contents = torch.load(saved, weights_only=True)  # plain values only: loadable without unpickling code
    assert contents["format"] == FORMAT and contents["version"] == VERSION
    assert contents["architecture"]["backbone"]["_target_"].startswith("mfff.model.backbones")


def test_heads_their_elements_and_cutoff(saved):
    model = mfff.load(saved)
    info = model.head_info("gfn2")
    assert info == HeadInfo("gfn2", (1, 6, 7, 8), 5.0, None) and info.symbols == ["H", "C", "N", "O"]
    one = mfff.load(saved, head="gfn2")
    assert one.heads == ["gfn2"]
    batch = physics.batch_of([molecule("CH3OH")], model.cutoff).to(dtype=torch.float32)
    assert torch.equal(one(batch)["energy"], model(batch, head="gfn2")["energy"])  # one head needs no name
    with pytest.raises(UserError, match="the model has heads gfn1, gfn2: choose one with head=<name>"):
        model(batch)
    with pytest.raises(UserError, match="the model has no head for fidelity 'dft'; its heads are gfn1, gfn2"):
        mfff.load(saved, head="dft")


def test_float64_gives_the_same_numbers_to_float32_precision(saved):
    single, double = mfff.load(saved), mfff.load(saved, dtype="float64")
    assert double.dtype == torch.float64
    batch = physics.batch_of([molecule("CH3CH2OH")], single.cutoff)
    e64 = double(batch, head="gfn1")["energy"].detach().numpy()
    e32 = single(batch.to(dtype=torch.float32), head="gfn1")["energy"].detach().numpy()
    np.testing.assert_allclose(e32, e64, atol=1e-3)  # eV, float32 rounding of ~200 eV
    with pytest.raises(UserError, match="dtype='float16': choose float32 or float64"):
        mfff.load(saved, dtype="float16")


def test_foreign_and_newer_files_are_refused(saved, tmp_path):
    contents = torch.load(saved, weights_only=True)
    torch.save({**contents, "version": VERSION + 1, "mfff_version": "9.0"}, tmp_path / "newer.pt")
    with pytest.raises(UserError, match=rf"newer.pt is an inference file of version {VERSION + 1} \(mfff 9.0\); "
                                        rf"this mfff reads up to version {VERSION}: upgrade mfff"):  # fmt: skip
        mfff.load(tmp_path / "newer.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="other.pt is neither a checkpoint of mfff-train nor an mfff inference file"):
        mfff.load(tmp_path / "other.pt")
    (tmp_path / "pickled.pt").write_bytes(pickle.dumps({"state_dict": UserError("code")}, protocol=2))
    with pytest.raises(UserError, match="mfff does not unpickle"):
        mfff.load(tmp_path / "pickled.pt")
