"""Hydra callbacks: a run dir that cannot be written is one line before anything runs; a sweep with a diverged
job exits non-zero once every job has finished."""

from __future__ import annotations

from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mfff.cli.errors import DIVERGED_EXIT, INPUT_EXIT, fail
from mfff.errors import UserError
from mfff.records import DIVERGED, FILENAME, RunRecord
from mfff.utils.paths import require_writable


def _program(config: DictConfig) -> str:
    return f"mfff-{config.hydra.job.name}"


def check_writable(directory: Path, key: str, program: str) -> None:
    try:
        require_writable(directory, key, example="multirun/mysweep" if "sweep" in key else "outputs/myrun")
    except UserError as err:
        fail(program, str(err), INPUT_EXIT)


class RunDirCheck(Callback):
    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        check_writable(Path(config.hydra.run.dir), "hydra.run.dir", _program(config))

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        check_writable(Path(config.hydra.sweep.dir), "hydra.sweep.dir", _program(config))

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        diverged = []
        for path in sorted(Path(config.hydra.sweep.dir).glob(f"*/{FILENAME}")):
            try:
                status = RunRecord.read(path).status
            except (OSError, UserError):
                continue
            if status == DIVERGED:
                diverged.append(str(path))
        if diverged:
            fail(
                _program(config),
                f"{len(diverged)} job(s) of this sweep diverged (the others finished): {', '.join(diverged)}",
                DIVERGED_EXIT,
            )
