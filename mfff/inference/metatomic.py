"""Export to a metatomic atomistic model: a TorchScript file that ASE (metatomic-ase), i-PI, LAMMPS
(`pair_style metatomic`) and torch-sim run without mfff. Each exported head is the output variant
`energy/<fidelity>`; a single exported head is also the default `energy`. The engine computes the neighbour list
and derives forces and stress from the energy by autograd, so the model holds the backbone and the heads only."""

# ruff: noqa: UP006, UP035, UP045
# (no `from __future__ import annotations`, and typing's List/Dict/Optional: metatomic checks forward's annotations
# as objects, and TorchScript compiles them)
import os
import tempfile
import warnings
from pathlib import Path
from typing import Dict, List, Optional

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import AtomisticModel, ModelCapabilities, ModelMetadata, ModelOutput, NeighborListOptions, System
from torch import nn

import mfff
from mfff.errors import UserError
from mfff.inference.model import InferenceModel

REFERENCES = {
    "PaiNN": "K. T. Schütt, O. T. Unke, M. Gastegger, ICML 2021, arXiv:2102.03150",
    "SchNet": "K. T. Schütt et al., J. Chem. Phys. 148, 241722 (2018)",
    "MACE": "I. Batatia et al., NeurIPS 2022, arXiv:2206.07697",
}


def export(model: InferenceModel, heads: List[str], path, dtype: Optional[str] = None) -> Path:
    """Write `model`'s `heads` to `path` as a metatomic model (atomically), in `dtype` (default: the model's)."""
    if not heads:
        raise UserError(f"choose the heads to export (--heads); the model has {', '.join(model.heads)}")
    for head in heads:
        model.choose_head(head)  # an unknown head is named with the ones there are
        if head in model.bases:
            raise UserError(
                f"head {head!r} learned a difference to {model.bases[head]['fidelity']} (Δ-learning): its base "
                "method is not part of the model, so an export would give wrong energies; export another head"
            )
    dtype = dtype or str(model.dtype).removeprefix("torch.")
    potential = model.potential.to(getattr(torch, dtype))
    infos = [model.head_info(h) for h in heads]
    module = MetatomicPotential(potential.backbone, {h: potential.heads[h] for h in heads}, model.cutoff)
    backbone = type(potential.backbone).__name__
    outputs = {
        f"energy/{info.name}": ModelOutput(
            unit="eV",
            sample_kind="system",
            description=f"mfff head {info.name!r}: the energy of fidelity "
            f"{info.name}, trained on {', '.join(info.symbols)}",  # fmt: skip
        )
        for info in infos
    }
    if len(heads) == 1:
        outputs["energy"] = ModelOutput(unit="eV", sample_kind="system", description=f"fidelity {heads[0]}")
    elements = sorted({z for info in infos for z in info.elements})
    capabilities = ModelCapabilities(
        outputs=outputs,
        atomic_types=elements,
        # message passing: an atom feels atoms up to one cutoff per layer away (ghost atoms in domain decomposition)
        interaction_range=model.cutoff * len(potential.backbone.interactions),
        length_unit="angstrom",
        supported_devices=["cuda", "cpu"],
        dtype=dtype,
    )
    metadata = ModelMetadata(
        name=f"mfff {backbone} ({', '.join(heads)})",
        description=f"An mfff multi-fidelity force field: a {backbone} backbone and the heads {', '.join(heads)} "
        "(one per level of theory; choose one as the energy variant)",
        references={
            "architecture": [REFERENCES[backbone]] if backbone in REFERENCES else [],
            "implementation": ["mfff multi-fidelity force fields"],
        },  # fmt: skip
        extra={"mfff_version": mfff.__version__, "heads": ",".join(heads)},
    )
    wrapped = AtomisticModel(module.eval(), metadata, capabilities)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        try:
            with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript, which metatomic's format is
                warnings.filterwarnings(
                    "ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning
                )
                wrapped.save(tmp)
        except RuntimeError as err:
            raise UserError(f"the {backbone} backbone could not be converted to TorchScript, which metatomic "
                            f"needs: {err.__cause__ or err}") from err  # fmt: skip
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


class MetatomicPotential(nn.Module):
    """mfff's backbone and heads behind metatomic's model interface (TorchScript-compatible)."""

    def __init__(self, backbone: nn.Module, heads: Dict[str, nn.Module], cutoff: float):
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict(heads)
        self.default = next(iter(heads)) if len(heads) == 1 else ""
        # full list: mfff's backbones sum messages over every (receiver, sender) pair
        self.neighbours = NeighborListOptions(cutoff=float(cutoff), full_list=True, strict=True)

    def requested_neighbor_lists(self) -> List[NeighborListOptions]:
        return [self.neighbours]

    def forward(
        self, systems: List[System], outputs: Dict[str, ModelOutput], selected_atoms: Optional[Labels]
    ) -> Dict[str, TensorMap]:
        device = systems[0].positions.device if len(systems) > 0 else torch.device("cpu")
        numbers: List[torch.Tensor] = []
        edges: List[torch.Tensor] = []
        vectors: List[torch.Tensor] = []
        system_of_atom: List[torch.Tensor] = []
        first_atoms: List[int] = []
        offset = 0
        for k, system in enumerate(systems):
            pairs = system.get_neighbor_list(self.neighbours)
            receiver, sender = pairs.samples.column("first_atom"), pairs.samples.column("second_atom")
            edges.append(
                torch.stack([receiver, sender]).to(torch.long) + offset
            )  # metatomic's labels are int32  # metatomic: r_ij = r_j - r_i + shift, as mfff
            vectors.append(pairs.values.reshape(-1, 3))
            numbers.append(system.types.to(torch.long))
            system_of_atom.append(torch.full((len(system),), k, dtype=torch.long, device=device))
            first_atoms.append(offset)
            offset += len(system)
        all_numbers = torch.cat(numbers)
        features = self.backbone(all_numbers, torch.cat(edges, dim=1), torch.cat(vectors))
        atom_system = torch.cat(system_of_atom)
        starts = torch.tensor(first_atoms, dtype=torch.long, device=device)
        atom_index = torch.arange(offset, device=device) - starts[atom_system]
        keep = torch.ones(offset, dtype=torch.bool, device=device)
        if selected_atoms is not None:  # e.g. LAMMPS' local atoms: the energies of these atoms only
            chosen = selected_atoms.values
            keep = torch.zeros(offset, dtype=torch.bool, device=device)
            keep[starts[chosen[:, 0]] + chosen[:, 1]] = True
        results: Dict[str, TensorMap] = {}
        for name, head in self.heads.items():
            for key in ["energy/" + name, "energy"]:
                if key not in outputs or (key == "energy" and name != self.default):
                    continue
                atomic = head(features, all_numbers)
                properties = Labels(["energy"], torch.tensor([[0]], device=device))
                if outputs[key].sample_kind == "atom":
                    samples = Labels(["system", "atom"], torch.stack([atom_system, atom_index], dim=1)[keep])
                    values = atomic[keep].reshape(-1, 1)
                else:
                    samples = Labels(["system"], torch.arange(len(systems), device=device).reshape(-1, 1))
                    values = torch.zeros(len(systems), dtype=atomic.dtype, device=device)
                    values = values.index_add(0, atom_system[keep], atomic[keep]).reshape(-1, 1)
                block = TensorBlock(values=values, samples=samples, components=[], properties=properties)
                results[key] = TensorMap(Labels("_", torch.tensor([[0]], device=device)), [block])
        return results
