"""Relax a structure and run MD with a trained mfff model and the head (fidelity) you choose: BFGS, then Langevin
(NVT) equilibration, then NVE, each with an ASE trajectory and log in --out.

    python examples/md.py runs/mine --head dft --molecule CH3CH2OH --steps 2000
    python examples/md.py model.pt --head dft --structure water_box.extxyz --dtype float32

Prints the relaxed energy and the NVE run's total-energy drift in meV/atom/ps (a float64 model with a 0.5 fs step
should keep it well below 1).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ase.io
import numpy as np
from ase import units
from ase.build import molecule
from ase.io.trajectory import Trajectory
from ase.md import MDLogger
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS

from mfff.calculator import MFFFCalculator


def main(argv=None) -> dict:
    args = parse(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atoms = ase.io.read(args.structure) if args.structure else molecule(args.molecule)
    atoms.calc = MFFFCalculator(args.model, head=args.head, dtype=args.dtype)

    relax = BFGS(atoms, trajectory=str(out / "relax.traj"), logfile=str(out / "relax.log"))
    relax.run(fmax=args.fmax, steps=args.relax_steps)
    relaxed = atoms.get_potential_energy()
    fmax = float(np.linalg.norm(atoms.get_forces(), axis=1).max())

    rng = np.random.default_rng(args.seed)
    trajectory = Trajectory(str(out / "md.traj"), "w", atoms)
    thermostat = Langevin(atoms, args.timestep * units.fs, temperature_K=args.temperature,
                          friction=args.friction / units.fs, fixcm=False, rng=rng)  # fmt: skip
    nve = VelocityVerlet(atoms, args.timestep * units.fs)
    for dynamics in (thermostat, nve):
        dynamics.attach(trajectory.write, interval=args.interval)
        dynamics.attach(MDLogger(dynamics, atoms, str(out / "md.log"), mode="a"), interval=args.interval)
    thermostat.run(args.equilibrate)
    totals = []
    nve.attach(lambda: totals.append(atoms.get_total_energy()), interval=1)
    nve.run(args.steps)
    trajectory.close()

    # drift: slope of the total energy over the NVE run, per atom and picosecond
    time_ps = np.arange(len(totals)) * args.timestep / 1000
    drift = float(np.polyfit(time_ps, np.array(totals) / len(atoms), 1)[0] * 1000) if len(totals) > 1 else 0.0
    summary = {"relaxed_energy_eV": relaxed, "relaxed_fmax_eV_per_A": fmax, "relax_steps": relax.nsteps,
               "nve_drift_meV_per_atom_ps": drift, "final_temperature_K": float(atoms.get_temperature())}  # fmt: skip
    for key, value in summary.items():
        print(f"{key}: {value:.6g}")
    return summary


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a run dir of mfff-train, a .ckpt or an inference file (mfff.save)")
    parser.add_argument("--head", help="the fidelity to simulate (needed when the model has several heads)")
    parser.add_argument("--molecule", default="CH3CH2OH", help="a name ase.build.molecule knows")
    parser.add_argument("--structure", help="a file ase.io.read reads (instead of --molecule)")
    parser.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    parser.add_argument("--fmax", type=float, default=0.05, help="eV/Å: when the relaxation stops")
    parser.add_argument("--relax-steps", type=int, default=500)
    parser.add_argument("--timestep", type=float, default=0.5, help="fs")
    parser.add_argument("--temperature", type=float, default=300.0, help="K, of the Langevin equilibration")
    parser.add_argument("--friction", type=float, default=0.01, help="1/fs, of the Langevin thermostat")
    parser.add_argument("--equilibrate", type=int, default=1000, help="Langevin steps before NVE")
    parser.add_argument("--steps", type=int, default=2000, help="NVE steps")
    parser.add_argument("--interval", type=int, default=10, help="steps between trajectory frames and log lines")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="md", help="directory for relax.traj, relax.log, md.traj, md.log")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
