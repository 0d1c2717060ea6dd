"""A zipped sample submission (MLE-bench's text-normalization competitions ship only
`en_sample_submission_2.csv.zip`) becomes a plain `submission.csv` when no solution exists."""

from __future__ import annotations

import gzip
import shutil
import zipfile

import pytest

from gome_agent.errors import GomeError, TaskError
from gome_agent.task.sample import find_sample_submission, write_plain_sample
from tests.fake_llm import Reply
from tests.run.test_coordinator import config_for, in_process


@pytest.fixture
def zipped(tmp_path, competition_dir):
    """A copy of the competition whose sample submission is only in a zip (as MLE-bench prepares it)."""
    data = tmp_path / "data"
    shutil.copytree(competition_dir, data)
    sample = find_sample_submission(data)
    content = sample.read_bytes()
    with zipfile.ZipFile(data / "en_sample_submission_2.csv.zip", "w") as archive:
        archive.write(sample, arcname="en_sample_submission_2.csv")
    sample.unlink()
    return data, content


@pytest.fixture(scope="module")
def competition_dir(tmp_path_factory):
    from gome_agent.bench.competitions import build_breast_cancer

    return build_breast_cancer(tmp_path_factory.mktemp("comp"))


def test_write_plain_sample_decompresses(tmp_path, zipped):
    data, content = zipped
    write_plain_sample(data / "en_sample_submission_2.csv.zip", tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_bytes() == content
    with gzip.open(tmp_path / "s.csv.gz", "wb") as f:
        f.write(content)
    write_plain_sample(tmp_path / "s.csv.gz", tmp_path / "out2.csv")
    assert (tmp_path / "out2.csv").read_bytes() == content


def test_a_zip_without_exactly_one_csv_is_named_as_the_cause(tmp_path):
    with zipfile.ZipFile(tmp_path / "sample_submission.csv.zip", "w") as archive:
        archive.writestr("a.csv", "id,x\n1,2\n")
        archive.writestr("b.csv", "id,x\n1,2\n")
    with pytest.raises(TaskError, match=r"exactly one CSV file.*\['a.csv', 'b.csv'\]"):
        write_plain_sample(tmp_path / "sample_submission.csv.zip", tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_a_run_whose_task_cannot_be_read_submits_the_unzipped_sample(tmp_path, zipped, fake_llm):
    data, content = zipped
    fake_llm.set_responder(lambda request: Reply(status=400))  # the task analysis fails for good
    config = config_for(tmp_path, data, fake_llm, traces=1)
    with pytest.raises(GomeError):
        in_process(config)
    assert (config.workdir / "submission" / "submission.csv").read_bytes() == content
