"""Conformer sampling by Langevin molecular dynamics on a GFN-xTB surface (tblite's ASE calculator)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms, units
from ase.constraints import FixCom
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation

from mfff.label.errors import LabelFailure
from mfff.utils.seeding import stream


@dataclass(frozen=True)
class SamplingSettings:
    """How conformers are drawn: for each temperature, equilibrate, then keep every `stride`-th MD frame."""

    method: str = "GFN2-xTB"
    temperatures_K: tuple[float, ...] = (300.0,)
    frames_per_temperature: int = 100
    stride: int = 20
    timestep_fs: float = 0.5
    equilibration_steps: int = 400
    friction_per_fs: float = 0.01
    seed: int = 0


def sample_conformers(name: str, start: Atoms, temperature_K: float, settings: SamplingSettings) -> list[Atoms]:
    """Run one MD trajectory for `name` at `temperature_K` and return the kept frames (positions only)."""
    from tblite.ase import TBLite

    rng = stream(settings.seed, "md", name, int(round(temperature_K * 1000)))
    atoms = start.copy()
    atoms.calc = TBLite(method=settings.method, verbosity=0)
    atoms.set_constraint(FixCom())  # ASE's recommended way to keep the centre of mass fixed under Langevin
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)
    Stationary(atoms)
    with np.errstate(invalid="ignore", divide="ignore"):  # linear molecules have a zero moment of inertia
        ZeroRotation(atoms)
    dyn = Langevin(
        atoms,
        timestep=settings.timestep_fs * units.fs,
        temperature_K=temperature_K,
        friction=settings.friction_per_fs / units.fs,
        fixcm=False,
        rng=rng,
    )
    frames: list[Atoms] = []
    try:
        dyn.run(settings.equilibration_steps)
        for _ in range(settings.frames_per_temperature):
            dyn.run(settings.stride)
            frame = Atoms(numbers=atoms.numbers, positions=atoms.positions.copy())
            frame.info.update(temperature_K=float(temperature_K), md_step=int(dyn.nsteps))
            frames.append(frame)
    except Exception as err:  # tblite raises on SCC failure mid-trajectory
        raise LabelFailure(f"MD of {name} at {temperature_K} K failed at step {dyn.nsteps}: {err}") from err
    if not np.all(np.isfinite([f.positions for f in frames])):
        raise LabelFailure(f"MD of {name} at {temperature_K} K produced non-finite positions")
    return frames
