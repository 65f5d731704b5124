"""Readers convert to eV, Å, eV/Å; checked against hand-computed conversions."""

import ase.io
import h5py
import numpy as np
import pytest
from ase import Atoms

from mfff.data.readers import ANIReader, ASEReader, NpzReader
from mfff.errors import UserError

KCAL_MOL_IN_EV = 0.0433641  # 1 kcal/mol = 4.184 kJ/mol / 96.4853 kJ/mol per eV
HARTREE_IN_EV = 27.211386
BOHR_IN_A = 0.529177


def test_sgdml_npz_kcal_per_mol(tmp_path):
    path = tmp_path / "aspirin.npz"
    R = np.random.default_rng(0).normal(size=(3, 2, 3))
    np.savez(path, z=np.array([6, 1]), R=R, E=np.array([[-100.0], [-101.0], [-102.0]]), F=np.ones((3, 2, 3)) * 2.0)
    structures = NpzReader(path).read()
    assert len(structures) == 3
    assert structures[1].energy == pytest.approx(-101.0 * KCAL_MOL_IN_EV, rel=1e-6)
    assert structures[0].forces[0, 0] == pytest.approx(2.0 * KCAL_MOL_IN_EV, rel=1e-6)
    np.testing.assert_array_equal(structures[2].positions, R[2])
    assert structures[0].group == "aspirin"


def test_rmd17_npz_layout(tmp_path):
    path = tmp_path / "rmd17_ethanol.npz"
    np.savez(
        path,
        nuclear_charges=np.array([8, 1]),
        coords=np.array([[[0.0, 0.0, 0.0], [0.96, 0.0, 0.0]]] * 2),  # O-H
        energies=np.array([-10.0, -20.0]),
        forces=np.zeros((2, 2, 3)),
    )
    structures = NpzReader(path).read()
    assert [s.energy for s in structures] == pytest.approx([-10 * KCAL_MOL_IN_EV, -20 * KCAL_MOL_IN_EV], rel=1e-6)
    assert structures[0].numbers.tolist() == [8, 1]


def test_npz_with_unknown_layout(tmp_path):
    np.savez(tmp_path / "x.npz", pos=np.zeros((1, 1, 3)))
    with pytest.raises(UserError, match="expected the sGDML/rMD17 keys z/R/E/F or nuclear_charges/coords"):
        NpzReader(tmp_path / "x.npz").read()


def test_ani_hdf5_hartree_and_nan_masking(tmp_path):
    path = tmp_path / "ani1x.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("C1H4")
        g["atomic_numbers"] = np.array([6, 1, 1, 1, 1])
        g["coordinates"] = np.random.default_rng(1).normal(size=(3, 5, 3))
        g["wb97x_dz.energy"] = np.array([-40.5, np.nan, -40.4])
        forces = np.full((3, 5, 3), 0.01)
        forces[2] = np.nan
        g["wb97x_dz.forces"] = forces
        g["ccsd(t)_cbs.energy"] = np.array([np.nan, np.nan, -40.6])
    dft = ANIReader(path).read()
    assert len(dft) == 3
    assert dft[0].energy == pytest.approx(-40.5 * HARTREE_IN_EV, rel=1e-6)
    assert np.isnan(dft[1].energy) and dft[1].forces[0, 0] == pytest.approx(0.01 * HARTREE_IN_EV, rel=1e-6)
    assert np.isnan(dft[2].forces).all()
    cc = ANIReader(path, energy_key="ccsd(t)_cbs.energy", forces_key=None).read()
    assert len(cc) == 1 and cc[0].energy == pytest.approx(-40.6 * HARTREE_IN_EV, rel=1e-6) and cc[0].forces is None
    assert cc[0].group == "C1H4"
    with pytest.raises(UserError, match="energy property 'b3lyp.energy' \\(reader.energy_key\\) is in no group"):
        ANIReader(path, energy_key="b3lyp.energy").read()


def test_extxyz_per_fidelity_keys_and_units(tmp_path):
    path = tmp_path / "data.extxyz"
    frames = []
    for k in range(3):
        atoms = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [0, 0.96 + 0.01 * k, 0]])
        atoms.info["energy_dft"] = -76.4 - k
        atoms.info["molecule"] = "water"
        atoms.arrays["forces_dft"] = np.full((3, 3), 0.5)
        if k != 1:
            atoms.info["energy_cc"] = -76.3
        frames.append(atoms)
    ase.io.write(path, frames)
    dft = ASEReader(
        path, energy_key="energy_dft", forces_key="forces_dft", energy_unit="Ha", forces_unit="Ha/Bohr"
    ).read()
    assert dft[2].energy == pytest.approx(-78.4 * HARTREE_IN_EV, rel=1e-6)
    assert dft[0].forces[1, 2] == pytest.approx(0.5 * HARTREE_IN_EV / BOHR_IN_A, rel=1e-5)
    cc = ASEReader(path, energy_key="energy_cc", forces_key=None).read()
    assert len(cc) == 2 and cc[0].group == "water"
    with pytest.raises(UserError, match="energy label key 'energy_pbe' \\(reader.energy_key\\) was not found in"):
        ASEReader(path, energy_key="energy_pbe", forces_key=None).read()
    with pytest.raises(ValueError, match="unknown energy unit 'Ry' in reader.energy_unit"):
        ASEReader(path, energy_unit="Ry")
