"""Times mfff's training step (see protocol.py): the potential as `mfff-train` builds it from its Hydra config
(`model/backbone`, `model/size`), mfff's loss with its default weights, AdamW, mfff's own batches; with
`"compile": true` in the request, the forward pass compiled as `model.compile=true` compiles it."""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from protocol import chunks, count_parameters, load_structures, serve

from mfff.config import conf_dir
from mfff.data.batch import Collater
from mfff.data.structure import Structure
from mfff.model.build import build_potential
from mfff.train.loss import MultiFidelityLoss


def to_structure(atoms) -> Structure:
    return Structure(
        numbers=atoms.numbers.copy(),
        positions=atoms.positions.copy(),
        energy=float(atoms.info["REF_energy"]),
        forces=np.asarray(atoms.arrays["REF_forces"], dtype=float),
    )


def build(request: dict):
    overrides = [f"model/backbone={request['model']}", f"model/size={request['size']}"]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    heads = [f"h{k}" for k in range(request.get("heads", 1))]
    potential = build_potential(cfg.model, heads).train()
    loss_fn = MultiFidelityLoss(heads, energy_weight=cfg.loss.energy_weight, forces_weight=cfg.loss.forces_weight)
    optimizer = torch.optim.AdamW(potential.parameters(), lr=1e-4)
    collate = Collater(cfg.cutoff)
    structures = [to_structure(a) for a in load_structures(request["file"])]
    # structures spread over the heads round-robin, as a multi-head batch mixes fidelities
    batches = [
        collate([(s, k % len(heads)) for k, s in enumerate(chunk)])
        for chunk in chunks(structures, request["batch"], request["batches"])
    ]

    forward = potential
    if request.get("compile"):  # imported here: a baseline checkout (--baseline) may predate it
        from mfff.model.compiled import CompiledPotential

        forward = CompiledPotential(potential)

    def step(batch):
        optimizer.zero_grad(set_to_none=True)
        out = forward(batch, compute_forces=True)
        loss_fn(batch, out)["loss"].backward()
        optimizer.step()

    facts = {}
    if request.get("compile"):  # the first step traces and compiles: timed apart, as a user waits for it once
        start = time.perf_counter()
        step(batches[0])
        facts["compile_s"] = time.perf_counter() - start
    return step, batches, [int(b.n_atoms.sum()) for b in batches], count_parameters(potential), facts


if __name__ == "__main__":
    sys.exit(serve(build))
