"""The ASE calculator: the chosen head's energy, forces that are -dE/dx, stress that is the strain derivative, a
neighbour list kept between steps, batch evaluation, and a clear error for what it cannot evaluate."""

import numpy as np
import pytest
import torch
from ase.build import molecule

import mfff
from mfff.calculator import MFFFCalculator
from mfff.errors import UserError
from mfff.train.checkpoints import load_module
from tests import physics


def test_calculator_energy_forces_and_heads(multihead_run):
    _, metrics = multihead_run
    atoms = molecule("CH3OH")
    atoms.rattle(0.05, seed=0)
    energies = {}
    module = load_module(metrics["best_checkpoint"])
    batch = physics.batch_of([atoms], module.potential.backbone.cutoff).to(dtype=torch.float32)
    for fidelity in ("gfn1", "gfn2"):
        atoms.calc = MFFFCalculator(metrics["best_checkpoint"], head=fidelity)
        energies[fidelity] = atoms.get_potential_energy()
        forces = atoms.get_forces()
        assert forces.shape == (6, 3) and np.all(np.isfinite(forces))
        trained = module.potential(batch, head=fidelity)  # what the training module predicts, to float32 precision
        assert energies[fidelity] == pytest.approx(float(trained["pred_energy"].detach()[0]), abs=1e-6)
        np.testing.assert_allclose(forces, trained["pred_forces"].detach().numpy(), atol=1e-6)
        rotated = atoms.copy()
        rotated.rotate(73, (1, 2, 3), center="COM")
        rotation = rotated.positions[1:] - rotated.positions[0]
        matrix = np.linalg.lstsq(atoms.positions[1:] - atoms.positions[0], rotation, rcond=None)[0]
        rotated.calc = atoms.calc
        assert rotated.get_potential_energy() == pytest.approx(energies[fidelity], abs=2e-3)  # float32 model
        np.testing.assert_allclose(rotated.get_forces(), forces @ matrix, atol=2e-4)
    assert abs(energies["gfn1"] - energies["gfn2"]) > 0.1  # eV: two fidelities, two energies
    assert atoms.calc.heads() == ["gfn1", "gfn2"]
    with pytest.raises(UserError, match="the model has no head for fidelity 'dft'; its heads are gfn1, gfn2"):
        MFFFCalculator(metrics["best_checkpoint"], head="dft")


def _water(**kwargs):
    from ase import Atoms

    return Atoms("OH2", positions=kwargs.pop("positions", [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]), **kwargs)


@pytest.mark.parametrize(
    ("atoms", "message"),
    [
        (molecule("SiH4"), "element(s) Si never appeared in this model's training data (H, C, N, O)"),
        (
            _water(positions=[[0, 0, 0], [0, 0, 0], [-0.24, 0.93, 0]]),
            "the atoms given to MFFFCalculator (H2O) has atoms 0 and 1 0.000 Å apart (closer than 0.3 Å)",
        ),
        (
            _water(positions=[[0, 0, 0], [np.nan, 0, 0], [-0.24, 0.93, 0]]),
            "the atoms given to MFFFCalculator (H2O) has non-finite (NaN/inf) positions",
        ),
        (
            _water(pbc=True),
            "the atoms given to MFFFCalculator (H2O) is periodic (pbc=[True, True, True]) but its cell has no volume",
        ),
    ],
    ids=["unknown element", "overlapping atoms", "NaN position", "periodic without a cell"],
)
def test_calculator_refuses_atoms_it_cannot_evaluate(multihead_run, atoms, message):
    """Each of these gave NaN, a silently wrong number or a vesin traceback before."""
    atoms.calc = MFFFCalculator(multihead_run[1]["best_checkpoint"], head="gfn2")
    with pytest.raises(UserError) as error:
        atoms.get_potential_energy()
    assert str(error.value).startswith(message)


def test_calculator_needs_a_head_only_where_there_is_a_choice(multihead_run, tmp_path):
    with pytest.raises(UserError, match="the model has heads gfn1, gfn2: choose one with head=<name>"):
        MFFFCalculator(multihead_run[1]["best_checkpoint"])
    with pytest.raises(UserError, match="model=/nonexistent does not exist"):
        MFFFCalculator("/nonexistent")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(UserError, match="is not a readable PyTorch checkpoint"):
        MFFFCalculator(tmp_path / "notes.txt")
    one_head = MFFFCalculator(mfff.load(multihead_run[0], head="gfn1"))  # a model of one head needs no choice
    assert one_head.heads() == ["gfn1"]


@pytest.fixture(scope="module")
def model64(multihead_run):
    return mfff.load(multihead_run[0], dtype="float64")


def _finite_difference(energy_at, step=1e-4):
    return (energy_at(step) - energy_at(-step)) / (2 * step)


