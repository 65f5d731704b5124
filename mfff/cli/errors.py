"""One clear line and a distinct exit code for what went wrong, whatever Hydra or Lightning wrapped it in."""

from __future__ import annotations

import contextlib
import logging
import sys

from omegaconf.errors import MissingMandatoryValue

from mfff.errors import TrainingDiverged, UserInputError
from mfff.utils.errors import find_cause

log = logging.getLogger(__name__)

# exit codes: 1 is a bug (a traceback), 2 bad input, 3 a run that diverged
INPUT_EXIT, DIVERGED_EXIT = 2, 3


def fail(program: str, message: str, code: int) -> None:
    print(f"{program}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


@contextlib.contextmanager
def user_errors(program: str, in_sweep: bool = False):
    """Turn bad input into `<program>: error: <message>` (exit 2) and a diverged run into exit 3.

    Args:
        in_sweep: a Hydra multirun job; a diverged job is logged and the sweep goes on (the sweep's exit code
            reports it at the end, see `mfff.cli.hydra_checks`), so one bad learning rate does not stop the rest.
    """
    try:
        yield
    except Exception as err:
        ours = find_cause(err, UserInputError)
        if ours is not None:
            fail(program, str(ours), INPUT_EXIT)
        missing = find_cause(err, MissingMandatoryValue)
        if missing is not None:
            key = getattr(missing, "full_key", None) or "a config value"
            fail(
                program,
                f"{key} is required (it is ??? in the config); set it on the command line: {key}=<value>",
                INPUT_EXIT,
            )
        diverged = find_cause(err, TrainingDiverged)
        if diverged is None:
            raise
        if in_sweep:
            log.error("%s: %s", program, diverged)
            return
        fail(program, str(diverged), DIVERGED_EXIT)
