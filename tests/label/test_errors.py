"""Bad labelling input gets one clear message naming the key or file and the fix."""

import subprocess
import sys

import pytest
from ase import Atoms

from mfff.errors import UserError
from mfff.label.labellers.pyscf import CCSDTLabeller, SCFLabeller
from mfff.label.labellers.xtb import XTBLabeller
from mfff.label.pipeline import LabelJob
from tests.label.conftest import tiny_label_config


def test_unknown_xtb_method():
    with pytest.raises(UserError, match="unknown xTB method 'GFN3-xTB'.*GFN1-xTB, GFN2-xTB"):
        XTBLabeller(method="GFN3-xTB")


def test_unknown_method_in_config_names_the_fidelity_key(tmp_path):
    cfg = tiny_label_config(tmp_path, "label.fidelities.gfn2.labeller.method=GFN9-xTB").label
    with pytest.raises(UserError, match="label.fidelities.gfn2: unknown xTB method 'GFN9-xTB'"):
        LabelJob(cfg)


def test_unknown_labeller_class(tmp_path):
    cfg = tiny_label_config(tmp_path, "label.fidelities.gfn2.labeller._target_=mfff.label.labellers.nope.Foo").label
    with pytest.raises(UserError, match="label.fidelities.gfn2.labeller cannot be built"):
        LabelJob(cfg)


def test_basis_pyscf_lacks():
    with pytest.raises(UserError, match="PySCF has no basis set named '6-31gxx'"):
        SCFLabeller(basis="6-31gxx", xc="pbe")


def test_unknown_functional():
    with pytest.raises(UserError, match="libxc does not know the functional 'wb97q'"):
        SCFLabeller(basis="sto-3g", xc="wb97q")


def test_element_a_method_cannot_do(tmp_path):
    uranium = tmp_path / "uo2.xyz"
    Atoms("UO2", positions=[[0, 0, 0], [0, 0, 1.8], [0, 0, -1.8]]).write(uranium)
    cfg = tiny_label_config(
        tmp_path, f"label.molecules=[{{name: UO2, file: {uranium}}}]", "label.splits.held_out_molecules=[]"
    ).label
    with pytest.raises(UserError, match="cannot label element\\(s\\) U found in molecule UO2"):
        LabelJob(cfg)
    with pytest.raises(UserError, match="cannot label element\\(s\\) U"):
        CCSDTLabeller(basis="cc-pvdz").check_elements([92, 8, 8], "molecule UO2")


def test_empty_molecule_list(tmp_path):
    cfg = tiny_label_config(tmp_path, "label.molecules=[]").label
    with pytest.raises(UserError, match="label.molecules is empty"):
        LabelJob(cfg)


def test_unknown_molecule_name_and_missing_file(tmp_path):
    with pytest.raises(UserError, match="label.molecules\\[0\\]: 'Unobtainium' is not an ASE built-in"):
        LabelJob(tiny_label_config(tmp_path, "label.molecules=[Unobtainium]").label)
    with pytest.raises(UserError, match="starting geometry file .*nope.xyz does not exist"):
        LabelJob(tiny_label_config(tmp_path, f"label.molecules=[{{file: {tmp_path}/nope.xyz}}]").label)


def test_held_out_molecule_must_exist(tmp_path):
    with pytest.raises(UserError, match="held_out_molecules\\[0\\]='C6H6' is not in label.molecules"):
        LabelJob(tiny_label_config(tmp_path, "label.splits.held_out_molecules=[C6H6]").label)


def test_unwritable_output_directory_via_cli(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mfff.cli.label",
            "label=tiny",
            f"label.work_dir={blocker}/work",
            f"label.dataset_dir={tmp_path}/ds",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"cannot write to label.work_dir={blocker}/work" in result.stderr
    assert "choose a writable directory" in result.stderr
    assert "Traceback" not in result.stderr
