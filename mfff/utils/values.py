"""Checked config numbers: a clear UserError naming the key instead of a failure deep inside torch."""

from __future__ import annotations

import inspect
import math
from enum import Enum
from typing import TypeVar

from mfff.errors import UserError

E = TypeVar("E", bound=Enum)


def whole_number(value, key: str, minimum: int, allow_none: bool = False) -> int | None:
    """`value` as an int >= minimum, or a UserError naming `key`."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise UserError(f"{key}={value!r} must be a whole number >= {minimum}")
    if int(value) < minimum:
        raise UserError(f"{key}={value!r} must be >= {minimum}")
    return int(value)


def choice(value, enum: type[E], key: str) -> E:
    """`value` as a member of a str Enum, or a UserError naming `key` and the choices."""
    try:
        return enum(value)
    except ValueError:
        raise UserError(f"{key}={value!r} is unknown; choose one of {', '.join(m.value for m in enum)}") from None


def positive_number(value, key: str, what: str = "a positive number") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise UserError(f"{key}={value!r} must be {what}")
    return float(value)


def keyword_parameters(function) -> list[inspect.Parameter]:
    """The arguments `function` (or a class's constructor) takes by keyword, in order, without `self`."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p for p in inspect.signature(function).parameters.values() if p.kind in kinds and p.name != "self"]


def options_for(function, options: dict, key: str) -> dict:
    """`options` checked against `function`'s keyword arguments: a missing or unknown one is a UserError naming
    `key.<option>` and the options there are."""
    parameters = inspect.signature(function).parameters
    named = {p.name: p for p in keyword_parameters(function)}
    unknown = sorted(set(options) - set(named))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        raise UserError(f"{key}.{unknown[0]} is not an option; the options are {', '.join(named)}")
    missing = [n for n, p in named.items() if p.default is p.empty and n not in options]
    if missing:
        required = ", ".join(n for n, p in named.items() if p.default is p.empty)
        raise UserError(f"{key}.{missing[0]} is missing; {key} needs {required} (the others are optional)")
    return options
