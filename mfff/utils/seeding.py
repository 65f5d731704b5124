"""Deterministic, named random streams (no global RNG state)."""

from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, *names: str | int) -> np.random.Generator:
    """A generator determined by `seed` and the names, independent of call order."""
    keys = [int(seed)] + [n if isinstance(n, int) else zlib.crc32(str(n).encode()) for n in names]
    return np.random.default_rng(keys)
