"""MD with trained mfff models: NVE energy drift and MD speed, side by side in one run.

    python benchmarks/md/run.py                 # trains the two models (about 5 min), then measures; 1 thread
    python benchmarks/md/run.py --part drift    # the drift alone (no timing: it may share the machine)
    python benchmarks/md/run.py --quick         # a smoke run of every arm (minutes), not for the table
    python benchmarks/md/table.py               # the tables from results.json

Drift (the fairchem NVE benchmark's way): PaiNN-s and MACE-s trained on the built-in DFT data, float32 and float64;
three molecules, each equilibrated by Langevin at 300 K for 10% of the run, then NVE for `--ps` ps at 0.5 fs; the
drift is the slope of a straight line through the total energy per atom, in meV/atom/ps.

Speed, in MD steps/s (a step: the calculator's energy and forces at the next frame of one 300 K velocity-Verlet
trajectory, the same frames for every arm; median of `--repeats` passes) on ethanol (9 atoms) and a periodic box of
33 methanol molecules (198 atoms, 0.79 g/cm^3, no two molecules' atoms within 1.9 Å): mfff's calculator with and
without its neighbour-list skin, PaiNN eager vs compiled, the exported metatomic model through metatomic-ase vs the
native calculator, and mfff's MACE calculator vs mace-torch's MACECalculator on a mace-torch model of the same size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
RESULTS = HERE / "results.json"
MOLECULES = ("CH3CH2OH", "CH3CONH2", "C6H6")  # in the built-in data: H, C, N, O
TRAINING = {  # scratch on DFT labels: the models' accuracy does not matter here, their smoothness does
    "painn_s": ["model/backbone=painn", "model/size=s"],
    "mace_s": ["model/backbone=mace", "model/size=s"],
}


def train(name: str, out: Path, quick: bool) -> Path:
    run_dir = out / "models" / name
    if (run_dir / "metrics.json").is_file():
        return run_dir
    epochs = 2 if quick else 60
    command = ["mfff-train", "strategy=scratch", "fidelities=[dft]", "data.sources.dft.n_train=200", "seed=0",
               f"trainer.max_epochs={epochs}", "threads=1", f"hydra.run.dir={run_dir}", *TRAINING[name]]  # fmt: skip
    subprocess.run(command, check=True, env={**os.environ, "WANDB_MODE": "offline"})
    return run_dir


def methanol_box(seed: int = 0, box: float = 13.05, count: int = 33, closest: float = 1.9):
    """`count` methanol molecules (198 atoms at liquid density, 0.79 g/cm^3) inserted at random positions and
    orientations in a periodic cube, each only where no atom comes within `closest` Å of another molecule's."""
    from ase import Atoms
    from ase.build import molecule
    from scipy.spatial.transform import Rotation

    rng, template = np.random.default_rng(seed), molecule("CH3OH")
    template.positions -= template.get_center_of_mass()
    atoms = Atoms(cell=[box] * 3, pbc=True)
    while len(atoms) < 6 * count:
        piece = template.copy()
        piece.positions = piece.positions @ Rotation.random(random_state=rng).as_matrix().T + rng.uniform(0, box, 3)
        if len(atoms):
            gaps = piece.positions[:, None, :] - atoms.positions[None, :, :]
            gaps -= box * np.round(gaps / box)  # the nearest periodic image
            if np.linalg.norm(gaps, axis=2).min() < closest:
                continue
        atoms += piece
    atoms.wrap()
    return atoms


