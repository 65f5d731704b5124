"""Label counts per fidelity and split, computed from dataset frames (the card and its test share this)."""

from __future__ import annotations

SPLITS = ("train", "test", "test_mol")


def count_labels(frames, fidelities: list[str]) -> dict:
    """{fidelity: {split: n_labelled, 'failed': n, 'molecules': n}} plus an 'all' entry for conformers."""
    counts = {"all": {split: 0 for split in SPLITS}}
    counts["all"]["molecules"] = len({f.info["molecule"] for f in frames})
    for fidelity in fidelities:
        counts[fidelity] = {split: 0 for split in SPLITS} | {"failed": 0}
        molecules = set()
        for frame in frames:
            if f"energy_{fidelity}" in frame.info:
                counts[fidelity][frame.info["split"]] += 1
                molecules.add(frame.info["molecule"])
            elif f"failed_{fidelity}" in frame.info:
                counts[fidelity]["failed"] += 1
        counts[fidelity]["molecules"] = len(molecules)
    for frame in frames:
        counts["all"][frame.info["split"]] += 1
    return counts
