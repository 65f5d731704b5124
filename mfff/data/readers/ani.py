"""ANI-1x / ANI-1ccx HDF5 release layout: one group per formula with per-conformer properties."""

from __future__ import annotations

import numpy as np

from mfff.data.readers.base import Reader, check_positions, existing_file, optional_path
from mfff.data.structure import Structure
from mfff.data.units import energy_factor, forces_factor
from mfff.errors import UserError


class ANIReader(Reader):
    """Maps one energy property (and optionally a forces property) to a fidelity.

    Each group holds `coordinates` (n_conf, n_atoms, 3) Å, `atomic_numbers` (n_atoms,) and properties such as
    `wb97x_dz.energy` (Ha), `wb97x_dz.forces` (Ha/Å), `ccsd(t)_cbs.energy` (Ha). NaN labels are masked;
    conformers with neither label are skipped.
    """

    def __init__(
        self,
        path=None,
        energy_key: str = "wb97x_dz.energy",
        forces_key: str | None = "wb97x_dz.forces",
        energy_unit: str = "Ha",
        forces_unit: str = "Ha/Å",
    ):
        self.path = optional_path(path)
        self.energy_key, self.forces_key = energy_key, forces_key
        self.e_factor = energy_factor(energy_unit, "reader.energy_unit")
        self.f_factor = forces_factor(forces_unit, "reader.forces_unit")

    def read(self) -> list[Structure]:
        import h5py

        path = existing_file(self.path)
        structures, seen_energy, seen_forces = [], False, False
        with h5py.File(path, "r") as handle:
            for formula, group in _groups(handle):
                if "coordinates" not in group or "atomic_numbers" not in group:
                    raise UserError(f"group {formula!r} in {path} lacks 'coordinates'/'atomic_numbers'")
                energies = group[self.energy_key][()] * self.e_factor if self.energy_key in group else None
                forces = (
                    group[self.forces_key][()] * self.f_factor if self.forces_key and self.forces_key in group else None
                )
                seen_energy |= energies is not None
                seen_forces |= forces is not None
                coordinates, numbers = group["coordinates"][()], group["atomic_numbers"][()].astype(np.int64)
                if forces is not None and forces.shape != coordinates.shape:
                    raise UserError(
                        f"group {formula!r} in {path}: forces {self.forces_key}{forces.shape} do not match "
                        f"coordinates{coordinates.shape}; check reader.forces_key"
                    )
                for i in range(len(coordinates)):
                    energy = float(energies[i]) if energies is not None else float("nan")
                    f = forces[i] if forces is not None else None
                    if not np.isfinite(energy) and (f is None or not np.isfinite(f).any()):
                        continue
                    structures.append(
                        Structure(
                            numbers=numbers,
                            positions=coordinates[i].astype(float),
                            energy=energy,
                            forces=f,
                            group=formula,
                        )
                    )
        if not seen_energy:
            raise UserError(f"energy property {self.energy_key!r} (reader.energy_key) is in no group of {path}")
        if self.forces_key and not seen_forces:
            raise UserError(
                f"forces property {self.forces_key!r} (reader.forces_key) is in no group of {path}; "
                "set reader.forces_key=null for energy-only properties"
            )
        check_positions(structures, path)
        return structures


def _groups(handle):
    """Formula groups, whether at the top level (ANI-1x) or one level down (some re-packagings)."""
    for name, item in handle.items():
        if "coordinates" in item:
            yield name, item
        else:
            for sub, subitem in item.items():
                yield f"{name}/{sub}", subitem
