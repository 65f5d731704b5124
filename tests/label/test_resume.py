"""`kill -9` in the middle of labelling loses at most the label in flight; a rerun completes the job."""

import json
import os
import signal
import subprocess
import sys
import time

import ase.io
import numpy as np

from mfff.label.pipeline import LabelJob
from tests.label.conftest import tiny_label_config

HF_STO3G = [
    "+label.fidelities.hf.labeller._target_=mfff.label.labellers.pyscf.SCFLabeller",
    "+label.fidelities.hf.labeller.basis=sto-3g",
    "+label.fidelities.hf.labeller.xc=hf",
]


def _cli(tmp_path, name):
    return [
        sys.executable,
        "-m",
        "mfff.cli.label",
        "label=tiny",
        f"label.work_dir={tmp_path}/{name}",
        f"label.dataset_dir={tmp_path}/{name}/dataset",
        *HF_STO3G,
    ]


def _hf_records(work_dir):
    shards = sorted((work_dir / "labels" / "hf").glob("*/*.json"))
    return [r for s in shards for r in json.loads(s.read_text())["records"]]


def _frames(path):
    return ase.io.read(path, ":")


def test_kill_9_midway_then_rerun_equals_uninterrupted_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(_cli(tmp_path, "killed"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(_hf_records(killed_dir)) >= 3:
            break
        time.sleep(0.005)
    assert proc.poll() is None, f"the job ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(_hf_records(killed_dir))
    assert 3 <= done_before < 24, "the kill must land midway through the HF labels"
    assert not (killed_dir / "dataset" / "tiny.extxyz.gz").exists()
    # every file left behind is a complete, parseable shard (atomic writes; temp files are dot-files)
    for shard in (killed_dir / "labels").rglob("*.json"):
        json.loads(shard.read_text())

    rerun = subprocess.run(_cli(tmp_path, "killed"), env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]

    reference = subprocess.run(_cli(tmp_path, "reference"), env=env, capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr[-3000:]

    keys = _hf_keys(killed_dir)
    assert len(keys) == len(set(keys)) == 24, "no duplicates, no losses"
    assert all(r["ok"] for r in _hf_records(killed_dir))

    resumed = _frames(killed_dir / "dataset" / "tiny.extxyz.gz")
    uninterrupted = _frames(tmp_path / "reference" / "dataset" / "tiny.extxyz.gz")
    assert len(resumed) == len(uninterrupted) == 24
    for a, b in zip(resumed, uninterrupted):
        assert a.info["molecule"] == b.info["molecule"] and a.info["conformer_id"] == b.info["conformer_id"]
        np.testing.assert_array_equal(a.positions, b.positions)
        for fidelity in ("gfn1", "gfn2", "hf"):
            assert (f"energy_{fidelity}" in a.info) == (f"energy_{fidelity}" in b.info)
            if f"energy_{fidelity}" in a.info:
                assert abs(a.info[f"energy_{fidelity}"] - b.info[f"energy_{fidelity}"]) < 1e-7
                np.testing.assert_allclose(a.arrays[f"forces_{fidelity}"], b.arrays[f"forces_{fidelity}"], atol=1e-6)


def _hf_keys(work_dir):
    keys = []
    for shard in sorted((work_dir / "labels" / "hf").glob("*/*.json")):
        data = json.loads(shard.read_text())
        keys += [(data["molecule"], r["conformer_id"]) for r in data["records"]]
    return keys


def test_interrupted_in_process_run_resumes_without_relabelling(tmp_path, monkeypatch):
    job = LabelJob(tiny_label_config(tmp_path).label)
    job.sample()
    labeller = job.fidelities["gfn1"].labeller
    real, calls = labeller.compute, []

    def interrupted_after_five(numbers, positions):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(1)
        return real(numbers, positions)

    monkeypatch.setattr(labeller, "compute", interrupted_after_five)
    try:
        job.label()
    except KeyboardInterrupt:
        pass
    assert len(job.records("gfn1")) == 5
    monkeypatch.setattr(labeller, "compute", lambda n, p: (calls.append(1), real(n, p))[1])
    job.label()
    assert len(calls) == 24 and len(job.records("gfn1")) == 24
