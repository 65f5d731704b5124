"""Δ-learning: a head learns DFT minus GFN2-xTB on the conformers both label; the calculator runs tblite and adds
the learned Δ, and mfff-eval reports the total's errors."""

import numpy as np
import pytest
from ase.build import molecule

import mfff
from mfff.analyze.evaluate import evaluate
from mfff.calculator import MFFFCalculator
from mfff.data.structure import Structure
from mfff.errors import UserError
from mfff.label.labellers.xtb import XTBLabeller
from mfff.runs.run import train
from mfff.train.checkpoints import load_module
from mfff.utils.instantiate import instantiate
from tests import physics
from tests.helpers import compose_config
from tests.train.conftest import quick_overrides, train_quick

DELTA = ["strategy=delta", "data.fidelity=dft", "model.dtype=float64"]


@pytest.fixture(scope="module")
def delta_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("delta")
    return run_dir, train_quick(run_dir, *DELTA, fidelities=("dft", "gfn2"), n_train=32, epochs=2)


def test_delta_trains_on_the_difference_of_paired_conformers(delta_run):
    run_dir, record = delta_run
    assert record["strategy"]["base"] == "gfn2" and record["n_train"] == {"dft": 32}
    module = load_module(run_dir)
    assert module.hparams.bases == {"dft": {"fidelity": "gfn2", "labeller": {
        "_target_": "mfff.label.labellers.xtb.XTBLabeller", "method": "GFN2-xTB"}}}  # fmt: skip
    # the head's E0 was fitted on DFT minus GFN2-xTB of the same conformers
    cfg = compose_config("train", [*quick_overrides(run_dir, ("dft", "gfn2"), n_train=32), *DELTA])
    dft, gfn2 = (instantiate(cfg.data.sources[f]) for f in ("dft", "gfn2"))
    dft.subtract(gfn2)
    dft.setup()
    np.testing.assert_allclose(module.potential.heads["dft"].e0.numpy(), dft.stats().e0, rtol=0, atol=1e-9)
    plain = {s.positions.tobytes(): s for s in instantiate(cfg.data.sources["dft"]).all_structures()}
    base = {s.positions.tobytes(): s for s in gfn2.all_structures()}
    for structure in dft.train[:5]:
        key = structure.positions.tobytes()
        assert structure.energy == plain[key].energy - base[key].energy
        np.testing.assert_array_equal(structure.forces, plain[key].forces - base[key].forces)


def test_the_calculator_adds_tblite_to_the_learned_delta(delta_run, tmp_path):
    run_dir, _ = delta_run
    atoms = molecule("CH3OH")
    atoms.positions += np.random.default_rng(0).normal(scale=0.05, size=atoms.positions.shape)
    atoms.calc = MFFFCalculator(run_dir, "dft")
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    base = XTBLabeller("GFN2-xTB").compute(atoms.numbers, atoms.positions)
    potential = load_module(run_dir).potential
    batch = physics.batch_of([atoms], potential.backbone.cutoff)
    out = potential(batch, head="dft")
    assert abs(energy - (base.energy + float(out["pred_energy"].detach()[0]))) < 1e-6  # eV
    assert np.max(np.abs(forces - (base.forces + out["pred_forces"].detach().numpy()))) < 1e-6
    step, worst = 1e-3, 0.0  # forces are -dE/dx of the total (tblite's part included)
    for atom, axis in [(0, 0), (1, 2), (4, 1)]:
        shifted = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[atom, axis] += sign * step
            moved.calc = atoms.calc
            shifted.append(moved.get_potential_energy())
        worst = max(worst, abs(-(shifted[0] - shifted[1]) / (2 * step) - forces[atom, axis]))
    assert worst < 2e-3, worst  # eV/Å
    saved = mfff.save(mfff.load(run_dir), tmp_path / "model.pt")  # the inference file keeps the base method
    assert mfff.load(saved).head_info("dft").base["fidelity"] == "gfn2"
    atoms.calc = MFFFCalculator(saved, "dft")
    assert atoms.get_potential_energy() == pytest.approx(energy, abs=1e-9)


def test_mfff_eval_reports_the_same_errors_on_the_paired_test_set(delta_run, tmp_path):
    run_dir, record = delta_run
    report = evaluate(compose_config("eval", [f"ckpt={run_dir}", f"paths.output_dir={tmp_path}",
                                              "data.sources.dft.n_test=32"]))  # fmt: skip
    assert report["metrics"]["test"]["dft"]["forces_mae"] == pytest.approx(
        record["metrics"]["test"]["dft"]["forces_mae"], rel=1e-6
    )


def test_a_delta_model_without_its_base_method_is_refused(tmp_path):
    overrides = [*quick_overrides(tmp_path, ("dft", "gfn2")), *DELTA]
    with pytest.raises(UserError, match="strategy.base_labeller is not set: a Δ-model needs its base method"):
        train(compose_config("train", [*overrides, "strategy.base_labeller=null"]))
    with pytest.raises(UserError, match=r"strategy.base_labeller \(GFN1-xTB .*\) does not reproduce the gfn2 labels"):
        train(compose_config("train", [*overrides, "strategy.base_labeller.method=GFN1-xTB"]))
    assert not (tmp_path / "checkpoints").exists()


def test_structures_without_a_base_label_on_the_same_geometry_are_refused(tmp_path):
    from mfff.data.readers.base import Reader
    from mfff.data.sources import FidelitySource

    class Fixed(Reader):
        def __init__(self, structures):
            self.structures, self.path = structures, tmp_path / "fixed.extxyz"

        def read(self):
            return self.structures

    water = molecule("H2O")
    ours = Structure(water.numbers, water.positions, energy=-10.0, forces=np.ones((3, 3)))
    theirs = Structure(water.numbers, water.positions + 0.1, energy=-5.0, forces=np.zeros((3, 3)))
    source = FidelitySource("dft", Fixed([ours] * 20), split="random")
    source.subtract(FidelitySource("gfn2", Fixed([theirs] * 20), split="random"))
    with pytest.raises(UserError, match="has a gfn2 label on the same geometry"):
        source.setup()
    paired = FidelitySource("dft", Fixed([ours] * 20), split="random", n_val=1)
    paired.subtract(
        FidelitySource("gfn2", Fixed([Structure(water.numbers, water.positions, energy=-4.0)] * 20), split="random")
    )
    paired.setup()
    assert all(s.energy == -6.0 and s.forces is None for s in paired.train)  # no base forces: no Δ forces
