"""Errors for bad data input; each message names the file or config key and the fix."""

from mfff.errors import UserInputError


class DataError(UserInputError):
    """Bad data input (missing file, label key, empty split, impossible sizes, unknown elements...)."""
