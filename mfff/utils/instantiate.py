"""Hydra's instantiate, with our own input errors raised as they are rather than inside Hydra's wrapper, and a
`_target_` that cannot be imported named by its config key."""

from __future__ import annotations

import re

import hydra
from hydra.errors import InstantiationException

from mfff.errors import UserError
from mfff.utils.errors import find_cause
from mfff.utils.values import keyword_parameters

UNLOCATABLE = re.compile(r"Error locating target '([^']+)'.*?(?:full_key: (\S+))?$", re.S)
FAILED_CALL = re.compile(r"Error in call to target '([^']+)':\n(\w+)\((.*)\)(?:\nfull_key: (\S+))?$", re.S)
UNEXPECTED = re.compile(r"unexpected keyword argument '(\w+)'")


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
            line = failed_call_line(str(err), key)
            if line is None:
                raise
            raise UserError(line) from None
        target, inner = unlocatable.groups()
        # Hydra's full_key is absolute for a node of the composed config, relative for a detached one
        absolute = not key or not inner or inner == key or inner.startswith(f"{key}.")
        where = (inner or key) if absolute else f"{key}.{inner}"
        name = f"{where}._target_" if where else "_target_"
        raise UserError(
            f"{name}={target} cannot be imported; check the class path (for example mfff.data.readers.ASEReader)"
        ) from None


def failed_call_line(message: str, key: str | None) -> str | None:
    """One line for a config node whose class refused it: an option it does not take (e.g. a key removed in an
    earlier release), or a Lightning Trainer setting this machine cannot run. None for anything else (a bug)."""
    call = FAILED_CALL.search(message)
    if call is None:
        return None
    target, kind, detail, where = call.groups()
    where = where or key or "the config"
    unexpected = UNEXPECTED.search(detail)
    if kind == "TypeError" and unexpected:
        options = _options(target)
        known = f"; its options are {', '.join(options)}" if options else ""
        return f"{where}.{unexpected.group(1)} is not an option of {target}{known}; remove it or check its spelling"
    if kind == "MisconfigurationException":
        reason = detail.strip("'\"")
        no_gpu = "gpu" in reason.lower()
        hint = " (this machine has no usable GPU: use trainer.accelerator=cpu or auto)" if no_gpu else ""
        return f"{where}: Lightning cannot run these settings: {reason}{hint}"
    return None


def _options(target: str) -> list[str]:
    try:
        return [p.name for p in keyword_parameters(hydra.utils.get_object(target))]
    except (ImportError, AttributeError, TypeError, ValueError):
        return []
