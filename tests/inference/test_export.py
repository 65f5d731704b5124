"""mfff-export to metatomic: each head is the variant energy/<head>; the file runs in a process that cannot import
mfff, Lightning, Hydra or OmegaConf and gives the checkpoint's energies, forces and stress to 1e-6 eV (float64) for
each backbone and head; what cannot be exported faithfully is refused in one line."""

import json
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase.build import molecule

import mfff
from mfff.calculator import MFFFCalculator
from mfff.cli.export import main as export_main
from mfff.inference.model import InferenceModel
from mfff.model.build import build_potential

pytest.importorskip("metatomic.torch", reason="the export extra: pip install 'mfff[export]'")
from mfff.inference.metatomic import export  # noqa: E402

RUNNER = Path(__file__).with_name("metatomic_run.py")
BACKBONES = {
    "PaiNN": {"_target_": "mfff.model.backbones.PaiNN", "n_features": 16, "n_interactions": 2},
    "SchNet": {"_target_": "mfff.model.backbones.SchNet", "n_features": 16, "n_interactions": 2},
    "MACE": {"_target_": "mfff.model.backbones.mace.MACE", "n_channels": 8, "n_interactions": 2, "max_L": 1},
}


def random_model(backbone: dict, heads=("dft", "gfn2"), seed=0) -> InferenceModel:
    """A float64 model with random weights and distinct E0 per head: enough to compare two implementations."""
    torch.manual_seed(seed)
    architecture = {"backbone": backbone, "head": {"_target_": "mfff.model.heads.MLPHead"}}
    potential = build_potential(architecture, list(heads)).double()
    for k, head in enumerate(potential.heads.values()):
        e0 = np.zeros(119)
        e0[[1, 6, 7, 8]] = np.array([-13.6, -1029.0, -1485.0, -2042.0]) * (1 + 0.01 * k)
        head.set_reference(e0, 0.5 + k)
    potential.mark_known_elements([1, 6, 7, 8])
    return InferenceModel(potential, architecture).eval()


def structures(directory: Path) -> list[Path]:
    ethanol = molecule("CH3CH2OH")
    ethanol.rattle(0.05, seed=1)
    box = molecule("CH3OH")  # periodic, smaller than twice the cutoff: stress, and atoms seeing their images
    box.cell, box.pbc = [[6.0, 0, 0], [0.5, 6.5, 0], [0, 0.3, 7.0]], True
    box.center()
    box.rattle(0.05, seed=2)
    paths = [directory / "ethanol.extxyz", directory / "box.extxyz"]
    for atoms, path in zip((ethanol, box), paths):
        ase.io.write(path, atoms)
    return paths


