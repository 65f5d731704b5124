import pytest

from tests.slurm.local_slurm import SlurmUnavailable, start, stop


@pytest.fixture(scope="session")
def local_slurm(tmp_path_factory):
    """A single-node SLURM for this test session: the client environment (SLURM_CONF) its jobs are submitted with.
    A machine where it cannot start fails the test with the reason; it is never skipped."""
    root = tmp_path_factory.mktemp("slurm")
    try:
        env = start(root)
    except SlurmUnavailable as error:
        stop(root)
        pytest.fail(f"local SLURM did not start: {error}", pytrace=False)
    yield {**env, "MFFF_SLURM_PARTITION": "debug"}
    stop(root)
