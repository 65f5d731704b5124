"""The labelling pipeline on a tiny real job: selection, splits, shards, assembly, summary."""

import json

import ase.io
import numpy as np
import pytest

from mfff.errors import UserError
from mfff.label.pipeline import LabelJob
from mfff.label.shards import LabelShard
from mfff.label.summary import format_summary, summarize
from tests.label.conftest import tiny_label_config


def test_conformers_are_sampled_per_temperature_with_md_metadata(tiny_job):
    frames = tiny_job.conformers("H2CO")
    assert len(frames) == tiny_job.n_per_molecule == 12
    steps = [f.info["md_step"] for f in frames]
    assert steps == [20 + 5 * (i + 1) for i in range(12)]  # equilibration, then every stride-th step
    assert all(f.info["temperature_K"] == 500.0 for f in frames)
    # MD really moved the atoms: consecutive frames differ, bonds stay chemical
    assert not np.allclose(frames[0].positions, frames[1].positions)
    for f in frames:
        d = f.get_all_distances()[np.triu_indices(4, 1)]
        assert d.min() > 0.8 and d.max() < 3.0


def test_fidelity_subsets_nest_and_are_seeded(tiny_job):
    full = tiny_job.selection("H2CO", tiny_job.fidelities["gfn1"])
    part = tiny_job.selection("H2CO", tiny_job.fidelities["gfn2"])
    assert sorted(full) == list(range(12))
    assert part == full[:8]  # gfn2's 8 conformers are the first 8 of the shared seeded order
    assert full != list(range(12))  # the order is a permutation, not the MD order


def test_splits_hold_out_molecules_and_a_seeded_fraction(tiny_job):
    assert tiny_job.split_of("HCN") == ["test_mol"] * 12
    h2co = tiny_job.split_of("H2CO")
    assert h2co.count("test") == 3 and h2co.count("train") == 9


def test_assembled_dataset_has_per_fidelity_keys_and_no_duplicates(tiny_job):
    frames = ase.io.read(tiny_job.dataset_dir / "tiny.extxyz.gz", ":")
    keys = [(f.info["molecule"], f.info["conformer_id"]) for f in frames]
    assert len(keys) == len(set(keys)) == 24
    n_gfn2 = sum("energy_gfn2" in f.info for f in frames)
    assert n_gfn2 == 16 and sum("energy_gfn1" in f.info for f in frames) == 24
    for f in frames:
        assert f.arrays["forces_gfn1"].shape == (len(f), 3)
        assert f.info["cost_gfn1"] > 0
        assert ("forces_gfn2" in f.arrays) == ("energy_gfn2" in f.info)
    meta = json.loads((tiny_job.dataset_dir / "metadata.json").read_text())
    assert meta["fidelities"]["gfn2"]["method"].startswith("GFN2-xTB (tblite")
    assert meta["units"]["energy"] == "eV"


def test_stored_positions_are_the_labelled_positions(tiny_job):
    """Labels are computed from the positions as stored (rounded by extxyz), so they can be re-checked."""
    stored = ase.io.read(tiny_job.dataset_dir / "tiny.extxyz.gz", ":")
    sampled = tiny_job.conformers("H2CO") + tiny_job.conformers("HCN")
    for a, b in zip(stored, sampled):
        np.testing.assert_array_equal(a.positions, b.positions)


def test_summary_counts_and_costs(tiny_job):
    summary = summarize(tiny_job)
    assert summary["gfn1"]["done"] == 24 and summary["gfn2"]["done"] == 16
    assert summary["gfn1"]["failed"] == summary["gfn1"]["pending"] == 0
    assert summary["gfn1"]["total_cpu_s"] == pytest.approx(24 * summary["gfn1"]["mean_cpu_s"])
    text = format_summary(summary)
    assert "gfn1" in text and "GFN1-xTB" in text


def test_rerun_skips_finished_labels(tiny_job, monkeypatch):
    calls = []
    labeller = tiny_job.fidelities["gfn1"].labeller
    monkeypatch.setattr(labeller, "compute", lambda *a: calls.append(1))
    tiny_job.label()
    assert calls == []


def test_failed_label_is_recorded_with_reason_and_retried_on_request(tmp_path, monkeypatch):
    job = LabelJob(tiny_label_config(tmp_path, "~label.fidelities.gfn1").label)
    job.sample()
    from mfff.label.errors import LabelFailure

    labeller = job.fidelities["gfn2"].labeller
    real = labeller.compute
    state = {"n": 0}

    def flaky(numbers, positions):
        state["n"] += 1
        if state["n"] == 3:
            raise LabelFailure("SCF not converged in 100 cycles")
        return real(numbers, positions)

    monkeypatch.setattr(labeller, "compute", flaky)
    job.label()
    summary = summarize(job)["gfn2"]
    assert summary["failed"] == 1 and summary["done"] == 15
    assert summary["failures"] == {"SCF not converged in 100 cycles": 1}
    from mfff.label.assemble import assemble

    assemble(job)
    frames = ase.io.read(job.dataset_dir / "tiny.extxyz.gz", ":")
    failed = [f for f in frames if "failed_gfn2" in f.info]
    assert len(failed) == 1 and "energy_gfn2" not in failed[0].info and "forces_gfn2" not in failed[0].arrays
    job.label(retry_failed=True)
    assert summarize(job)["gfn2"]["failed"] == 0 and summarize(job)["gfn2"]["done"] == 16


def test_shard_from_another_method_is_refused(tmp_path):
    shard = LabelShard(tmp_path / "0000.json", "gfn2", "H2CO", "GFN2-xTB (x)", [3, 1])
    shard.add({"conformer_id": 3, "ok": True, "energy": -1.0, "cpu_s": 0.1})
    again = LabelShard(tmp_path / "0000.json", "gfn2", "H2CO", "GFN2-xTB (x)", [3, 1])
    assert again.pending == [1] and again.records[3]["energy"] == -1.0
    with pytest.raises(UserError, match="was made with method 'GFN2-xTB \\(x\\)'.*new label.work_dir"):
        LabelShard(tmp_path / "0000.json", "gfn2", "H2CO", "GFN1-xTB (y)", [3, 1])
    with pytest.raises(UserError, match="covers other conformers"):
        LabelShard(tmp_path / "0000.json", "gfn2", "H2CO", "GFN2-xTB (x)", [3, 2])
    (tmp_path / "0000.json").write_text('{"records": [')
    with pytest.raises(UserError, match="0000.json is unreadable"):
        LabelShard(tmp_path / "0000.json", "gfn2", "H2CO", "GFN2-xTB (x)", [3, 1])


def test_starting_geometry_from_a_file(tmp_path):
    from ase.build import molecule

    start = molecule("CH3OH")
    start.positions += 0.01
    start.write(tmp_path / "methanol.xyz")
    cfg = tiny_label_config(
        tmp_path,
        f"label.molecules=[{{name: MeOH, file: {tmp_path}/methanol.xyz}}]",
        "label.splits.held_out_molecules=[]",
        "label.sampling.frames_per_temperature=2",
    )
    job = LabelJob(cfg.label)
    np.testing.assert_allclose(job.molecules["MeOH"].atoms.positions, start.positions, atol=1e-8)
    job.sample()
    frames = job.conformers("MeOH")
    assert len(frames) == 2 and frames[0].get_chemical_formula() == start.get_chemical_formula()
