"""Message-passing backbones: PaiNN and SchNet in plain torch (scatter via index_add_); MACE from mace-torch."""

from mfff.model.backbones.mace import MACE
from mfff.model.backbones.painn import PaiNN
from mfff.model.backbones.schnet import SchNet

__all__ = ["MACE", "PaiNN", "SchNet"]
