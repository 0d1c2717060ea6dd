"""Prompt templates: loading (user overrides first), rendering, and checking.

Templates are Jinja2 files in the top-level `prompts/` folder; a folder given with
`--prompts-dir` overrides them by file name. Each template declares its inputs
in `INPUTS` below (and in its header comment); `gome prompts check` renders
every template with sample data and reports unknown variables and syntax errors.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta

from gome_agent.errors import PromptError
from gome_agent.llm.types import Message

# The top-level prompts/ folder of a checkout, shipped in the wheel as gome_agent/prompts/.
DEFAULT_DIR = Path(str(importlib.resources.files("gome_agent.prompts")))

# What each template may use. Partials (leading underscore) are included by others.
INPUTS: dict[str, set[str]] = {
    "system": set(),
    "_task": {"task"},
    "_scenario": {"task", "environment"},
    "_contract": {"task", "run_time_limit"},
    "_code_edits": {"functions"},
    "_fit_predict": {"plan"},
    "task_analysis": {"competition_id", "description", "files", "sample_submission", "metric_hints"},
    "draft": {"task", "environment", "run_time_limit", "stage_guidance", "budget", "avoid", "failures", "scaffold",
              "stub"},
    "scaffold": {"plan"},
    "function": {"task", "environment", "plan", "stub", "avoid", "failures"},
    "function_change": {"task", "environment", "plan", "current", "score", "direction", "tried"},
    "function_fix": {"task", "environment", "plan", "current", "failure", "earlier"},
    "function_gradient": {"task", "environment", "plan", "current", "score", "tried", "worked", "common", "k"},
    "gradient": {"task", "environment", "stage_guidance", "budget", "run_time_limit", "best", "accepted", "history",
                 "memory", "k"},
    "update": {"task", "environment", "run_time_limit", "stage_guidance", "direction", "best", "functions"},
    "debug": {"task", "environment", "run_time_limit", "goal", "code", "failure", "earlier", "functions"},
    "direct": {"task", "environment", "run_time_limit", "stage_guidance", "budget", "best", "history", "functions"},
}
def _environment(override_dir: Path | None) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if override_dir is not None:
        loaders.append(jinja2.FileSystemLoader(str(override_dir)))
    loaders.append(jinja2.FileSystemLoader(str(DEFAULT_DIR)))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,
    )


class Prompts:
    """Renders the named templates into chat messages."""

    def __init__(self, override_dir: Path | None = None) -> None:
        if override_dir is not None and not override_dir.is_dir():
            raise PromptError(f"prompts folder {override_dir} does not exist")
        self.override_dir = override_dir
        self._env = _environment(override_dir)
        self._cache: dict[str, jinja2.Template] = {}

    def _template(self, name: str) -> jinja2.Template:
        if name not in self._cache:
            try:
                self._cache[name] = self._env.get_template(f"{name}.j2")
            except jinja2.TemplateNotFound as exc:
                raise PromptError(f"prompt template {name}.j2 not found") from exc
            except jinja2.TemplateSyntaxError as exc:
                raise PromptError(f"prompt template {exc.filename or name}: line {exc.lineno}: {exc.message}") from exc
        return self._cache[name]

    def render(self, name: str, **context: Any) -> str:
        try:
            return self._template(name).render(**context).strip() + "\n"
        except jinja2.UndefinedError as exc:
            raise PromptError(f"prompt template {name}.j2 uses an unknown variable: {exc.message}") from exc
        except jinja2.TemplateError as exc:
            raise PromptError(f"prompt template {name}.j2 failed to render: {exc}") from exc

    def messages(self, name: str, **context: Any) -> list[Message]:
        """The system message and the rendered template as the user message."""
        return [
            Message(role="system", content=self.render("system")),
            Message(role="user", content=self.render(name, **context)),
        ]


@dataclass(frozen=True)
class TemplateProblem:
    template: str
    message: str

    def __str__(self) -> str:
        return f"{self.template}: {self.message}"


def check_prompts(folder: Path) -> tuple[list[str], list[TemplateProblem]]:
    """Render every template (overrides from `folder`, defaults otherwise) with sample data.

    Returns the names checked and the problems found: syntax errors, variables a
    template may not use, render failures, and files that override nothing.
    """
    from gome_agent.strategies.prompt_samples import sample_context

    if not folder.is_dir():
        raise PromptError(f"prompts folder {folder} does not exist")
    env = _environment(folder)
    problems: list[TemplateProblem] = []
    for path in sorted(folder.glob("*.j2")):
        if path.stem not in INPUTS:
            problems.append(
                TemplateProblem(path.name, f"overrides no template (known: {', '.join(sorted(INPUTS))})")
            )
    context = sample_context()
    checked: list[str] = []
    for name in INPUTS:
        checked.append(name)
        source, filename, _ = env.loader.get_source(env, f"{name}.j2")  # type: ignore[union-attr]
        try:
            parsed = env.parse(source, name=f"{name}.j2", filename=filename)
        except jinja2.TemplateSyntaxError as exc:
            problems.append(TemplateProblem(f"{name}.j2", f"syntax error at line {exc.lineno}: {exc.message}"))
            continue
        unknown = meta.find_undeclared_variables(parsed) - INPUTS[name]
        if unknown:
            problems.append(
                TemplateProblem(
                    f"{name}.j2",
                    f"unknown variable(s) {', '.join(sorted(unknown))}; "
                    f"this template's inputs are: {', '.join(sorted(INPUTS[name])) or 'none'}",
                )
            )
            continue
        try:
            env.from_string(source).render(**{k: v for k, v in context.items() if k in INPUTS[name]})
        except jinja2.TemplateError as exc:
            problems.append(TemplateProblem(f"{name}.j2", f"fails to render with sample data: {exc}"))
    return checked, problems
