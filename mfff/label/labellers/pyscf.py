"""HF / DFT (energy + forces) and CCSD(T) (energy) labels from PySCF."""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
from ase.data import chemical_symbols
from ase.units import Bohr, Hartree

from mfff.errors import UserError
from mfff.label.errors import LabelFailure
from mfff.label.labellers.base import Label, Labeller


def _pyscf():
    try:
        import pyscf  # noqa: F401
    except ImportError as err:
        raise UserError("HF/DFT/CCSD(T) labels need PySCF: pip install 'mfff[label]'") from err


def _check_basis(basis: str) -> None:
    """An unknown basis name is caught here, at construction, not hours into a run."""
    from pyscf import gto

    try:
        gto.basis.load(basis, "H")
    except (KeyError, RuntimeError) as err:
        raise UserError(
            f"PySCF has no basis set named {basis!r} (labeller.basis); use a name PySCF knows, "
            "e.g. 6-31g*, def2-svp, cc-pvdz"
        ) from err


def _basis_covers(basis: str, atomic_number: int) -> bool:
    from pyscf import gto

    try:
        return bool(gto.basis.load(basis, chemical_symbols[atomic_number]))
    except (KeyError, RuntimeError):
        return False


class _PySCFLabeller(Labeller):
    def __init__(
        self,
        basis: str,
        charge: int = 0,
        spin: int = 0,
        conv_tol: float = 1e-10,
        max_cycle: int = 100,
        threads: int | None = None,
    ):
        _pyscf()
        _check_basis(basis)
        self.basis, self.charge, self.spin = basis, charge, spin
        self.conv_tol, self.max_cycle, self.threads = conv_tol, max_cycle, threads

    def supports(self, atomic_number: int) -> bool:
        return _basis_covers(self.basis, atomic_number)

    def _mol(self, numbers, positions):
        from pyscf import gto, lib

        if self.threads:
            lib.num_threads(int(self.threads))
        atoms = [(chemical_symbols[int(z)], tuple(map(float, p))) for z, p in zip(numbers, positions)]
        return gto.M(atom=atoms, basis=self.basis, unit="Angstrom", charge=self.charge, spin=self.spin, verbose=0)

    def _converged_scf(self, mf):
        mf.conv_tol, mf.max_cycle = self.conv_tol, self.max_cycle
        energy = mf.kernel()
        if not mf.converged:
            raise LabelFailure(f"SCF not converged in {self.max_cycle} cycles (conv_tol={self.conv_tol})")
        if not np.isfinite(energy):
            raise LabelFailure("SCF returned a non-finite energy")
        return energy


class SCFLabeller(_PySCFLabeller):
    """Hartree-Fock (xc=None or 'hf') or Kohn-Sham DFT with any libxc functional, with analytic forces.

    Args:
        density_fit: use density fitting (RI-J/K) with PySCF's default auxiliary basis for `basis`.
        grid_level: PySCF's DFT grid level (0-9); forces include the grid response so they are exact
            derivatives of the reported energy.
    """

    has_forces = True

    def __init__(self, basis: str, xc: str | None = None, density_fit: bool = True, grid_level: int = 3, **kwargs):
        super().__init__(basis, **kwargs)
        self.xc = None if xc in (None, "", "hf", "HF") else xc
        if self.xc is not None:
            from pyscf.dft import libxc

            try:
                libxc.parse_xc(self.xc)
            except KeyError as err:
                raise UserError(
                    f"libxc does not know the functional {xc!r} (labeller.xc); use a libxc name such as "
                    "pbe, b3lyp, wb97x, or xc=hf for Hartree-Fock"
                ) from err
        self.density_fit, self.grid_level = density_fit, grid_level

    @property
    def method(self) -> str:
        theory = "HF" if self.xc is None else self.xc
        extras = ["RI" if self.density_fit else "no-RI"]
        if self.xc is not None:
            extras.append(f"grid={self.grid_level}")
        return f"{theory}/{self.basis} ({', '.join(extras)}, conv_tol={self.conv_tol}; PySCF {version('pyscf')})"

    def compute(self, numbers, positions) -> Label:
        from pyscf import dft, scf

        mol = self._mol(numbers, positions)
        if self.xc is None:
            mf = scf.HF(mol)
        else:
            mf = dft.KS(mol)
            mf.xc = self.xc
            mf.grids.level = self.grid_level
        if self.density_fit:
            mf = mf.density_fit()
        energy = self._converged_scf(mf)
        grad = mf.nuc_grad_method()
        if self.xc is not None:
            grad.grid_response = True
        gradient = grad.kernel()
        return Label(energy=float(energy) * Hartree, forces=-np.asarray(gradient) * Hartree / Bohr)


class CCSDTLabeller(_PySCFLabeller):
    """CCSD(T) total energy on an RHF reference (energy only).

    Args:
        frozen_core: freeze the chemical core orbitals (PySCF `chemcore`), as is usual for cc-pVXZ bases.
    """

    has_forces = False

    def __init__(self, basis: str = "cc-pvdz", frozen_core: bool = True, **kwargs):
        super().__init__(basis, **kwargs)
        self.frozen_core = frozen_core

    @property
    def method(self) -> str:
        core = "frozen core" if self.frozen_core else "all-electron"
        return f"CCSD(T)/{self.basis} (RHF reference, {core}, conv_tol={self.conv_tol}; PySCF {version('pyscf')})"

    def compute(self, numbers, positions) -> Label:
        from pyscf import cc, scf
        from pyscf.data.elements import chemcore

        mol = self._mol(numbers, positions)
        if mol.spin != 0:
            raise LabelFailure("CCSD(T) labeller supports closed-shell (spin=0) molecules only")
        mf = scf.RHF(mol)
        e_hf = self._converged_scf(mf)
        n_core = chemcore(mol) if self.frozen_core else 0
        mycc = cc.CCSD(mf, frozen=n_core or None)
        mycc.conv_tol = max(self.conv_tol, 1e-9)
        mycc.max_cycle = self.max_cycle
        mycc.kernel()
        if not mycc.converged:
            raise LabelFailure(f"CCSD not converged in {self.max_cycle} cycles")
        e_t = mycc.ccsd_t()
        energy = e_hf + mycc.e_corr + e_t
        if not np.isfinite(energy):
            raise LabelFailure("CCSD(T) returned a non-finite energy")
        return Label(energy=float(energy) * Hartree, forces=None)