def test_forces_are_minus_the_energy_gradient_in_float64(model64):
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=1)
    atoms.calc = MFFFCalculator(model64, head="gfn2")
    forces = atoms.get_forces()
    for atom, axis in [(0, 0), (2, 1), (5, 2), (8, 0)]:

        def energy_at(step, atom=atom, axis=axis):
            moved = atoms.copy()
            moved.positions[atom, axis] += step
            moved.calc = MFFFCalculator(model64, head="gfn2")
            return moved.get_potential_energy()

        assert -_finite_difference(energy_at) == pytest.approx(forces[atom, axis], abs=1e-6)


def test_stress_is_the_strain_derivative_of_the_energy_on_a_periodic_cell(model64):
    """A cell smaller than twice the cutoff (5 Å): atoms see their own periodic images."""
    atoms = molecule("CH3OH")
    atoms.cell, atoms.pbc = [[6.0, 0, 0], [0.5, 6.5, 0], [0, 0.3, 7.0]], True
    atoms.center()
    atoms.rattle(0.05, seed=2)
    atoms.calc = MFFFCalculator(model64, head="gfn2")
    stress = atoms.get_stress(voigt=False)
    assert np.abs(stress).max() > 1e-4  # eV/Å^3: a real signal to compare
    for i, j in [(0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2)]:

        def energy_at(step, i=i, j=j):
            strain = np.eye(3)
            strain[i, j] += step / 2
            strain[j, i] += step / 2
            strained = atoms.copy()
            strained.set_cell(atoms.cell[:] @ strain, scale_atoms=True)
            strained.calc = MFFFCalculator(model64, head="gfn2")
            return strained.get_potential_energy()

        assert _finite_difference(energy_at) / atoms.get_volume() == pytest.approx(stress[i, j], abs=1e-7)
    with pytest.raises(UserError, match=r"stress needs a cell periodic in all three directions; the atoms \(CH4O\)"):
        molecule("CH3OH", calculator=MFFFCalculator(model64, head="gfn2")).get_stress()


def test_the_kept_neighbour_list_gives_a_fresh_lists_numbers_and_is_rebuilt_only_when_needed(model64):
    kept, fresh = MFFFCalculator(model64, head="gfn2", skin=1.0), MFFFCalculator(model64, head="gfn2", skin=0)
    atoms, rng = molecule("CH3CH2OH"), np.random.default_rng(0)
    for _ in range(40):  # a random walk: atoms drift, pairs enter and leave the cutoff
        atoms.positions += rng.normal(scale=0.03, size=atoms.positions.shape)
        copy = atoms.copy()
        atoms.calc, copy.calc = kept, fresh
        assert atoms.get_potential_energy() == pytest.approx(copy.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(atoms.get_forces(), copy.get_forces(), atol=1e-10)
    assert fresh.neighbour_list.rebuilds == 40
    assert 1 < kept.neighbour_list.rebuilds < 10  # rebuilt when an atom had moved 0.5 Å, not at every step
    stretched = atoms.copy()
    stretched.positions[0] += [0.6, 0, 0]  # more than half the skin at once: rebuilt at once
    stretched.calc = kept
    before = kept.neighbour_list.rebuilds
    stretched.get_potential_energy()
    assert kept.neighbour_list.rebuilds == before + 1


def test_batch_evaluation_gives_each_structures_own_numbers(model64):
    calc = MFFFCalculator(model64, head="gfn1")
    images = [molecule(name) for name in ("CH4", "CH3OH", "NH3", "H2O", "CH3CH2OH")]
    for k, atoms in enumerate(images):
        atoms.rattle(0.02, seed=k)
    results = calc.predict(images, batch_size=2)
    assert len(results) == len(images)
    for atoms, result in zip(images, results):
        atoms.calc = MFFFCalculator(model64, head="gfn1")
        assert result["energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-9)
        np.testing.assert_allclose(result["forces"], atoms.get_forces(), atol=1e-9)


def test_the_exact_state_check_finds_the_changes_ases_own_check_finds(model64):
    from ase.calculators.calculator import compare_atoms

    calc = MFFFCalculator(model64, head="gfn2")
    atoms = molecule("CH3CH2OH", calculator=calc)
    atoms.get_potential_energy()
    edits = {
        "nothing": lambda a: None,
        "positions": lambda a: a.positions.__setitem__((0, 0), a.positions[0, 0] + 1e-9),
        "numbers": lambda a: a.numbers.__setitem__(0, 7),
        "cell": lambda a: a.set_cell([10.0, 10.0, 10.0]),
        "pbc": lambda a: a.set_pbc([True, False, False]),
        "initial_magmoms": lambda a: a.set_initial_magnetic_moments([1.0] + [0.0] * (len(a) - 1)),
    }
    for name, edit in edits.items():
        changed = atoms.copy()
        edit(changed)
        found = calc.check_state(changed)
        assert sorted(found) == sorted(compare_atoms(calc.atoms, changed)), name
        assert found == ([] if name == "nothing" else [name])
    before = calc.results["energy"]
    moved = atoms.copy()
    moved.positions[0, 0] += 0.05
    moved.calc = calc
    assert moved.get_potential_energy() != before  # a change is recomputed
    assert atoms.get_potential_energy() != moved.get_potential_energy()
