from gome_agent.task.description import prompt_description
from tests.shared import shared

SECTIONS = ["# Overview\n" + "The task. " * 50, "## Prizes\n" + "Money. " * 400, "## Evaluation\n" + "Log loss. " * 300,
            "### Submission File\n" + "id,EAP,HPL\n" * 100, "## Timeline\n" + "Dates. " * 300, "## Data\n" + "Rows. " * 600]


def test_a_short_description_is_kept_as_it_is():
    assert prompt_description("# T\n\nShort.\n") == "# T\n\nShort."


def test_a_long_description_keeps_evaluation_and_submission_whole_and_drops_prizes_first():
    text = "\n".join(SECTIONS)
    out = prompt_description(text, limit=6000)
    assert len(out) <= 6000 + 300
    assert SECTIONS[2].strip() in out and SECTIONS[3].strip() in out  # whole, although long
    assert "Money." not in out and "Dates." not in out
    assert "[Sections left out to save space: Prizes; Timeline]" in out
    assert out.index("# Overview") < out.index("## Evaluation") < out.index("## Data")  # original order
    assert "characters of this section cut]" in out  # the data section, cut to what fits


def test_real_long_descriptions_keep_their_evaluation_sections():
    for name in ("ranzcr-clip-catheter-line-classification", "mlsp-2013-birds", "detecting-insults-in-social-commentary"):
        text = shared("mlebench", "competitions", name, "description.md").read_text()
        out = prompt_description(text)
        assert len(text) > 8000 and len(out) < 9000
        evaluation = [line for line in text.splitlines() if line.startswith("#") and "valuation" in line]
        assert evaluation and all(line in out for line in evaluation)
