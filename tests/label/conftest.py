import pytest

from mfff.label.pipeline import LabelJob
from tests.helpers import compose_config


def tiny_label_config(tmp_path, *overrides):
    return compose_config(
        "label", ["label=tiny", f"label.work_dir={tmp_path}/work", f"label.dataset_dir={tmp_path}/dataset", *overrides]
    )


@pytest.fixture(scope="session")
def tiny_job(tmp_path_factory):
    """A finished tiny labelling job (sampled, labelled, assembled) shared by read-only tests."""
    tmp = tmp_path_factory.mktemp("tiny")
    job = LabelJob(tiny_label_config(tmp).label)
    job.run()
    return job
