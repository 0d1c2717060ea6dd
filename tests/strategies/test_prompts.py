import pytest

from gome_agent.errors import PromptError
from gome_agent.strategies.prompt_samples import sample_context
from gome_agent.strategies.prompts import DEFAULT_DIR, INPUTS, Prompts, check_prompts


def test_every_default_template_renders_with_only_its_inputs():
    prompts = Prompts()
    context = sample_context()
    for name, inputs in INPUTS.items():
        text = prompts.render(name, **{k: context[k] for k in inputs})
        assert text.strip(), name


def test_default_folder_checks_clean():
    checked, problems = check_prompts(DEFAULT_DIR)
    assert problems == []
    assert set(checked) == set(INPUTS)


def test_messages_have_system_then_user():
    msgs = Prompts().messages("debug", **{k: sample_context()[k] for k in INPUTS["debug"]})
    assert [m.role for m in msgs] == ["system", "user"]
    assert "KeyError: 'target'" in msgs[1].content
    assert "Solution contract" in msgs[1].content


def test_gradient_prompt_shows_history_memory_and_scores():
    ctx = sample_context()
    text = Prompts().render("gradient", **{k: ctx[k] for k in INPUTS["gradient"]})
    assert "Switch to LightGBM" in text and "trace 1, 4 steps ago" in text
    assert "Up to 3 candidate directions" in text
    assert '"limiting_problem"' in text


def test_override_by_name(tmp_path):
    (tmp_path / "system.j2").write_text("You are a careful engineer.")
    prompts = Prompts(tmp_path)
    assert prompts.render("system") == "You are a careful engineer.\n"
    assert "Solution contract" in prompts.render("debug", **{k: sample_context()[k] for k in INPUTS["debug"]})


def test_check_reports_unknown_variable_syntax_error_and_stray_file(tmp_path):
    (tmp_path / "draft.j2").write_text("Hello {{ taks.goal }}")
    (tmp_path / "update.j2").write_text("{% if x %}unclosed")
    (tmp_path / "gradiant.j2").write_text("typo in the name")
    _, problems = check_prompts(tmp_path)
    text = "\n".join(str(p) for p in problems)
    assert "draft.j2: unknown variable(s) taks" in text
    assert "update.j2: syntax error at line 1" in text
    assert "gradiant.j2: overrides no template" in text


def test_render_errors_name_the_template(tmp_path):
    (tmp_path / "draft.j2").write_text("{{ nothing_here }}")
    with pytest.raises(PromptError, match="draft.j2 uses an unknown variable"):
        Prompts(tmp_path).render("draft")
    with pytest.raises(PromptError, match="not found"):
        Prompts().render("no_such_template")
    with pytest.raises(PromptError, match="does not exist"):
        Prompts(tmp_path / "missing")


@pytest.mark.parametrize("name, first_line", [("function", "# Approach: ..."), ("function_change", "# Change: ..."),
                                              ("function_fix", "# Change: ...")])
def test_one_function_prompts_ask_for_the_code_first(name, first_line):
    # Asked for a summary line and then the code, the 0.5B model wrote the line alone (128 of 142 changes).
    ctx = sample_context()
    text = Prompts().render(name, **{k: ctx[k] for k in INPUTS[name]})
    last = text.strip().splitlines()[-1]
    assert last.startswith("Reply with one ```python block and no other text")
    assert f"its first line is a comment `{first_line}`" in last
