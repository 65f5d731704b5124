"""`model.compile=true`: the potential's forward pass, forces included, compiled with torch.compile.

torch.compile cannot compile a training step whose forces come from `torch.autograd.grad` inside the graph
("aot_autograd does not support double backward"). So the forward pass is first traced with `make_fx`, which runs
the force gradient and records its operations: the result is a plain graph from positions and parameters to
energies and forces, with no autograd call left in it. torch.compile differentiates that graph once, for the loss,
as nequip does. The parameters are inputs of the graph, read from the live module at every call, so the optimiser,
checkpoints, freezing policies and DDP see the ordinary module.
"""

from __future__ import annotations

import torch
import torch.fx.experimental._config as fx_config
from torch.func import functional_call
from torch.fx.experimental.proxy_tensor import make_fx

from mfff.data.batch import Batch
from mfff.errors import UserError
from mfff.model.potential import Potential

_INPUTS = ("positions", "numbers", "edge_index", "edge_shifts", "batch", "fidelity", "n_atoms")
_MIN_TRACE_SIZE = 2  # make_fx bakes sizes 0 and 1 into the graph as constants: trace only on larger batches


class CompiledPotential:
    """Calls like `Potential` (batch, compute_forces, head) -> {pred_energy, pred_forces}.

    One graph per (train/eval, compute_forces, dtype, one structure or several), traced on the first batch of that
    kind whose atom, edge and (for several) structure counts are all >= 2 (smaller ones run eagerly), with symbolic
    sizes, so batches of any size reuse it. In eval the graph runs without autograd: its forces are already explicit
    operations.
    Not an nn.Module, so it adds nothing to a checkpoint.
    """

    def __init__(self, potential: Potential, mode: str | None = None, compile_graph: bool = True):
        if not type(potential.backbone).compilable:
            raise UserError(
                f"model.compile=true works with the PaiNN and SchNet backbones, not yet with "
                f"{type(potential.backbone).__name__} (traced, its layers fix the batch's sizes: e3nn's tensor "
                "products for MACE); train it with model.compile=false"
            )
        self.potential = potential
        self.mode = mode
        self.compile_graph = compile_graph  # False: run the traced graph as it is (checks, debugging)
        self.graphs: dict[tuple, object] = {}
        self._frozen_state: dict[str, torch.Tensor] | None = None

    def __call__(self, batch: Batch, compute_forces: bool = True, head: str | None = None) -> dict:
        potential = self.potential
        if not potential.training:
            potential.check_elements(batch.numbers)  # eagerly: it reads the values
        inputs = [getattr(batch, name) for name in _INPUTS]
        if head is not None:  # a named head for every structure: the same graph, with every fidelity index its own
            inputs[_INPUTS.index("fidelity")] = torch.full_like(batch.fidelity, potential.head_index(head))
        # a single structure (the calculator's case) gets its own graph, in which the structure count is fixed at 1
        single = batch.n_graphs == 1
        key = (potential.training, compute_forces, batch.positions.dtype, single)
        graph = self.graphs.get(key)
        if graph is None:
            if min(2 if single else batch.n_graphs, inputs[0].shape[0], inputs[2].shape[1]) < _MIN_TRACE_SIZE:
                return potential(batch, compute_forces, head, check_elements=False)
            graph = self.graphs[key] = self._compile(inputs, compute_forces)
        if potential.training:
            self._frozen_state = None  # a training step may follow a change of modules (a stage's new head)
            energy, forces = graph(self._state(), *inputs)
        else:
            with torch.no_grad():
                energy, forces = graph(self._eval_state(), *inputs)
        out = {"pred_energy": energy}
        if compute_forces:
            out["pred_forces"] = forces
        return out

    def _state(self) -> dict[str, torch.Tensor]:
        return dict(self.potential.named_parameters()) | dict(self.potential.named_buffers())

    def _eval_state(self) -> dict[str, torch.Tensor]:
        """The state, collected once for a model that no longer trains (inference: collecting it walks every module,
        a fifth of a small molecule's call); refreshed whenever a training call came in between."""
        if self._frozen_state is None:
            self._frozen_state = self._state()
        return self._frozen_state

    def _compile(self, inputs: list[torch.Tensor], compute_forces: bool):
        potential = self.potential

        def forward(state, positions, numbers, edge_index, edge_shifts, batch, fidelity, n_atoms):
            graph_batch = Batch(positions=positions, numbers=numbers, cell=None, pbc=None, batch=batch,
                                n_atoms=n_atoms, edge_index=edge_index, edge_shifts=edge_shifts, fidelity=fidelity,
                                energy=None, forces=None, energy_mask=None, forces_mask=None)  # fmt: skip
            # the graph must hold the force operations whether or not the caller records gradients (eval)
            with torch.enable_grad():
                out = functional_call(potential, (state,), (graph_batch,), {"compute_forces": compute_forces,
                                                                            "check_elements": False})  # fmt: skip
            forces = out.get("pred_forces", out["pred_energy"].new_zeros(()))
            return out["pred_energy"], forces

        previous = fx_config.use_duck_shape
        # without this, a size that happens to equal another (32 structures, 32 features) is tied to it
        fx_config.use_duck_shape = False
        try:
            traced = make_fx(forward, tracing_mode="symbolic", _allow_non_fake_inputs=True)(self._state(), *inputs)
        except Exception as err:
            raise UserError(
                f"model.compile=true: the {type(potential.backbone).__name__} backbone could not be traced for "
                f"compilation ({type(err).__name__}: {err}); train it with model.compile=false"
            ) from err
        finally:
            fx_config.use_duck_shape = previous
        _drop_detaches(traced)
        return torch.compile(traced, dynamic=True, mode=self.mode) if self.compile_graph else traced


def _drop_detaches(graph_module: torch.fx.GraphModule) -> None:
    """make_fx records the `detach` autograd applies to tensors it saves for the backward pass (a norm, a square
    root); replayed, they would cut the loss gradient through the forces. Every tensor of the graph is a function of
    its inputs, so none needs cutting: the detaches go (a test checks the gradients against eager ones)."""
    for node in list(graph_module.graph.nodes):
        if node.op == "call_function" and node.target is torch.ops.aten.detach.default:
            node.replace_all_uses_with(node.args[0])
            graph_module.graph.erase_node(node)
    graph_module.recompile()
