"""mfff: multi-fidelity training of machine-learned force fields."""

__version__ = "0.1.0"
