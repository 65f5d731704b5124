"""Times mace-torch's own MACE (see protocol.py), built as `mace_run_train --model=MACE` builds it at the size of
mfff's `model/backbone=mace` preset, with mace-torch's data pipeline (AtomicData, its torch_geometric Batch), its
model call (`training=True, compute_force=True`) and its default loss (WeightedEnergyForcesLoss, forces 100 :
energy 1). Gradient clipping and the EMA update of mace-torch's loop are left out, as they are for mfff."""

from __future__ import annotations

import contextlib
import io
import os
import sys

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from protocol import chunks, count_parameters, load_structures, serve

from mfff.config import conf_dir

# e3nn 0.4.4 loads its constants with a plain torch.load, which torch >= 2.6 refuses without this
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
with contextlib.redirect_stdout(io.StringIO()):
    from e3nn import o3
    from mace import data, modules, tools
    from mace.tools import torch_geometric

ELEMENTS = [1, 6, 7, 8]


def preset(size: str) -> dict:
    """The sizes of mfff's MACE preset, read from its config, so both models are the same size by construction."""
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("train", overrides=["model/backbone=mace", f"model/size={size}"])
    return dict(cfg.model.backbone)


def build(request: dict):
    size = preset(request["size"])
    irreps = "+".join(f"{size['n_channels']}x{ell}{'e' if ell % 2 == 0 else 'o'}" for ell in range(size["max_L"] + 1))
    z_table = tools.AtomicNumberTable(ELEMENTS)
    model = modules.MACE(
        r_max=float(size["cutoff"]),
        num_bessel=size["n_basis"],
        num_polynomial_cutoff=size["n_polynomial_cutoff"],
        max_ell=size["max_ell"],
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        num_interactions=size["n_interactions"],
        num_elements=len(ELEMENTS),
        hidden_irreps=o3.Irreps(irreps),
        MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.zeros(len(ELEMENTS)),
        avg_num_neighbors=8.0,
        atomic_numbers=ELEMENTS,
        correlation=size["correlation"],
        gate=torch.nn.functional.silu,
        radial_MLP=list(size["radial_mlp"]),
    ).train()
    keys = data.KeySpecification(info_keys={"energy": "REF_energy"}, arrays_keys={"forces": "REF_forces"})
    structures = load_structures(request["file"])
    batches = []
    for chunk in chunks(structures, request["batch"], request["batches"]):
        configs = data.config_from_atoms_list(chunk, key_specification=keys)
        graphs = [data.AtomicData.from_config(c, z_table=z_table, cutoff=float(size["cutoff"])) for c in configs]
        batches.append(torch_geometric.Batch.from_data_list(graphs))
    loss_fn = modules.WeightedEnergyForcesLoss(energy_weight=1.0, forces_weight=100.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(batch):
        optimizer.zero_grad(set_to_none=True)
        output = model(batch.to_dict(), training=True, compute_force=True, compute_virials=False, compute_stress=False)
        loss_fn(pred=output, ref=batch).backward()
        optimizer.step()

    return step, batches, [int(b.num_nodes) for b in batches], count_parameters(model)


if __name__ == "__main__":
    sys.exit(serve(build))
