"""Training strategies as small objects: which stages run, on which fidelities, from which weights.

A new strategy is a new class (and a yaml in conf/strategy/). Each one turns the composed config into one or more
`Stage`s and runs them.
"""

from mfff.train.strategies.base import Plan, Strategy
from mfff.train.strategies.delta import Delta
from mfff.train.strategies.finetune import Finetune, ReplayFinetune
from mfff.train.strategies.joint import Joint, MultiHead, Pretrain, Scratch
from mfff.train.strategies.pretrain_finetune import PretrainFinetune

__all__ = [
    "Delta", "Finetune", "Joint", "MultiHead", "Plan", "Pretrain", "PretrainFinetune", "ReplayFinetune",
    "Scratch", "Strategy",
]  # fmt: skip
