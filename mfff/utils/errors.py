"""Find our own error inside the wrappers Hydra and Lightning put around it."""

from __future__ import annotations

import errno
import os

FULL_DISK = (errno.ENOSPC, errno.EDQUOT)  # no space left; over the disk quota


def find_cause(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, kind):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def full_disk(error: BaseException) -> OSError | None:
    """The OSError inside `error` that says the disk (or the quota) is full, if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno in FULL_DISK:
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def full_disk_message(error: OSError, fallback_dir) -> str:
    """`no space left on device in <dir> (writing <file>)`: the directory to free space in."""
    path = error.filename or error.filename2
    directory = os.path.dirname(os.path.abspath(path)) if path else os.path.abspath(fallback_dir)
    what = "no space left on device" if error.errno == errno.ENOSPC else "disk quota exceeded"
    return f"{what} in {directory}" + (f" (writing {os.path.basename(path)})" if path else "")
