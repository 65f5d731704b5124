"""The built-in dataset (mfff/data/builtin): an extxyz with `energy_<fidelity>` / `forces_<fidelity>` keys."""

from __future__ import annotations

from mfff.data import builtin
from mfff.data.readers.ase_file import ASEReader
from mfff.errors import UserError


class BuiltinReader(ASEReader):
    """One fidelity of the built-in dataset; predefined splits train / test / test_mol come from the file."""

    def __init__(self, fidelity: str, name: str = "builtin"):
        meta = builtin.metadata()
        if fidelity not in meta["fidelities"]:
            raise UserError(
                f"the built-in dataset has no fidelity {fidelity!r}; it has "
                f"{', '.join(meta['fidelities'])} (data.sources.<name>.fidelity)"
            )
        has_forces = meta["fidelities"][fidelity]["has_forces"]
        super().__init__(
            builtin.path(name),
            energy_key=f"energy_{fidelity}",
            forces_key=f"forces_{fidelity}" if has_forces else None,
            cost_key=f"cost_{fidelity}",
        )
