"""i-PI runs NVE with an exported model through its metatomic driver over a UNIX socket: 60 steps, the total
energy conserved, and each step's potential energy equal to mfff's ASE calculator on the same geometry."""

import subprocess
import sys
import time
import uuid
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import molecule

import mfff
from mfff.calculator import MFFFCalculator

pytest.importorskip("metatomic.torch", reason="the export extra: pip install 'mfff[export]'")
pytest.importorskip("ipi", reason="i-PI: pip install ipi")
from mfff.inference.metatomic import export  # noqa: E402

INPUT = Path(__file__).with_name("ipi") / "input.xml"
BIN = Path(sys.executable).parent


def test_ipi_runs_nve_with_the_exported_model(multihead_run, tmp_path):
    model = mfff.load(multihead_run[0], head="gfn2", dtype="float64")
    export(model, ["gfn2"], tmp_path / "model.pt")
    start = molecule("CH3CH2OH")
    start.cell = [20.0, 20.0, 20.0]  # i-PI wants a cell; the socket is told pbc=false
    start.center()
    ase.io.write(tmp_path / "init.xyz", start, format="extxyz")
    address = f"mfff-{uuid.uuid4().hex[:12]}"
    (tmp_path / "input.xml").write_text(INPUT.read_text().replace("ADDRESS", address))
    server = subprocess.Popen([str(BIN / "i-pi"), "input.xml"], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)  # fmt: skip
    socket = Path("/tmp") / f"ipi_{address}"
    try:
        for _ in range(600):  # the driver connects once i-PI has opened its socket
            if socket.exists() or server.poll() is not None:
                break
            time.sleep(0.1)
        driver = subprocess.run(
            [str(BIN / "i-pi-driver-py"), "-m", "metatomic", "-u", "-a", address,
             "-o", "template=init.xyz,model=model.pt,energy_variant=gfn2"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        log = server.communicate(timeout=60)[0]
    finally:
        server.kill()
        socket.unlink(missing_ok=True)
    assert driver.returncode == 0, driver.stderr[-3000:]
    assert server.returncode == 0 and "I-PI reports success" in log, log[-3000:]
    table = np.loadtxt(tmp_path / "md.out")  # step, time, conserved, potential, kinetic (eV)
    frames = ase.io.read(tmp_path / "md.pos_0.extxyz", ":")
    assert table.shape == (61, 5) and len(frames) == 61 and table[-1, 0] == 60
    assert np.ptp(table[:, 2]) / len(start) < 1e-4  # eV/atom: NVE conserves the total energy
    assert np.ptp(table[:, 4]) > 0.05  # eV: the atoms moved (kinetic and potential energy exchanged)
    calculator = MFFFCalculator(model)
    for frame, potential in zip(frames, table[:, 3]):
        frame.calc = calculator
        assert frame.get_potential_energy() == pytest.approx(potential, abs=2e-5)  # i-PI prints 9 digits
