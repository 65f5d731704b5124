"""sGDML / rMD17 `.npz` files: one molecule, many conformers; energies in kcal/mol by default."""

from __future__ import annotations

import numpy as np

from mfff.data.readers.base import Reader, check_finite_labels, check_positions, existing_file, optional_path
from mfff.data.structure import Structure
from mfff.data.units import energy_factor, forces_factor
from mfff.errors import UserError

# (numbers, positions, energies, forces) key names of the two common layouts
LAYOUTS = {
    "sGDML": ("z", "R", "E", "F"),
    "rMD17": ("nuclear_charges", "coords", "energies", "forces"),
}


class NpzReader(Reader):
    """Assumes kcal/mol and kcal/mol/Å (sGDML and rMD17 both use them) unless told otherwise; positions in Å."""

    def __init__(
        self, path=None, energy_unit: str = "kcal/mol", forces_unit: str = "kcal/mol/Å", use_forces: bool = True
    ):
        self.path = optional_path(path)
        self.e_factor = energy_factor(energy_unit, "reader.energy_unit")
        self.f_factor = forces_factor(forces_unit, "reader.forces_unit")
        self.use_forces = use_forces

    def read(self) -> list[Structure]:
        path = existing_file(self.path)
        with np.load(path) as data:
            keys = set(data.files)
            layout = next((names for names in LAYOUTS.values() if {names[0], names[1], names[2]} <= keys), None)
            if layout is None:
                expected = " or ".join("/".join(v) for v in LAYOUTS.values())
                raise UserError(f"{path} has arrays {sorted(keys)}; expected the sGDML/rMD17 keys {expected}")
            z_key, r_key, e_key, f_key = layout
            numbers = np.asarray(data[z_key], dtype=np.int64).reshape(-1)
            positions = np.asarray(data[r_key], dtype=float)
            energies = np.asarray(data[e_key], dtype=float).reshape(-1) * self.e_factor
            forces = np.asarray(data[f_key], dtype=float) * self.f_factor if self.use_forces and f_key in keys else None
            group = str(data["name"]) if "name" in keys else path.stem
        if positions.ndim != 3 or positions.shape[1:] != (len(numbers), 3) or len(energies) != len(positions):
            raise UserError(
                f"{path}: array shapes disagree: {r_key}{positions.shape}, {z_key}{numbers.shape}, "
                f"{e_key}{energies.shape}"
            )
        if forces is not None and forces.shape != positions.shape:
            raise UserError(
                f"{path}: forces {f_key}{forces.shape} do not match positions {r_key}{positions.shape}; fix the "
                "file, or set reader.use_forces=false for energy-only data"
            )
        structures = [
            Structure(
                numbers=numbers,
                positions=positions[i],
                energy=float(energies[i]),
                forces=None if forces is None else forces[i],
                group=group,
            )
            for i in range(len(positions))
        ]
        check_positions(structures, path)
        check_finite_labels(structures, path)
        return structures
