"""Times SchNetPack's PaiNN (see protocol.py), run with its own venv's Python (SchNetPack 2.2 needs Python >= 3.12):
PaiNN at mfff's size (features, interactions, 20 Bessel functions, cosine cutoff, r = 5 Å), its Atomwise readout
(the same n -> n/2 -> 1 MLP as mfff's head) and Forces module, its own AtomsConverter and ASE neighbour list, and
an MSE loss on energies and forces. The sizes come from the request: this venv has no mfff."""

from __future__ import annotations

import sys

import schnetpack as spk
import schnetpack.transform as trn
import torch
from protocol import chunks, count_parameters, load_structures, serve


def build(request: dict):
    cutoff, n_features = float(request["cutoff"]), int(request["n_features"])
    model = spk.model.NeuralNetworkPotential(
        representation=spk.representation.PaiNN(
            n_atom_basis=n_features,
            n_interactions=int(request["n_interactions"]),
            radial_basis=spk.nn.radial.BesselRBF(n_rbf=int(request["n_basis"]), cutoff=cutoff),
            cutoff_fn=spk.nn.CosineCutoff(cutoff),
        ),
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[
            spk.atomistic.Atomwise(n_in=n_features, output_key="energy"),
            spk.atomistic.Forces(energy_key="energy", force_key="forces"),
        ],
    ).train()
    converter = spk.interfaces.AtomsConverter(neighbor_list=trn.ASENeighborList(cutoff=cutoff), dtype=torch.float32)
    batches = []
    for chunk in chunks(load_structures(request["file"]), request["batch"], request["batches"]):
        inputs = converter(chunk)
        inputs["energy_ref"] = torch.tensor([a.info["REF_energy"] for a in chunk], dtype=torch.float32)
        inputs["forces_ref"] = torch.cat([torch.as_tensor(a.arrays["REF_forces"], dtype=torch.float32) for a in chunk])
        batches.append(inputs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    mse = torch.nn.functional.mse_loss

    def step(inputs):
        optimizer.zero_grad(set_to_none=True)
        out = model(dict(inputs))  # the model adds its outputs to the dict it gets: keep the batch as built
        loss = 0.01 * mse(out["energy"], inputs["energy_ref"]) + 0.99 * mse(out["forces"], inputs["forces_ref"])
        loss.backward()
        optimizer.step()

    return step, batches, [int(b[spk.properties.n_atoms].sum()) for b in batches], count_parameters(model)


if __name__ == "__main__":
    sys.exit(serve(build))