def drift(run_dir: Path, dtype: str, name: str, ps: float, seed: int = 0) -> dict:
    from ase import units
    from ase.build import molecule
    from ase.md.langevin import Langevin
    from ase.md.verlet import VelocityVerlet

    from mfff.calculator import MFFFCalculator

    atoms = molecule(name)
    atoms.calc = MFFFCalculator(run_dir, head="dft", dtype=dtype)
    steps = int(round(ps * 1000 / 0.5))
    Langevin(atoms, 0.5 * units.fs, temperature_K=300, friction=0.01 / units.fs, fixcm=False,
             rng=np.random.default_rng(seed)).run(steps // 10)  # fmt: skip
    totals = []
    nve = VelocityVerlet(atoms, 0.5 * units.fs)
    nve.attach(lambda: totals.append(atoms.get_total_energy() / len(atoms)), interval=10)
    start = time.perf_counter()
    nve.run(steps)
    time_ps = np.arange(len(totals)) * 10 * 0.5 / 1000
    totals = np.array(totals)
    return {"model": run_dir.name, "dtype": dtype, "molecule": name, "ps": ps, "steps": steps,
            "drift_meV_per_atom_ps": float(np.polyfit(time_ps, totals, 1)[0] * 1000),
            "max_deviation_meV_per_atom": float(np.max(np.abs(totals - totals[0])) * 1000),
            "final_temperature_K": float(atoms.get_temperature()), "seconds": time.perf_counter() - start}  # fmt: skip


def trajectory(atoms, run_dir: Path, steps: int, timestep: float) -> list[np.ndarray]:
    """Positions of a velocity-Verlet run from 300 K with mfff's PaiNN-s: the geometries every speed arm is timed
    on. Replaying one physical trajectory keeps the arms comparable: mace-torch's model has random weights, under
    which a molecule would fly apart and leave its neighbour list nearly empty."""
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    from mfff.calculator import MFFFCalculator

    atoms = atoms.copy()
    atoms.calc = MFFFCalculator(run_dir, head="dft")
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    frames = []
    dynamics = VelocityVerlet(atoms, timestep * units.fs)
    dynamics.attach(lambda: frames.append(atoms.positions.copy()), interval=1)
    dynamics.run(steps - 1)
    return frames


def steps_per_second(atoms, frames: list[np.ndarray], calculator, repeats: int) -> list[float]:
    """MD steps per second, a step being the calculator's energy and forces at the next frame of the trajectory
    (what an MD step asks of it; ASE's velocity-Verlet update itself costs tens of microseconds)."""
    atoms = atoms.copy()
    atoms.calc = calculator
    for positions in frames[:5]:  # warm-up: first neighbour list, compilation, allocator
        atoms.positions = positions
        atoms.get_forces()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for positions in frames:
            atoms.positions = positions
            atoms.get_forces()
        rates.append(len(frames) / (time.perf_counter() - start))
    return rates


def speed_systems() -> dict:
    from ase.build import molecule

    return {"ethanol (9 atoms)": molecule("CH3CH2OH"), "methanol box (198 atoms, periodic)": methanol_box()}


def neighbour_list_times(atoms, frames: list[np.ndarray], cutoff: float, repeats: int) -> list[dict]:
    """The neighbour list alone along the trajectory, with the calculator's 1 Å skin and rebuilt every step: what
    the skin saves, which the whole step's time (the model's, mostly) hides within its noise."""
    import torch

    from mfff.inference.neighbours import SkinNeighbourList

    positions = [torch.tensor(frame, dtype=torch.float32) for frame in frames]
    numbers, pbc = torch.tensor(atoms.numbers), torch.tensor(atoms.pbc)
    cell = torch.tensor(np.asarray(atoms.cell[:]), dtype=torch.float32)
    rows = []
    for skin in (1.0, 0.0):
        times, rebuilds = [], []
        for _ in range(repeats):
            neighbours = SkinNeighbourList(cutoff, skin)
            start = time.perf_counter()
            for frame in positions:
                neighbours(frame, numbers, cell, pbc)
            times.append(1000 * (time.perf_counter() - start) / len(positions))
            rebuilds.append(neighbours.rebuilds)
        rows.append({"skin": skin, "ms_per_step": times, "median_ms_per_step": float(np.median(times)),
                     "rebuilds": rebuilds[0], "steps": len(positions)})  # fmt: skip
    return rows


def speed_arms(models: dict[str, Path], out: Path):
    """(arm, system, make calculator) for every comparison; the caller makes a system's calculators (timing it)."""
    import mfff
    from mfff.calculator import MFFFCalculator

    painn, mace = models["painn_s"], models["mace_s"]

    def metatomic(run_dir: Path):
        from metatomic_ase import MetatomicCalculator

        from mfff.inference.metatomic import export

        path = export(mfff.load(run_dir), ["dft"], out / f"{run_dir.name}.metatomic.pt")
        return MetatomicCalculator(str(path), device="cpu")

    def mace_torch():
        from mace.calculators import MACECalculator

        from mfff.model.backbones.mace import mace_torch_model

        backbone = mfff.load(mace).architecture["backbone"]
        keys = ("n_channels", "max_L", "n_interactions", "correlation", "max_ell", "n_basis", "n_polynomial_cutoff",
                "radial_mlp", "cutoff", "elements")  # fmt: skip
        return MACECalculator(models=mace_torch_model(**{k: backbone[k] for k in keys}), device="cpu",
                              default_dtype="float32")  # fmt: skip

    arms = {
        "mfff PaiNN-s": lambda: MFFFCalculator(painn, head="dft"),
        "mfff PaiNN-s, no skin": lambda: MFFFCalculator(painn, head="dft", skin=0.0),
        "mfff PaiNN-s, compiled": lambda: MFFFCalculator(painn, head="dft", compile=True),
        "PaiNN-s exported, metatomic-ase": lambda: metatomic(painn),
        "mfff MACE-s": lambda: MFFFCalculator(mace, head="dft"),
        "mfff MACE-s exported, metatomic-ase": lambda: metatomic(mace),
        "mace-torch MACECalculator, same size": mace_torch,
    }
    for system, atoms in speed_systems().items():
        for arm, make in arms.items():
            yield arm, system, atoms, make


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run of every arm (written to quick.json)")
    parser.add_argument("--part", choices=("drift", "speed", "all"), default="all",
                        help="drift is no timing (it may share the machine); speed needs it idle")  # fmt: skip
    parser.add_argument("--ps", type=float, default=10.0, help="NVE length per drift run")
    parser.add_argument("--steps", type=int, default=300, help="MD steps of the timed trajectory")
    parser.add_argument("--repeats", type=int, default=7, help="passes over the trajectory per arm")
    parser.add_argument("--timestep", type=float, default=0.5, help="fs, of the timed trajectory (from 300 K)")
    parser.add_argument("--out", default=str(HERE / "work"), help="trained models and exported files")
    args = parser.parse_args(argv)
    import torch

    import mfff

    torch.set_num_threads(1)
    if args.quick:
        args.ps, args.steps, args.repeats, args.timestep = 0.05, 20, 2, 0.1  # a 2-epoch model: small steps
    out = Path(args.out)
    results_path = HERE / "quick.json" if args.quick else RESULTS
    results = json.loads(results_path.read_text()) if results_path.is_file() else {"drift": [], "speed": []}
    results["machine"] = {"threads": 1, "cpu": _cpu(), "torch": torch.__version__}
    results["settings"] = {
        "ps": args.ps,
        "speed_steps": args.steps,
        "repeats": args.repeats,
        "timestep_fs": args.timestep,
    }
    models = {name: train(name, out, args.quick) for name in TRAINING}
    done = {(r["model"], r["dtype"], r["molecule"]) for r in results["drift"]}
    for run_dir in models.values() if args.part != "speed" else []:
        for dtype in ("float32", "float64"):
            for molecule_name in MOLECULES:
                if (run_dir.name, dtype, molecule_name) in done:
                    continue
                results["drift"].append(drift(run_dir, dtype, molecule_name, args.ps))
                print(json.dumps(results["drift"][-1]))
                _write(results_path, results)
    done = {(r["arm"], r["system"]) for r in results["speed"]}
    frames, pending = {}, {}
    for arm, system, atoms, make in speed_arms(models, out) if args.part != "drift" else []:
        if (arm, system) not in done:
            pending.setdefault(system, (atoms, []))[1].append((arm, make))
    for system, (atoms, arms) in pending.items():
        frames[system] = trajectory(atoms, models["painn_s"], args.steps, args.timestep)
        calculators, setup_s = {}, {}
        for arm, make in arms:
            start = time.perf_counter()
            calculators[arm] = make()  # loading the model (and for metatomic, exporting it first)
            setup_s[arm] = time.perf_counter() - start
        rates = {arm: [] for arm in calculators}
        for _ in range(args.repeats):  # the arms' passes interleaved: a machine that slows for a while slows all
            for arm, calculator in calculators.items():
                rates[arm] += steps_per_second(atoms, frames[system], calculator, 1)
        for arm in calculators:
            results["speed"].append({"arm": arm, "system": system, "steps_per_s": rates[arm], "interleaved": True,
                                     "median_steps_per_s": float(np.median(rates[arm])),
                                     "setup_s": setup_s[arm]})  # fmt: skip
            print(arm, system, f"{np.median(rates[arm]):.1f} steps/s")
        _write(results_path, results)
    done = {r["system"] for r in results.setdefault("neighbour_list", [])}
    for system, atoms in speed_systems().items() if args.part != "drift" else []:
        if system in done:
            continue
        if system not in frames:
            frames[system] = trajectory(atoms, models["painn_s"], args.steps, args.timestep)
        cutoff = mfff.load(models["painn_s"]).cutoff
        for row in neighbour_list_times(atoms, frames[system], cutoff, args.repeats):
            results["neighbour_list"].append({"system": system, **row})
            print(system, f"skin {row['skin']:g} Å: neighbour list {row['median_ms_per_step']:.2f} ms/step")
        _write(results_path, results)


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _write(path: Path, results: dict) -> None:
    from mfff.utils.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
