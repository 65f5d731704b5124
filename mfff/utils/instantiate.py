"""Hydra's instantiate, with our own input errors raised as they are rather than inside Hydra's wrapper."""

from __future__ import annotations

import hydra
from hydra.errors import InstantiationException

from mfff.errors import UserInputError
from mfff.utils.errors import find_cause


def instantiate(node, *args, **kwargs):
    try:
        return hydra.utils.instantiate(node, *args, **kwargs)
    except InstantiationException as err:
        cause = find_cause(err, UserInputError)
        if cause is None:
            raise
        raise cause from None
