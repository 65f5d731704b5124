"""The labelling job: sample conformers, label them per fidelity in resumable shards, assemble the dataset."""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import ase.io
import hydra
import numpy as np
from ase import Atoms
from omegaconf import DictConfig, OmegaConf

from mfff.errors import UserError
from mfff.label.errors import LabelFailure
from mfff.label.labellers.base import Labeller
from mfff.label.molecules import MoleculeSpec, resolve_molecules
from mfff.label.sampling import SamplingSettings, sample_conformers
from mfff.label.shards import LabelShard, try_lock
from mfff.utils.atomic import atomic_open
from mfff.utils.paths import require_writable
from mfff.utils.seeding import stream

log = logging.getLogger(__name__)

STAGES = ("sample", "label", "assemble")


@dataclass
class FidelityPlan:
    """What one fidelity labels: which molecules, how many conformers each, with which labeller."""

    name: str
    labeller: Labeller
    molecules: list[str]
    max_per_molecule: int | None


class LabelJob:
    """A labelling job described by the `label` config node (see conf/label/builtin.yaml)."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.name = str(cfg.name)
        self.seed = int(cfg.seed)
        self.shard_size = int(cfg.shard_size)
        if self.shard_size < 1:
            raise UserError("label.shard_size must be >= 1")
        self.work_dir = Path(cfg.work_dir)
        self.dataset_dir = Path(cfg.dataset_dir)
        self.molecules: dict[str, MoleculeSpec] = {m.name: m for m in resolve_molecules(cfg.molecules)}
        sampling = OmegaConf.to_container(cfg.sampling, resolve=True)
        sampling["temperatures_K"] = tuple(float(t) for t in sampling["temperatures_K"])
        self.sampling = SamplingSettings(**sampling, seed=self.seed)
        self.fidelities = self._plan_fidelities(cfg.fidelities)
        self.held_out = list(cfg.splits.held_out_molecules or [])
        for index, name in enumerate(self.held_out):
            if name not in self.molecules:
                raise UserError(f"label.splits.held_out_molecules[{index}]={name!r} is not in label.molecules")
        self.test_fraction = float(cfg.splits.test_fraction)
        if not 0.0 <= self.test_fraction < 1.0:
            raise UserError("label.splits.test_fraction must be in [0, 1)")

    # ----------------------------------------------------------------------------------------- setup
    def _plan_fidelities(self, node) -> dict[str, FidelityPlan]:
        if not node:
            raise UserError("label.fidelities is empty; configure at least one labeller")
        plans = {}
        for name in node:
            key = f"label.fidelities.{name}"
            spec = node[name]
            if "labeller" not in spec:
                raise UserError(f"{key}.labeller is missing; give a labeller with a _target_")
            try:
                labeller = hydra.utils.instantiate(spec.labeller)
            except UserError:
                raise
            except Exception as err:  # Hydra wraps the constructor's error; unwrap ours
                cause = err.__cause__ or err
                if isinstance(cause, UserError):
                    raise UserError(f"{key}: {cause}") from err
                raise UserError(f"{key}.labeller cannot be built: {cause}") from err
            molecules = list(spec.get("molecules") or self.molecules)
            for index, mol in enumerate(molecules):
                if mol not in self.molecules:
                    raise UserError(f"{key}.molecules[{index}]={mol!r} is not in label.molecules")
                labeller.check_elements(self.molecules[mol].atoms.numbers, f"molecule {mol} ({key})")
            limit = spec.get("max_per_molecule")
            plans[name] = FidelityPlan(name, labeller, molecules, None if limit is None else int(limit))
        return plans

    def check_writable(self) -> None:
        for key, directory in (("label.work_dir", self.work_dir), ("label.dataset_dir", self.dataset_dir)):
            require_writable(directory, key, UserError)

    # -------------------------------------------------------------------------------------- sampling
    def conformer_path(self, molecule: str, temperature_K: float) -> Path:
        return self.work_dir / "conformers" / molecule / f"T{temperature_K:g}K.extxyz"

    def sample(self) -> None:
        for name, spec in self.molecules.items():
            for temperature in self.sampling.temperatures_K:
                path = self.conformer_path(name, temperature)
                if path.exists():
                    continue
                with try_lock(path.with_suffix(".lock")) as mine:
                    if not mine or path.exists():
                        continue
                    start = time.process_time()
                    frames = sample_conformers(name, spec.atoms, temperature, self.sampling)
                    with atomic_open(path) as handle:
                        ase.io.write(handle, frames, format="extxyz")
                    log.info(
                        "sampled %d conformers of %s at %g K (%.1f CPU s)",
                        len(frames),
                        name,
                        temperature,
                        time.process_time() - start,
                    )

    def conformers(self, molecule: str) -> list[Atoms]:
        """All conformers of a molecule in conformer-id order (temperatures in config order)."""
        frames = []
        for temperature in self.sampling.temperatures_K:
            path = self.conformer_path(molecule, temperature)
            if not path.exists():
                raise UserError(f"conformers {path} are missing; run the 'sample' stage first")
            frames.extend(ase.io.read(path, index=":", format="extxyz"))
        return frames

    @property
    def n_per_molecule(self) -> int:
        return len(self.sampling.temperatures_K) * self.sampling.frames_per_temperature

    # -------------------------------------------------------------------------------------- labelling
    def selection(self, molecule: str, fidelity: FidelityPlan) -> list[int]:
        """Conformer ids a fidelity labels, in a seeded order shared by all fidelities, so subsets nest."""
        order = stream(self.seed, "select", molecule).permutation(self.n_per_molecule)
        limit = fidelity.max_per_molecule
        return [int(i) for i in (order if limit is None else order[:limit])]

    def shards(self, fidelity: FidelityPlan, molecule: str) -> list[LabelShard]:
        ids = self.selection(molecule, fidelity)
        chunks = [ids[i : i + self.shard_size] for i in range(0, len(ids), self.shard_size)]
        directory = self.work_dir / "labels" / fidelity.name / molecule
        return [
            LabelShard(directory / f"{index:04d}.json", fidelity.name, molecule, fidelity.labeller.method, chunk)
            for index, chunk in enumerate(chunks)
        ]

    def label(self, fidelities: list[str] | None = None, retry_failed: bool = False) -> None:
        for name in fidelities or self.fidelities:
            fidelity = self.fidelities[name]
            for molecule in fidelity.molecules:
                frames = None
                for shard in self.shards(fidelity, molecule):
                    if not shard.pending and not (retry_failed and shard.failed):
                        continue
                    with try_lock(shard.path.with_suffix(".lock")) as mine:
                        if not mine:
                            continue
                        shard.reload()
                        if retry_failed:
                            shard.drop_failures()
                        if shard.pending:
                            frames = frames or self.conformers(molecule)
                            self._label_shard(fidelity, shard, frames)

    def _label_shard(self, fidelity: FidelityPlan, shard: LabelShard, frames: list[Atoms]) -> None:
        for conformer_id in shard.pending:
            atoms = frames[conformer_id]
            cpu, wall = time.process_time(), time.perf_counter()
            record = {"conformer_id": conformer_id}
            try:
                result = fidelity.labeller.compute(atoms.numbers, atoms.positions)
                record.update(ok=True, energy=result.energy)
                if result.forces is not None:
                    record["forces"] = np.asarray(result.forces, dtype=float).tolist()
            except LabelFailure as err:
                record.update(ok=False, reason=str(err))
            except Exception as err:  # a crash inside the QC code is a failed label, with its reason
                record.update(ok=False, reason=f"{type(err).__name__}: {err}".strip())
                log.debug(
                    "label %s/%s/%d crashed:\n%s", fidelity.name, shard.molecule, conformer_id, traceback.format_exc()
                )
            record.update(cpu_s=time.process_time() - cpu, wall_s=time.perf_counter() - wall)
            shard.add(record)
            if not record["ok"]:
                log.warning(
                    "%s label of %s conformer %d failed: %s",
                    fidelity.name,
                    shard.molecule,
                    conformer_id,
                    record["reason"],
                )
        log.info("%s: %s shard %s done", fidelity.name, shard.molecule, shard.path.name)

    def records(self, fidelity: str) -> dict[tuple[str, int], dict]:
        """Every record stored so far for a fidelity, keyed by (molecule, conformer id)."""
        plan = self.fidelities[fidelity]
        out = {}
        for molecule in plan.molecules:
            for shard in self.shards(plan, molecule):
                out.update({(molecule, cid): record for cid, record in shard.records.items()})
        return out

    def planned(self, fidelity: str) -> int:
        plan = self.fidelities[fidelity]
        return sum(len(self.selection(m, plan)) for m in plan.molecules)

    # ---------------------------------------------------------------------------------------- splits
    def split_of(self, molecule: str) -> list[str]:
        """Per conformer: 'test_mol' for held-out molecules, else 'test' (a seeded fraction) or 'train'."""
        n = self.n_per_molecule
        if molecule in self.held_out:
            return ["test_mol"] * n
        n_test = int(round(self.test_fraction * n))
        test = set(stream(self.seed, "split", molecule).permutation(n)[:n_test].tolist())
        return ["test" if i in test else "train" for i in range(n)]

    def run(self, stages=STAGES, retry_failed: bool = False) -> None:
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise UserError(f"unknown stage(s) {unknown} in stages; choose from {list(STAGES)}")
        self.check_writable()
        if "sample" in stages:
            self.sample()
        if "label" in stages:
            self.label(retry_failed=retry_failed)
        if "assemble" in stages:
            from mfff.label.assemble import assemble

            assemble(self)
