"""Find our own error inside the wrappers Hydra and Lightning put around it."""

from __future__ import annotations


def find_cause(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, kind):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
