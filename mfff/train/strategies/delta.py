"""Δ-learning: learn the difference to a cheaper method that runs at inference."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from mfff.errors import UserError
from mfff.train.fidelity import Fidelity
from mfff.train.stage import Stage
from mfff.train.strategies.base import Plan, Strategy, require_sources
from mfff.utils.instantiate import instantiate


class Delta(Strategy):
    """Learn `fidelity` minus `base` on the conformers that carry both labels (Δ-learning, the classical baseline
    of multi-fidelity papers). At inference the base method runs and the learned Δ is added (the calculator,
    mfff-eval). Test errors are the total's: they equal the Δ's, because the base is computed exactly, which is
    checked against the stored base labels before training.

    Args:
        base_labeller: the method that labelled the base fidelity, a `mfff.label.labellers` config.
    """

    name = "delta"
    CHECKED = 3  # stored base labels the labeller must reproduce before anything trains
    TOLERANCE = 1e-4  # eV/atom

    def __init__(self, fidelity: str, base: str, base_labeller: dict | None = None, use_forces: bool = True, **common):
        super().__init__([fidelity], **common)
        self.fidelity, self.base, self.use_forces = str(fidelity), str(base), bool(use_forces)
        if not base_labeller:
            raise UserError(
                f"strategy.base_labeller is not set: a Δ-model needs its base method ({self.base}) at inference; give "
                "the labeller that computed its labels, e.g. {_target_: mfff.label.labellers.xtb.XTBLabeller, "
                "method: GFN2-xTB}"
            )
        if self.base == self.fidelity:
            raise UserError(f"strategy.base={self.base!r} is the fidelity it learns; name a cheaper one")
        self.base_labeller = OmegaConf.to_container(OmegaConf.create(base_labeller), resolve=True)

    def describe(self) -> dict:
        return {
            **super().describe(),
            "base": self.base,
            "base_labeller": self.base_labeller,
            "use_forces": self.use_forces,
        }

    def stage(self) -> Stage:
        delta = Fidelity(self.fidelity, forces=self.use_forces, base=self.base, base_labeller=self.base_labeller)
        return Stage(self.name, [delta], config=self.deltas)

    def check_labeller(self, cfg: DictConfig) -> None:
        labeller = instantiate(self.base_labeller, key="strategy.base_labeller")
        source = instantiate(cfg.data.sources[self.base], key=f"data.sources.{self.base}")
        for structure in source.all_structures()[: self.CHECKED]:
            off = abs(labeller.compute(structure.numbers, structure.positions).energy - structure.energy) / len(
                structure
            )
            if not off <= self.TOLERANCE:
                raise UserError(
                    f"strategy.base_labeller ({labeller.method}) does not reproduce the {self.base} labels of "
                    f"data.sources.{self.base} ({off:.3g} eV/atom off on a {structure.group} structure); set it to "
                    "the method that computed them"
                )

    def plan(self, cfg, output_dir):
        require_sources(cfg, [self.fidelity], "strategy.fidelity")
        require_sources(cfg, [self.base], "strategy.base")
        self.check_labeller(cfg)
        return Plan(self.stage())
