"""Errors raised by the labelling pipeline (bad labelling input is `mfff.errors.UserError`)."""


class LabelFailure(RuntimeError):
    """One label could not be computed (e.g. SCF not converged); recorded with its reason, never stored as a number."""
