"""Checked config numbers: a clear ConfigError naming the key instead of a failure deep inside torch."""

from __future__ import annotations

import math

from mfff.errors import ConfigError


def whole_number(value, key: str, minimum: int, allow_none: bool = False) -> int | None:
    """`value` as an int >= minimum, or a ConfigError naming `key`."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ConfigError(f"{key}={value!r} must be a whole number >= {minimum}")
    if int(value) < minimum:
        raise ConfigError(f"{key}={value!r} must be >= {minimum}")
    return int(value)


def positive_number(value, key: str, what: str = "a positive number") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{key}={value!r} must be {what}")
    return float(value)
