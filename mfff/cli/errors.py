"""One clear line and a distinct exit code for what went wrong, whatever Hydra or Lightning wrapped it in."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable

from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException, OverrideParseException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, MissingMandatoryValue

from mfff.errors import Interrupted, TrainingDiverged, UserError
from mfff.utils.errors import find_cause, full_disk, full_disk_message

log = logging.getLogger(__name__)

# exit codes: 1 is a bug (a traceback), 2 bad input, 3 a run that diverged, 4 a run stopped by SIGTERM (saved)
INPUT_EXIT, DIVERGED_EXIT, INTERRUPTED_EXIT = 2, 3, 4


def fail(program: str, message: str, code: int) -> None:
    print(f"{program}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def fail_on_full_disk(program: str, error: BaseException) -> None:
    """A full disk outside training (the config Hydra saves, the pre-training cache, a label shard): one line
    naming the directory. Inside training a full disk is an `Interrupted` run, recorded as such."""
    disk = full_disk(error)
    if disk is not None:
        fail(program, f"{full_disk_message(disk, os.getcwd())}; free space there and run the same command again "
                      "(resume=auto continues a run from its last checkpoint)", INTERRUPTED_EXIT)  # fmt: skip


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
        ours = find_cause(err, UserError)
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
        interrupted = find_cause(err, Interrupted)
        if interrupted is not None:
            fail(program, str(interrupted), INTERRUPTED_EXIT)
        fail_on_full_disk(program, err)
        diverged = find_cause(err, TrainingDiverged)
        if diverged is None:
            raise
        if in_sweep:
            log.error("%s: %s", program, diverged)
            return
        fail(program, str(diverged), DIVERGED_EXIT)


def hydra_error_line(error: HydraException) -> str | None:
    """One line for Hydra's own config errors: an unknown config group option, an unknown key, an override it
    cannot parse. None for other errors."""
    if isinstance(error, MissingConfigException) and error.options is not None and error.missing_cfg_file:
        group, _, choice = error.missing_cfg_file.rpartition("/")
        options = ", ".join(error.options)
        if not choice:
            return f"{group}= needs an option; choose one of {options}"
        return f"{group}={choice} is not an option of {group}; choose one of {options}"
    if isinstance(error, OverrideParseException):
        key, _, value = str(error.override).partition("=")
        if not value.isascii() and not value.startswith(("'", '"')):  # Hydra's grammar: non-ASCII only when quoted
            return (
                f"cannot parse the override {error.override!r}: its value has non-ASCII characters, which Hydra "
                f"takes only in quotes; quote the value, e.g. '{key}=\"{value}\"' (the single quotes for the shell)"
            )
        reason = error.message.splitlines()[0]
        return (
            f"cannot parse the override {error.override!r}: {reason}; quote values with brackets or commas, e.g. "
            "'key=[a,b]' (https://hydra.cc/docs/advanced/override_grammar/basic/)"
        )
    if not isinstance(error, ConfigCompositionException):
        return None
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = lines[: next((i for i, line in enumerate(lines) if line.startswith("Config search path")), len(lines))]
    first = lines[0] if lines else str(error)
    if isinstance(error.__cause__, (ConfigAttributeError, ConfigKeyError)) and first.startswith("Could not override '"):
        key = first.split("'")[1]
        return (
            f"{key} is not a key of the config; check its spelling (`--cfg job` prints every key), or add a new key "
            f"with +{key}=<value>"
        )
    return " ".join(lines)


def run_hydra_app(program: str, app: Callable[[], object]) -> None:
    """Run a `@hydra.main` app; Hydra's config errors become `<program>: error: <one line>` and exit 2 (Hydra
    itself prints them over several lines and exits 1)."""
    previous = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises instead of printing, so its errors reach us
    try:
        app()
    except HydraException as error:
        line = hydra_error_line(error)
        if line is None:
            raise
        fail(program, line, INPUT_EXIT)
    except Exception as error:
        fail_on_full_disk(program, error)
        raise
    finally:
        if previous is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = previous
