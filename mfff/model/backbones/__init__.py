"""Message-passing backbones written in plain torch (scatter via index_add_)."""

from mfff.model.backbones.painn import PaiNN
from mfff.model.backbones.schnet import SchNet

__all__ = ["PaiNN", "SchNet"]
