import re

import pytest

from gome_agent.mlebench.instructions import adapt_instructions
from tests.shared import shared


@pytest.mark.parametrize("name", ["instructions.txt", "instructions_obfuscated.txt"])
def test_mlebench_instructions_name_the_contract_paths_and_keep_the_priority_true(name):
    text = adapt_instructions(shared("mlebench", name).read_text())
    assert "/home/" not in text
    assert "you MUST produce a submission file at `./submission.csv`" in text
    assert re.search(r"dataset files for the (competition|task) are available in `\./input/`", text)
    assert "Only `./submission.csv` counts" in text
    assert "gome checks every `./submission.csv` with MLE-bench's validation server itself" in text
    # The priority sentence stays, and is true: the points above now hold for the solution itself.
    assert "the above points should always take priority" in text
    assert "in the competition description (at the end of this text), the above points" in text


def test_unknown_container_paths_are_not_kept_silently():
    text = adapt_instructions("Write logs to /home/data/../submission-extra and read /home/instructions.txt.")
    assert "/home/" not in text
