"""Per-element reference energies E0 fitted on a training split, and which compositions that fit determines.

E0 is the least-squares solution of sum_s (E_s - sum_i E0[Z_i])^2. When the training compositions are linearly
dependent (one molecule's conformers, or isomers only), the energies fix E0 only along the compositions seen: the
total E0 of CH4O is known, not how it splits between C, H and O. The rule in the open directions is documented in
the README ("Reference energies"): E0 follows the Thomas-Fermi scaling of atomic total energies, E_atom ~ -Z^(7/3)
(Milne 1927), scaled to the data. Inside the seen span nothing changes, so the training energies are fitted as
well as by any other choice; outside it the energy of a structure is a guess, and `determines` says so.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
from ase.data import chemical_symbols

from mfff.data.structure import Structure
from mfff.errors import UserError

log = logging.getLogger(__name__)

N_ELEMENTS = 119
# relative tolerance on singular values and projections: compositions are small integer vectors
TOLERANCE = 1e-8


@dataclass(frozen=True)
class ReferenceFit:
    """E0 by atomic number and what the training energies determine of it."""

    e0: np.ndarray  # (N_ELEMENTS,) eV; elements absent from training get 0
    elements: list[int]  # atomic numbers present in the training split
    open_directions: np.ndarray  # (k, len(elements)) orthonormal compositions the energies leave undetermined
    compositions: list[str]  # the distinct training formulas, for messages

    @property
    def separable(self) -> bool:
        return len(self.open_directions) == 0

    @property
    def inseparable(self) -> list[str]:
        """Element symbols whose E0 the data fix only in combination with others."""
        weight = np.abs(self.open_directions).max(axis=0) if not self.separable else np.zeros(len(self.elements))
        return [chemical_symbols[z] for z, w in zip(self.elements, weight) if w > TOLERANCE]

    def determines(self, numbers: np.ndarray) -> bool:
        """Whether this composition's total E0 follows from the training energies (a combination of the training
        compositions, with no element the training split lacks)."""
        vector = composition(numbers, self.elements)
        if vector is None:
            return False
        return self.separable or bool(
            np.linalg.norm(self.open_directions @ vector) <= TOLERANCE * np.linalg.norm(vector)
        )


def composition(numbers: np.ndarray, elements: list[int]) -> np.ndarray | None:
    """Atom counts over `elements`, or None when the structure has an element outside them."""
    present, counts = np.unique(np.asarray(numbers), return_counts=True)
    column = {z: k for k, z in enumerate(elements)}
    if any(int(z) not in column for z in present):
        return None
    vector = np.zeros(len(elements))
    vector[[column[int(z)] for z in present]] = counts
    return vector


def formula(numbers: np.ndarray) -> str:
    present, counts = np.unique(np.asarray(numbers), return_counts=True)
    order = sorted(zip(present, counts), key=lambda zc: (zc[0] != 6, zc[0] != 1, zc[0]))  # Hill order
    return "".join(f"{chemical_symbols[z]}{n if n > 1 else ''}" for z, n in order)


def fit_reference(structures: list[Structure]) -> ReferenceFit:
    """E0 by least squares on the labelled energies; see the module's docstring for the underdetermined case."""
    labelled = [s for s in structures if s.has_energy]
    if not labelled:
        raise UserError("no energy labels in the training split: cannot fit reference energies E0")
    elements = sorted({int(z) for s in labelled for z in s.numbers})
    counts = np.array([composition(s.numbers, elements) for s in labelled])
    energies = np.array([s.energy for s in labelled])
    solution = np.linalg.lstsq(counts, energies, rcond=None)[0]  # minimum norm: no part in the open directions
    singular, basis = np.linalg.svd(counts, full_matrices=True)[1:]
    rank = int((singular > TOLERANCE * singular[0]).sum())
    open_directions = basis[rank:]
    if len(open_directions):
        prior = np.asarray(elements, dtype=float) ** (7 / 3)
        along = counts @ prior
        scale = float(along @ energies / (along @ along))  # the prior's size that best fits the energies
        solution = solution + scale * open_directions.T @ (open_directions @ prior)
    e0 = np.zeros(N_ELEMENTS)
    e0[elements] = solution
    return ReferenceFit(
        e0=e0,
        elements=elements,
        open_directions=open_directions,
        compositions=sorted({formula(s.numbers) for s in labelled}),
    )


def energies_apart(tests: dict[str, list[Structure]], fit: ReferenceFit, key: str) -> dict[str, list[Structure]]:
    """Test sets judged by what the training energies determine: a structure whose composition's total E0 they leave
    open is also put in a test set of its own, `<name>_unseen_composition`; in `<name>` its forces still count, its
    energy (a guess) does not. Warns, naming the source (`key`), the elements and the compositions."""
    if not fit.separable:
        log.warning(
            "%s: the training energies do not separate the reference energies (E0) of %s (training compositions: "
            "%s); E0 follows the Z^(7/3) rule there (README, 'Reference energies')",
            key, ", ".join(fit.inseparable), ", ".join(fit.compositions[:5]),
        )  # fmt: skip
    apart = {}
    for name, items in tests.items():
        determined = [fit.determines(s.numbers) for s in items]
        unseen = [s for s, known in zip(items, determined) if not known]
        apart[name] = [s if known else without_energy(s) for s, known in zip(items, determined)]
        if unseen:
            log.warning(
                "%s: %d of %d structures of test set %r have compositions the training data do not determine (%s): "
                "their energy errors are reported apart, as test set %r (forces stay in %r)",
                key, len(unseen), len(items), name, ", ".join(sorted({formula(s.numbers) for s in unseen})[:5]),
                f"{name}_unseen_composition", name,
            )  # fmt: skip
            apart[f"{name}_unseen_composition"] = unseen
    return apart


class EnergyLeftOut:
    """A streamed test structure (`StoredStructure`) whose energy does not count in its test set's errors."""

    def __init__(self, structure):
        self.structure = structure

    def __getattr__(self, name):
        return getattr(self.structure, name)

    def __len__(self) -> int:
        return len(self.structure)

    @property
    def energy(self) -> float:
        return float("nan")

    def load(self) -> Structure:
        return dataclasses.replace(self.structure.load(), energy=float("nan"))


def without_energy(structure):
    """The structure with its energy label masked (NaN: forces still count)."""
    if isinstance(structure, Structure):
        return dataclasses.replace(structure, energy=float("nan"))
    return EnergyLeftOut(structure)
