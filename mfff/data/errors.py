"""Errors for bad data input; each message names the file or config key and the fix."""


class DataError(ValueError):
    """Bad data input (missing file, label key, empty split, impossible sizes, unknown elements...)."""
