"""Corrupt labels and wrong paths in data files: one UserError naming the structure, the key and the fix, never a
traceback and never a label silently taken as missing (issue 23)."""

import re

import numpy as np
import pytest

from mfff.data.readers import ASEReader, NpzReader
from mfff.errors import UserError

WATER = '3\n{info} pbc="F F F"\nO 0.0 0.0 0.0 {f0}\nH 0.96 0.0 0.0 0.1 0.0 0.0\nH -0.24 0.93 0.0 0.0 0.1 0.0\n'
PROPERTIES = "Properties=species:S:1:pos:R:3:forces:R:3"


def _extxyz(path, second_info: str, second_f0: str = "0.0 0.0 0.1"):
    """Two water frames; the second carries the bad value."""
    good = WATER.format(info=f"energy=-10.0 {PROPERTIES}", f0="0.0 0.0 0.1")
    bad = WATER.format(info=f"{second_info} {PROPERTIES}", f0=second_f0)
    path.write_text(good + bad)
    return path


ENERGY = "structure 1 in {path}: the energy (reader.energy_key=energy) is "
FORCES = "structure 1 in {path}: the forces (reader.forces_key) are NaN/inf on atom(s) [0]"
CASES = [
    ("energy=nan", "0.0 0.0 0.1", ENERGY + "nan; a missing label is an absent key, not NaN/inf"),
    ("energy=inf", "0.0 0.0 0.1", ENERGY + "inf"),
    ("energy=abc", "0.0 0.0 0.1", ENERGY + "'abc', not a number"),
    ("energy=-10.5", "nan 0.0 0.1", FORCES),
    ("energy=-10.5", "0.0 inf 0.1", FORCES),
]


@pytest.mark.parametrize(("info", "f0", "message"), CASES, ids=[f"{c[0]} {c[1]}" for c in CASES])
def test_non_finite_or_non_numeric_labels_are_refused(tmp_path, info, f0, message):
    path = _extxyz(tmp_path / "data.extxyz", info, f0)
    with pytest.raises(UserError, match="^" + re.escape(message.format(path=path))):
        ASEReader(path, energy_key="energy", forces_key="forces").read()


def test_the_good_frames_of_the_same_file_read(tmp_path):
    """The check is on the bad value, not the format: the same file without it reads (the control)."""
    path = _extxyz(tmp_path / "data.extxyz", "energy=-10.5")
    structures = ASEReader(path, energy_key="energy", forces_key="forces").read()
    assert [s.energy for s in structures] == [-10.0, -10.5]
    assert np.isfinite(structures[1].forces).all()


def test_a_directory_given_as_a_data_file_says_a_file_is_expected(tmp_path):
    with pytest.raises(UserError, match=re.escape(f"data file {tmp_path} (from reader.path) is a directory; give a "
                                                  "file in it")):  # fmt: skip
        ASEReader(tmp_path, energy_key="energy").read()


def test_npz_with_a_nan_energy_is_refused(tmp_path):
    path = tmp_path / "ethanol.npz"
    positions = np.array([[[0.0, 0.0, 0.0], [0.96, 0.0, 0.0]]] * 2)  # O-H
    np.savez(path, z=np.array([8, 1]), R=positions, E=np.array([[-1.0], [np.nan]]), F=np.zeros((2, 2, 3)))
    with pytest.raises(UserError, match=re.escape(f"structure 1 in {path} has a non-finite (NaN/inf) energy")):
        NpzReader(path).read()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fidelity": "cc", "molecules": ["C6H6"]}, "molecule 'C6H6' has no cc labels in the built-in dataset; "
         "molecules with them: C2H2, CH3OH, H2CO, H3CNH2, HCN"),
        ({"fidelity": "dft", "molecules": ["CH3OH", "H2O2"]}, "the built-in dataset has no molecule 'H2O2'; its "
         "molecules: C2H2, C2H4,"),
    ],
)  # fmt: skip
def test_builtin_load_refuses_a_molecule_it_cannot_give(kwargs, message):
    from mfff.data import builtin

    with pytest.raises(UserError, match="^" + re.escape(message)):
        builtin.load(**kwargs)


def test_builtin_load_gives_the_named_molecules_with_the_fidelity():
    from mfff.data import builtin

    frames = builtin.load(fidelity="cc", molecules=["HCN", "CH3OH"])
    assert frames and {a.info["molecule"] for a in frames} == {"HCN", "CH3OH"}
    assert all("energy_cc" in a.info for a in frames)


def test_two_atoms_at_one_position_are_named(tmp_path):
    path = _extxyz(tmp_path / "data.extxyz", "energy=-10.5")
    text = path.read_text().splitlines()
    text[-1] = "H 0.96 0.0 0.0 0.0 0.1 0.0"  # the second frame's last H onto the first H
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(
        UserError, match="^" + re.escape(f"structure 1 in {path} has atoms 1 and 2 0.000 Å apart (closer than 0.3 Å)")
    ):
        ASEReader(path, energy_key="energy", forces_key="forces").read()


def test_atoms_close_through_a_periodic_boundary_are_named():
    from mfff.data.readers.base import check_finite_positions
    from mfff.data.structure import Structure

    cell = Structure(numbers=np.array([1, 1]), positions=np.array([[0.1, 0.0, 0.0], [9.95, 0.0, 0.0]]),
                     cell=np.eye(3) * 10.0, pbc=np.ones(3, dtype=bool))  # fmt: skip
    with pytest.raises(UserError, match=re.escape("structure 0 in x.extxyz has atoms 0 and 1 0.150 Å apart")):
        check_finite_positions(cell, 0, "x.extxyz")
    molecule = Structure(numbers=cell.numbers, positions=cell.positions)  # no cell: 9.85 Å apart, fine
    check_finite_positions(molecule, 0, "x.extxyz")
