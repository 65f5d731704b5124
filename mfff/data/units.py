"""Unit conversion into mfff's internal units: eV, Å, eV/Å."""

from __future__ import annotations

from ase import units

from mfff.errors import UserError

ENERGY_UNITS = {
    "eV": 1.0,
    "meV": 1e-3,
    "Ha": units.Hartree,
    "hartree": units.Hartree,
    "kcal/mol": units.kcal / units.mol,
    "kJ/mol": units.kJ / units.mol,
}
LENGTH_UNITS = {"Å": 1.0, "A": 1.0, "Angstrom": 1.0, "Bohr": units.Bohr, "bohr": units.Bohr}


def energy_factor(unit: str, key: str) -> float:
    """Multiply a value in `unit` by this to get eV. `key` names the config entry for the error message."""
    try:
        return ENERGY_UNITS[unit]
    except KeyError:
        raise UserError(f"unknown energy unit {unit!r} in {key}; use one of {', '.join(ENERGY_UNITS)}") from None


def length_factor(unit: str, key: str) -> float:
    try:
        return LENGTH_UNITS[unit]
    except KeyError:
        raise UserError(f"unknown length unit {unit!r} in {key}; use one of {', '.join(LENGTH_UNITS)}") from None


def forces_factor(unit: str, key: str) -> float:
    """Forces are written 'energy/length', e.g. 'eV/Å', 'Ha/Bohr', 'kcal/mol/Å'."""
    energy, sep, length = unit.rpartition("/")
    if not sep or energy not in ENERGY_UNITS or length not in LENGTH_UNITS:
        raise UserError(
            f"unknown forces unit {unit!r} in {key}; write it as <energy>/<length> with energy in "
            f"{', '.join(ENERGY_UNITS)} and length in {', '.join(LENGTH_UNITS)}, e.g. eV/Å or Ha/Bohr"
        )
    return ENERGY_UNITS[energy] / LENGTH_UNITS[length]
