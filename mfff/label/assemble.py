"""Assemble shards into the dataset: one extended-XYZ file, a metadata file and a generated dataset card."""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import asdict
from importlib.metadata import version

import ase.io
import numpy as np
from ase import Atoms

from mfff.label.card import render_card
from mfff.label.summary import summarize
from mfff.utils.atomic import atomic_write_bytes, atomic_write_text

DATASET_SUFFIX = ".extxyz.gz"


def build_frames(job) -> list[Atoms]:
    """Every conformer with the labels it has: info energy_<f>, cost_<f>, failed_<f>; arrays forces_<f>."""
    records = {name: job.records(name) for name in job.fidelities}
    frames = []
    for molecule in job.molecules:
        splits = job.split_of(molecule)
        for conformer_id, conformer in enumerate(job.conformers(molecule)):
            atoms = Atoms(numbers=conformer.numbers, positions=conformer.positions)
            atoms.info.update(
                molecule=molecule,
                conformer_id=conformer_id,
                split=splits[conformer_id],
                temperature_K=conformer.info["temperature_K"],
                md_step=conformer.info["md_step"],
            )
            for fidelity, by_key in records.items():
                record = by_key.get((molecule, conformer_id))
                if record is None:
                    continue
                atoms.info[f"cost_{fidelity}"] = record["cpu_s"]
                if not record["ok"]:
                    atoms.info[f"failed_{fidelity}"] = record["reason"]
                    continue
                atoms.info[f"energy_{fidelity}"] = record["energy"]
                if "forces" in record:
                    atoms.arrays[f"forces_{fidelity}"] = np.asarray(record["forces"])
            frames.append(atoms)
    return frames


def metadata(job, frames: list[Atoms]) -> dict:
    from mfff.label.counts import count_labels

    return {
        "name": job.name,
        "file": f"{job.name}{DATASET_SUFFIX}",
        "units": {"energy": "eV", "forces": "eV/Angstrom", "positions": "Angstrom", "cost": "CPU seconds"},
        "seed": job.seed,
        "molecules": list(job.molecules),
        "held_out_molecules": job.held_out,
        "test_fraction": job.test_fraction,
        "sampling": {
            **asdict(job.sampling),
            "temperatures_K": list(job.sampling.temperatures_K),
            "program": f"tblite {version('tblite')}, ASE {version('ase')} Langevin",
        },
        "fidelities": {
            name: {
                "method": plan.labeller.method,
                "has_forces": plan.labeller.has_forces,
                "molecules": plan.molecules,
                "max_per_molecule": plan.max_per_molecule,
            }
            for name, plan in job.fidelities.items()
        },
        "counts": count_labels(frames, list(job.fidelities)),
        "summary": summarize(job),
    }


def gzip_deterministic(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as handle:
        handle.write(data)
    return buffer.getvalue()


def assemble(job) -> dict:
    frames = build_frames(job)
    text = io.StringIO()
    ase.io.write(text, frames, format="extxyz")
    atomic_write_bytes(job.dataset_dir / f"{job.name}{DATASET_SUFFIX}", gzip_deterministic(text.getvalue().encode()))
    meta = metadata(job, frames)
    atomic_write_text(job.dataset_dir / "metadata.json", json.dumps(meta, indent=1) + "\n")
    atomic_write_text(job.dataset_dir / "README.md", render_card(meta))
    return meta
