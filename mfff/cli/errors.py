"""One clear line and exit code 2 for bad user input, whatever Hydra or Lightning wrapped it in."""

from __future__ import annotations

import contextlib
import sys

from mfff.utils.errors import find_cause


@contextlib.contextmanager
def user_errors(program: str, *kinds: type[BaseException]):
    """Turn our own input errors (`kinds`) into `<program>: error: <message>`; re-raise anything else."""
    try:
        yield
    except Exception as err:
        ours = next((cause for kind in kinds if (cause := find_cause(err, kind)) is not None), None)
        if ours is None:
            raise
        print(f"{program}: error: {ours}", file=sys.stderr)
        raise SystemExit(2) from None
