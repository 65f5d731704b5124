import os

# One OpenMP thread per test process: tblite and PySCF spin-wait when threads outnumber free cores, which
# made a labelling test 100x slower beside another busy process. Must be set before they are imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import ase.io  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from ase.build import molecule  # noqa: E402
from ase.calculators.emt import EMT  # noqa: E402


@pytest.fixture(scope="session")
def emt_extxyz(tmp_path_factory):
    """A small labelled file made by a real calculator (ASE's EMT): 4 molecules x 30 rattled conformers."""
    path = tmp_path_factory.mktemp("emt") / "emt.extxyz"
    rng = np.random.default_rng(0)
    frames = []
    for name in ("CH4", "H2O", "NH3", "CH3OH"):
        for _k in range(30):
            atoms = molecule(name)
            atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
            atoms.calc = EMT()
            atoms.info.update(molecule=name, energy_emt=atoms.get_potential_energy())
            atoms.arrays["forces_emt"] = atoms.get_forces()
            atoms.calc = None
            frames.append(atoms)
    ase.io.write(path, frames)
    return path


@pytest.fixture(scope="session")
def multihead_run(tmp_path_factory):
    """A multi-head training on the built-in gfn1 + gfn2 data long enough to learn (25 epochs of 48 structures each,
    about 8 s), shared by read-only tests; `call_seconds` in its run dir holds the whole call's wall time."""
    import time

    from tests.train.conftest import train_quick

    tmp = tmp_path_factory.mktemp("multihead")
    start = time.perf_counter()
    metrics = train_quick(tmp, epochs=25)
    (tmp / "call_seconds").write_text(str(time.perf_counter() - start))
    return tmp, metrics


@pytest.fixture(scope="session")
def pretrained_gfn2(tmp_path_factory):
    """A GFN2-xTB pre-training run (run dir, metrics) long enough to learn (20 epochs of 64 structures, about 6 s),
    shared by the fine-tuning tests."""
    from tests.train.conftest import train_quick

    tmp = tmp_path_factory.mktemp("pretrain")
    return tmp, train_quick(tmp, "strategy=pretrain", fidelities=("gfn2",), n_train=64, epochs=20)