def run_metatomic(jobs: list[dict], directory: Path) -> dict:
    request, results = directory / "request.json", directory / "results.npz"
    request.write_text(json.dumps(jobs))
    done = subprocess.run([sys.executable, str(RUNNER), str(request), str(results)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(np.load(results))


def test_exported_models_give_mfffs_numbers_without_mfff(tmp_path):
    paths, jobs, expected = structures(tmp_path), [], []
    for name, backbone in BACKBONES.items():
        model = random_model(backbone)
        exported = export(model, ["dft", "gfn2"], tmp_path / f"{name}.pt")
        for head in ("dft", "gfn2"):
            for path in paths:
                jobs.append({"model": str(exported), "variant": head, "structure": str(path)})
                atoms = ase.io.read(path)
                atoms.calc = MFFFCalculator(model, head=head)
                stress = atoms.get_stress() if atoms.pbc.all() else None
                expected.append((name, head, atoms.get_potential_energy(), atoms.get_forces(), stress))
    found = run_metatomic(jobs, tmp_path)
    energies = {}
    for k, (name, head, energy, forces, stress) in enumerate(expected):
        assert abs(float(found[f"{k}_energy"]) - energy) < 1e-6, (name, head)  # eV
        np.testing.assert_allclose(found[f"{k}_forces"], forces, atol=1e-6, err_msg=f"{name} {head}")
        if stress is not None:
            np.testing.assert_allclose(found[f"{k}_stress"], stress, atol=1e-8, err_msg=f"{name} {head}")
        energies.setdefault((name, k % 2), []).append(energy)
    assert all(abs(dft - gfn2) > 1.0 for dft, gfn2 in energies.values())  # the variants are two heads


def test_the_cli_exports_a_trained_run(multihead_run, tmp_path, capsys):
    run_dir = multihead_run[0]
    export_main([str(run_dir), "--heads", "gfn2", "-o", str(tmp_path / "gfn2.pt"), "--dtype", "float64"])
    assert capsys.readouterr().out.strip() == f"mfff-export: wrote {tmp_path / 'gfn2.pt'} (metatomic; heads gfn2)"
    (path,) = structures(tmp_path)[:1]
    # one head exported: it is also the default `energy`
    found = run_metatomic([{"model": str(tmp_path / "gfn2.pt"), "variant": None, "structure": str(path)}], tmp_path)
    atoms = ase.io.read(path)
    atoms.calc = MFFFCalculator(run_dir, head="gfn2", dtype="float64")
    assert abs(float(found["0_energy"]) - atoms.get_potential_energy()) < 1e-6
    export_main([str(run_dir), "--heads", "gfn1", "--format", "mfff", "-o", str(tmp_path / "gfn1.pt")])
    assert mfff.load(tmp_path / "gfn1.pt").heads == ["gfn1"]


def _cli_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as stopped:
        export_main(argv)
    assert stopped.value.code == 2
    return capsys.readouterr().err.strip()


def test_what_cannot_be_exported_is_refused_in_one_line(multihead_run, tmp_path, capsys):
    run_dir = str(multihead_run[0])
    assert _cli_error([run_dir, "--heads", "dft", "-o", str(tmp_path / "x.pt")], capsys) == (
        "mfff-export: error: the model has no head for fidelity 'dft'; its heads are gfn1, gfn2"
    )
    (tmp_path / "notes.ckpt").write_text("not a model")
    assert _cli_error([str(tmp_path / "notes.ckpt"), "-o", str(tmp_path / "x.pt")], capsys).startswith(
        f"mfff-export: error: {tmp_path / 'notes.ckpt'} is not a readable PyTorch checkpoint"
    )
    model = random_model(BACKBONES["PaiNN"])
    model.bases = {"dft": {"fidelity": "gfn2", "labeller": {"_target_": "mfff.label.labellers.xtb.XTBLabeller"}}}
    with pytest.raises(mfff.errors.UserError, match=r"head 'dft' learned a difference to gfn2 \(Δ-learning\): its "
                       "base method is not part of the model, so an export would give wrong energies"):  # fmt: skip
        export(model, ["dft"], tmp_path / "delta.pt")
    assert not (tmp_path / "x.pt").exists() and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow
def test_an_export_runs_in_a_venv_of_torch_metatomic_and_ase_only(tmp_path):
    """A venv with only torch, metatomic-torch, metatomic-ase and ase (pip, from PyPI): the exported file gives
    mfff's numbers there (about 2 minutes, mostly pip)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, f"torch=={torch.__version__.split('+')[0]}"], check=True, timeout=1800)
    subprocess.run([*pip, "metatomic-torch==0.1.19", "metatomic-ase==0.1.4", "ase"], check=True, timeout=1800)
    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list"], capture_output=True, text=True)
    assert not any(name in listed.stdout.lower() for name in ("mfff", "lightning", "hydra", "omegaconf"))
    (path,) = structures(tmp_path)[:1]
    model = random_model(BACKBONES["PaiNN"])
    exported = export(model, ["dft", "gfn2"], tmp_path / "model.pt")
    request = tmp_path / "request.json"
    request.write_text(
        json.dumps([{"model": str(exported), "variant": h, "structure": str(path)} for h in ("dft", "gfn2")])
    )
    done = subprocess.run([str(venv / "bin" / "python"), str(RUNNER), str(request), str(tmp_path / "out.npz")],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = np.load(tmp_path / "out.npz")
    for k, head in enumerate(("dft", "gfn2")):
        atoms = ase.io.read(path)
        atoms.calc = MFFFCalculator(model, head=head)
        assert abs(float(found[f"{k}_energy"]) - atoms.get_potential_energy()) < 1e-6
        np.testing.assert_allclose(found[f"{k}_forces"], atoms.get_forces(), atol=1e-6)


def test_per_atom_energies_selected_atoms_and_several_systems_at_once(tmp_path):
    """What engines such as LAMMPS ask for: atomic energies, and the energy of selected (local) atoms only."""
    from metatensor.torch import Labels
    from metatomic.torch import ModelOutput
    from metatomic_ase import MetatomicCalculator

    model = random_model(BACKBONES["PaiNN"])
    exported = export(model, ["dft", "gfn2"], tmp_path / "m.pt")
    calc = MetatomicCalculator(str(exported), variants={"energy": "gfn2"}, device="cpu")
    images = [molecule("CH3CH2OH"), molecule("H2O")]
    expected = []
    for atoms in images:
        atoms.calc = MFFFCalculator(model, head="gfn2")
        expected.append(atoms.get_potential_energy())

    def energies(kind: str, selected=None):
        block = calc.run_model(images, {"energy/gfn2": ModelOutput(unit="eV", sample_kind=kind)}, selected)
        block = block["energy/gfn2"].block()
        return block.values.detach().double().numpy().ravel(), block.samples.values.numpy()

    totals, _ = energies("system")
    np.testing.assert_allclose(totals, expected, atol=1e-6)
    atomic, samples = energies("atom")
    assert samples.tolist() == [[0, a] for a in range(9)] + [[1, a] for a in range(3)]
    np.testing.assert_allclose([atomic[:9].sum(), atomic[9:].sum()], expected, atol=1e-6)
    chosen, _ = energies(
        "system", Labels(["system", "atom"], torch.tensor([[0, 0], [0, 4], [1, 2]], dtype=torch.int32))
    )
    np.testing.assert_allclose(chosen, [atomic[0] + atomic[4], atomic[11]], atol=1e-9)
