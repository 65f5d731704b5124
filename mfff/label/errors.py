"""Errors raised by the labelling pipeline."""

from mfff.errors import UserInputError


class LabelConfigError(UserInputError):
    """Bad labelling input: the message names the config key or file and how to fix it."""


class LabelFailure(RuntimeError):
    """One label could not be computed (e.g. SCF not converged); recorded with its reason, never stored as a number."""
