"""Hydra's instantiate, with our own input errors raised as they are rather than inside Hydra's wrapper, and a
`_target_` that cannot be imported named by its config key."""

from __future__ import annotations

import re

import hydra
from hydra.errors import InstantiationException

from mfff.errors import UserError
from mfff.utils.errors import find_cause

UNLOCATABLE = re.compile(r"Error locating target '([^']+)'.*?(?:full_key: (\S+))?$", re.S)


def instantiate(node, *args, key: str | None = None, **kwargs):
    """Args:
    key: where `node` sits in the root config (e.g. 'data'), to name a `_target_` that cannot be imported.
    """
    try:
        return hydra.utils.instantiate(node, *args, **kwargs)
    except InstantiationException as err:
        cause = find_cause(err, UserError)
        if cause is not None:
            raise cause from None
        unlocatable = UNLOCATABLE.search(str(err))
        if unlocatable is None:
            raise
        target, inner = unlocatable.groups()
        # Hydra's full_key is absolute for a node of the composed config, relative for a detached one
        absolute = not key or not inner or inner == key or inner.startswith(f"{key}.")
        where = (inner or key) if absolute else f"{key}.{inner}"
        name = f"{where}._target_" if where else "_target_"
        raise UserError(
            f"{name}={target} cannot be imported; check the class path (for example mfff.data.readers.ASEReader)"
        ) from None
