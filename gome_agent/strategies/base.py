"""The strategy interface, and the proposals every strategy builds on.

A strategy decides the code of a trace's next step; the trace does the rest (runs it with bounded
debugging, checks it, accepts or rejects it against the trace's best, records it). What strategies
share is here: the prompt context, asking for code (re-asked when a reply's edits do not apply),
a first draft kept apart from the other traces' drafts, a fix of failing code, a change straight
from the feedback, and the views of the trace's past. A new strategy is one module with a
subclass of `Strategy`, named in `gome_agent.strategies.STRATEGIES`.
"""

from __future__ import annotations

import itertools
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from gome_agent.llm.types import REPETITION, Message
from gome_agent.optimizer import budget as budget_mod
from gome_agent.optimizer.edits import (
    EditError,
    function_head,
    function_lines,
    def_line,
    function_reply,
    function_source,
    line_reply,
    program_key,
    new_code,
    salvage_cut,
    script_model,
    summary_line,
    unwritten,
)
from gome_agent.records.events import DraftApproach, StepRecord
from gome_agent.strategies.step import FailedDraft, Meter, Services, StepFailed, TraceState
from gome_agent.strategies.views import (
    AcceptedView,
    BestView,
    Failure,
    History,
    MemoryView,
    PromptContext,
    StepView,
    fmt_score,
    tail,
)
from gome_agent.task.scaffold import is_weak_model

_SHORTER_EDITS = ("Reply again, shorter: the `Change:` line and only the SEARCH/REPLACE blocks the change needs, "
                  "each SEARCH as short as uniqueness allows, no whole file and no explanations.")
_SHORTER_FILE = "Reply again with a more compact main.py: no comments, no unused code, no explanations."
_SHOWN_CUT_CHARS = 4000  # of a cut reply, what goes back to the model with the re-ask
SCAFFOLD_REPLY_TOKENS = 1024  # output limit of a scaffolded draft's replies (fit_predict, maybe make_features)
# Small local models often answer a draft with its `Approach:` line alone and repeat that when simply
# asked again; a re-ask that names what was missing and asks for the code alone gets code more often.
_CODE_ONLY = ("That reply named the approach but held no code. Now write that solution: reply with the complete "
              "main.py only, in one ```python block that starts with its imports and honours the solution "
              "contract above. No other text.")
# Asked for a function, the 0.5B model repeated a code-less `Change:` line word for word when told only that
# the reply held no code; naming the block's first line gets the function more often.
_CODE_ONLY_SCAFFOLD = ("That reply held no code. Now write it: reply with the whole function fit_predict{change} (and "
                       "the imports it needs) in one ```python block that begins with the line `{signature}`. "
                       "No other text.")
_CHANGE_ROLES = ("update", "direct")  # the roles whose replies change the best (not drafts or fixes)
_UNCHANGED_FIX = "the reply's code is the failing code unchanged; change what caused the error"
_LINE_FIX = ("That reply's code is the failing code unchanged. Fix only line {line} of main.py, where it failed:\n"
             "```python\n{code}\n```\nThe error: {error}\nReply with the corrected line (or the few lines that "
             "replace it) in one ```python block. No other text.")
_SHORTER_FUNCTIONS = ("Reply with only the function fit_predict (its def line, its body and the imports it needs) "
                      "in one ```python block, not the whole file.")
# What the scaffold leaves to write (prompts/scaffold.j2): code built on it whose functions are still
# empty would only fail when run.
_STUB = re.compile(r'raise NotImplementedError\("write \w+"\)')
_SCAFFOLD_FUNCTIONS = ("make_features", "fit_predict")


def _shown(text: str, cut: bool) -> str:
    if not cut or len(text) <= _SHOWN_CUT_CHARS:
        return text
    return text[:_SHOWN_CUT_CHARS] + f"\n[... {len(text) - _SHOWN_CUT_CHARS} more characters, then cut off]"


@dataclass(frozen=True)
class Proposal:
    """A step's code, what the reply said it changed, and the code it was changed from (None for a draft)."""

    code: str
    change: str
    base: str | None


class Strategy(ABC):
    """How one trace chooses the code of its next step."""

    name: ClassVar[str]
    # What becomes of a rejected step's code, as its lesson says it.
    rejected_code: ClassVar[str] = "rolled back"

    def __init__(self, *, index: int, services: Services, state: TraceState) -> None:
        self.index = index
        self.services = services
        self.state = state
        self.cfg = services.config
        self.opt = services.config.optimizer
        self._program_keys: dict[str, str | None] = {}  # an earlier step's code_dir -> program_key of its main.py

    @property
    def max_debug(self) -> int:
        """Fix attempts inside one step when its code fails."""
        return self.opt.max_debug

    @abstractmethod
    def propose(self, record: StepRecord, meter: Meter) -> Proposal:
        """The code of the step `record` starts; fills in its kind, parent, hypothesis and
        whatever else the strategy decided (component, diagnosis, ranking)."""

    # The prompt context ----------------------------------------------------------
    def context(self) -> PromptContext:
        s = self.services
        return PromptContext(
            task=s.task,
            environment=s.environment,
            run_time_limit=budget_mod.format_duration(s.budget.run_timeout(self.max_run_s)),
            stage_guidance=budget_mod.STAGE_GUIDANCE[s.budget.stage(self.cfg.stages)],
            budget=s.budget.describe(),
        )

    @property
    def max_run_s(self) -> float:
        """The longest one run of a solution may take."""
        if self.cfg.execution.max_run_minutes is not None:
            return self.cfg.execution.max_run_minutes * 60
        return min(3600.0, self.cfg.time_limit_s / 4)

    # Asking for code ---------------------------------------------------------------
    def ask_code(self, messages: list[Message], current: str | None, role: str, meter: Meter,
                 function: str | None = None, failure: Failure | None = None) -> tuple[str, str]:
        """Ask for code. Returns the new code and the reply's own summary of it.

        `function`: the one function of `current` the reply was asked for (a small model's prompts); only
        that function (and the imports and helpers next to it) is taken from the reply (`function_reply`).
        `failure`: what a fix answers; a fix that copies the failing code back unchanged is asked once for
        the failing line alone (`line_reply`), when the failure names one.
        A reply cut off at the output limit is never applied, not even its complete edit blocks (only a
        reply asked for functions alone, `function` or a scaffolded draft, keeps the functions it
        finished: `salvage_cut`); it is re-asked with that reason (edits only, or a more compact file).
        A reply whose edits do not apply is re-asked with the exact reason (`max_reply_edit_retries`
        times); when its edits still fail, the whole file is asked for once (not of a reply asked for
        one function) before the step gives up (StepFailed). A weak model (`is_weak_model`) is re-asked
        afresh instead, the reason added to the request, without its unusable reply, which it would copy.
        A reply asked for one function that holds a script instead gives the function its model
        (`script_model`).
        """
        tags = {"trace": self.index, "step": self.state.next_step}
        re_asks, whole_file = self.opt.max_reply_edit_retries, function is not None
        announced = ""  # a summary line of an earlier reply, kept when the code comes in a later one
        line = failure.line if failure is not None and current is not None else None
        if line is not None and current is not None:
            # Of a one-function request, only a line of that function (not, say, the scaffold's own check).
            try:
                span = function_lines(current, function) if function else (1, len(current.splitlines()))
            except SyntaxError:
                span = None
            line = line if span is not None and span[0] <= line <= span[1] else None
        by_line = line_asked = False  # whether the last re-ask (any re-ask) asked for the failing line alone
        # A scaffolded draft needs a function or two: a small model's runaway reply (it repeats itself up to
        # the output limit, minutes on a CPU) is cut much earlier.
        functions_only = function is not None or (role == "draft" and current is not None)
        limit = min(SCAFFOLD_REPLY_TOKENS, self.cfg.llm.max_output_tokens) if functions_only else None
        asked, weak = messages, is_weak_model(self.cfg.llm.model_for(role))
        for attempt in itertools.count():
            completion = self.services.llm.complete(messages, role=role, deadline=self.services.budget.deadline,
                                                    tags={**tags, "reask": attempt} if attempt else tags,
                                                    max_output_tokens=limit)
            meter.add(completion)
            cut, asked_line, by_line, unchanged = completion.cut, by_line, False, False
            try:
                salvaged = salvage_cut(completion.text, current) if cut and functions_only and current else None
                if cut and salvaged is None:
                    how = ("fell into a loop (it repeated the same text over and over) and was stopped"
                           if completion.finish_reason == REPETITION else
                           "was cut off at the output limit before it ended")
                    raise EditError(f"the reply {how}, so none of it was applied")
                whole = function is not None and re.search(rf"^\s*def {function}\(", completion.text, re.MULTILINE)
                if asked_line and line is not None and current is not None and not whole:
                    code, summary = line_reply(completion.text, current, line), ""
                elif salvaged:
                    code, summary = salvaged, summary_line(completion.text)
                elif function is not None and current is not None:
                    code, summary = self._function_reply(completion.text, current, function, meter)
                else:
                    code, summary = new_code(completion.text, current)
                if role != "draft" and code == current:
                    unchanged = True
                    # The 0.5B model, asked again for a fix or a change, copied the function back unchanged;
                    # run again, it would only fail or score as before.
                    raise EditError(_UNCHANGED_FIX if role == "debug" else
                                    "the reply's code is the current code unchanged; make the change it names")
                earlier = self.ran_before(code) if role in _CHANGE_ROLES else None
                if earlier is not None:
                    # The 0.5B model, shown the change among those tried, made it again four times in one run.
                    raise EditError(f"the reply's code is the code step {earlier.step} already ran "
                                    f"({earlier.status}{f', {fmt_score(earlier.score)}' if earlier.score is not None else ''}); "
                                    "make a different change")
                stubs = unwritten(code, _SCAFFOLD_FUNCTIONS) if current is not None and _STUB.search(current) else []
                if stubs:
                    names = " and ".join(stubs)
                    raise EditError(f"{names} {'has' if len(stubs) == 1 else 'have'} no body yet (only a "
                                    f"docstring, pass or NotImplementedError): write the code of {names} that does "
                                    "its job")
                return code, summary or announced
            except EditError as exc:
                announced = announced or summary_line(completion.text)
                no_code = (role == "draft" or functions_only) and not cut and "```" not in completion.text
                if unchanged and not line_asked and line is not None and current is not None and failure is not None:
                    # Asked again for the whole code, the 0.5B model copied it back once more.
                    by_line = line_asked = True
                    ask = _LINE_FIX.format(line=line, code=current.splitlines()[line - 1].strip(),
                                           error=failure.cause or "; ".join(failure.problems[:1]))
                elif attempt < re_asks and no_code:
                    # Named again, the change is made more often than the function copied back unchanged.
                    change = f", with this change made: {announced}" if announced and role != "draft" else ""
                    ask = _CODE_ONLY_SCAFFOLD.format(signature=def_line(current, function or "fit_predict"),
                                                     change=change) if current is not None else _CODE_ONLY
                elif attempt < re_asks and not cut and weak and asked[-1].role == "user":
                    # Shown its unusable reply and asked again, the 0.5B model copied it back word for word
                    # (8 of 9 re-asks of a script instead of fit_predict); asked afresh, it samples anew.
                    messages = [*asked[:-1], Message(role="user", content=(
                        f"{asked[-1].content}\n\nAn earlier reply to this request could not be applied: {exc}. "
                        "Do not repeat it."))]
                    continue
                elif attempt < re_asks:
                    shorter = _SHORTER_FUNCTIONS if functions_only else _SHORTER_EDITS if current \
                        else _SHORTER_FILE
                    again = shorter if cut else "Reply again, correctly."
                    ask = f"That reply could not be applied: {exc}. {again}"
                elif current is not None and not whole_file and not cut:
                    whole_file = True
                    ask = (f"That reply could not be applied either: {exc}. Reply instead with the whole new "
                           "main.py, with the change made, in one ```python block (after the `Change:` line).")
                else:
                    raise StepFailed(f"the model's code reply could not be used: {exc}") from exc
                messages = [*messages, Message(role="assistant", content=_shown(completion.text, cut)),
                            Message(role="user", content=ask)]
        raise AssertionError("unreachable")

    def _function_reply(self, reply: str, current: str, function: str, meter: Meter) -> tuple[str, str]:
        """`function_reply`, or else the model of the script the reply holds taken into `function`
        (`script_model`); the step records that as an auto fix."""
        try:
            return function_reply(reply, current, function)
        except EditError:
            plan = self.services.task.scaffold
            taken = script_model(reply, current, function, plan.prediction if plan else None)
            if taken is None:
                raise
        meter.auto_fixes.append(f"took the model `{taken.estimator}` of the reply's script into {function}")
        return taken.code, summary_line(reply)

    # The proposals ---------------------------------------------------------------------
    def draft(self, record: StepRecord, meter: Meter, also_avoid: list[str] | None = None) -> Proposal:
        """A first complete solution, announced (before it runs) so that other drafts can differ; written
        into gome's main.py skeleton when the run scaffolds this draft (`scaffold`)."""
        # Only drafts whose code was checked or run: "the reply held no code" teaches nothing about the task.
        failures = [s.lesson for s in self.state.steps if s.kind == "draft" and s.status == "failed"][-3:]
        avoid = [*self.sibling_approaches(), *(also_avoid or [])]
        scaffold = self.scaffold()
        stub = function_head(scaffold, "fit_predict") if scaffold else None
        prompts, context = self.services.prompts, self.context()
        function = None
        if scaffold and is_weak_model(self.cfg.llm.model_for("draft")):
            # A small model writes the one function in a short prompt (prompts/function.j2 says why).
            messages = prompts.messages("function", task=context.task, environment=context.environment,
                                        plan=self.services.task.scaffold, stub=stub, avoid=avoid, failures=failures)
            function = "fit_predict"
        else:
            messages = prompts.messages("draft", **context.variables(), avoid=avoid, failures=failures,
                                        scaffold=scaffold, stub=stub)
        record.scaffolded = scaffold is not None
        code, approach = self.ask_code(messages, scaffold, "draft", meter, function)
        record.hypothesis = approach or "first complete solution"
        # A strong model may answer a scaffolded draft with a program of its own; then it was not scaffolded.
        record.scaffolded = scaffold is not None and scaffold.splitlines()[0] in code
        self.services.events.write(DraftApproach(trace=self.index, step=self.state.next_step,
                                                 approach=record.hypothesis))
        return Proposal(code, record.hypothesis, scaffold)

    def scaffold(self) -> str | None:
        """The main.py skeleton this draft is written into (task/scaffold.py), or None for a free draft.

        `optimizer.scaffold` on: whenever the task has one; auto: when the draft model's name states
        fewer than 30B parameters, or once a draft of this trace has failed."""
        plan, mode = self.services.task.scaffold, self.opt.scaffold
        if plan is None or not plan.available or mode == "off":
            return None
        if mode == "auto":
            failed = any(s.kind == "draft" and not s.accepted for s in self.state.steps)
            if not failed and not is_weak_model(self.cfg.llm.model_for("draft")):
                return None
        return self.services.prompts.render("scaffold", plan=plan)

    def repair(self, record: StepRecord, failed: FailedDraft, meter: Meter) -> Proposal:
        """Go on debugging the trace's failed draft (its code, shown its last failure) instead of
        writing a fresh one: a weak model's drafts mostly fail on one fixable error."""
        # Recorded first: a repair whose reply is unusable is still a repair of that draft.
        record.hypothesis, record.repairs, record.scaffolded = failed.approach, failed.step, failed.scaffolded
        tried = [f"step {s.step}: {s.lesson}" for s in self.state.steps[-failed.repairs - 1:] if s.status == "failed"]
        code, change = self.fix(failed.code, failed.failure, failed.approach, tried, meter)
        return Proposal(code, f"repair of the draft of step {failed.step}: {change or 'a fix'}", failed.code)

    def sibling_approaches(self) -> list[str]:
        """Approaches other traces chose for their drafts; waits (bounded) for lower-numbered traces
        to announce theirs, so that K traces started together do not all draft the same thing."""
        budget = self.services.budget
        waited_until = time.monotonic() + min(self.opt.diversify_wait_s, budget.remaining())
        while True:
            announced = [e for e in self.services.events.read()
                         if isinstance(e, DraftApproach) and e.trace != self.index]
            earlier = {e.trace for e in announced if e.trace < self.index}
            if len(earlier) >= self.index or time.monotonic() >= waited_until:
                break
            time.sleep(0.5)
        seen: dict[str, None] = {}
        for e in announced:
            seen.setdefault(f"trace {e.trace}: {e.approach}", None)
        return list(seen)

    def function_edits(self, code: str, role: str) -> list[str]:
        """The scaffold's functions a small model rewrites whole to change `code` (prompts/_code_edits.j2):
        the 0.5B model answered SEARCH/REPLACE requests with a `Change:` line and no edit at all, but
        writes whole functions; empty for other models and for code without those functions."""
        if not is_weak_model(self.cfg.llm.model_for(role)):
            return []
        try:
            return [name for name in _SCAFFOLD_FUNCTIONS if function_head(code, name) is not None]
        except SyntaxError:
            return []

    def fix(self, code: str, failure: Failure, goal: str, earlier: list[str], meter: Meter) -> tuple[str, str]:
        """A fix of failing code, given exactly what went wrong."""
        current = self.written_function(code, "debug")
        if current is not None:
            # A small model fixes the one function it wrote, in a short prompt (prompts/function_fix.j2 says why).
            context = self.context()
            messages = self.services.prompts.messages(
                "function_fix", task=context.task, environment=context.environment, plan=self.services.task.scaffold,
                current=current, failure=failure, earlier=earlier)
            return self.ask_code(messages, code, "debug", meter, function="fit_predict", failure=failure)
        messages = self.services.prompts.messages(
            "debug", **self.context().variables(), goal=goal, code=code, failure=failure, earlier=earlier,
            functions=self.function_edits(code, "debug"),
        )
        return self.ask_code(messages, code, "debug", meter, failure=failure)

    def written_function(self, code: str, role: str) -> str | None:
        """The fit_predict that a small model wrote into the scaffold of `code`, which it then changes and
        fixes alone; None for other models, code without a scaffold plan, or no written fit_predict (those
        edit the whole file)."""
        plan = self.services.task.scaffold
        if plan is None or not plan.available or not is_weak_model(self.cfg.llm.model_for(role)):
            return None
        try:
            current = function_source(code, "fit_predict")
            return None if current is None or unwritten(code, ("fit_predict",)) else current
        except SyntaxError:
            return None

    def function_change(self, role: str, direction: str | None, meter: Meter) -> tuple[str, str] | None:
        """A small model's change of a scaffolded best, asked as its fit_predict rewritten in a short prompt
        (prompts/function_change.j2 says why), towards `direction` when a gradient chose one; None when the
        best has no `written_function` (then the whole file is edited)."""
        plan, best, code = self.services.task.scaffold, self.state.best, self.state.best_code
        current = self.written_function(code, role) if code is not None else None
        if current is None or best is None or code is None:
            return None
        context = self.context()
        messages = self.services.prompts.messages(
            "function_change", task=context.task, environment=context.environment, plan=plan, current=current,
            score=fmt_score(best.score), direction=direction,
            # With a direction, the gradient has weighed what was tried; the 0.5B model, shown that list as
            # well, copied it as comments instead of making the change.
            tried=self.tried_changes() if direction is None else [])
        return self.ask_code(messages, code, role, meter, function="fit_predict")

    def ran_before(self, code: str) -> StepRecord | None:
        """The last earlier step of this trace that ran this program (docstrings, comments and layout aside)."""
        key = program_key(code)
        if key is None:
            return None
        for step in reversed(self.state.steps):
            if step.code_dir is None or step.run_status is None:
                continue
            if step.code_dir not in self._program_keys:
                try:
                    ran = (self.cfg.workdir / step.code_dir / "main.py").read_text(encoding="utf-8")
                except OSError:
                    ran = ""
                self._program_keys[step.code_dir] = program_key(ran)
            if self._program_keys[step.code_dir] == key:
                return step
        return None

    def tried_changes(self) -> list[str]:
        """This trace's last changes of its best, one line each, as a small model's short prompts show them."""
        return [f"{s.hypothesis}: {s.status}" + (f" ({fmt_score(s.score)})" if s.score is not None else "")
                + ("" if s.status in ("accepted", "rejected") else f": {s.cause or s.message}"[:160])
                for s in self.state.steps[-4:] if s.kind != "draft" and s.hypothesis]

    def direct(self, meter: Meter) -> tuple[str, str]:
        """One change of the best code straight from its feedback, with no structured diagnosis."""
        small = self.function_change("direct", None, meter)
        if small is not None:
            return small[0], small[1] or "direct change"
        messages = self.services.prompts.messages(
            "direct", **self.context().variables(), best=self.best_view(), history=self.history().recent,
            functions=self.function_edits(self.state.best_code or "", "direct"),
        )
        code, change = self.ask_code(messages, self.state.best_code, "direct", meter)
        return code, change or "direct change"

    # Views of the trace -------------------------------------------------------------------
    def best_view(self) -> BestView:
        best = self.state.best
        assert best is not None and self.state.best_code is not None
        return BestView(
            step=best.step, score=fmt_score(best.score), hypothesis=best.hypothesis,
            runtime=budget_mod.format_duration(self.state.best_runtime_s),
            stdout_tail=tail(self.state.best_stdout_tail, 1500), code=self.state.best_code,
            score_table=self.state.best_score_table,
        )

    def history(self) -> History:
        """Accepted path, recent steps and recalled successes, each bounded in length."""
        steps = self.state.steps
        recent = steps[-self.opt.history_window :]
        if not self.opt.momentum:
            # The paper's w/o-momentum ablation: no successes anywhere, only failures in the history.
            return History(recent=[StepView.of(s) for s in recent if not s.accepted])
        accepted = [s for s in steps if s.accepted][-self.opt.accepted_window :]
        shown = {(self.index, s.step) for s in accepted}
        last = steps[-1] if steps else None
        best = self.state.best
        query = " ".join(
            x for x in (
                self.services.task.task_type,
                best.hypothesis if best else "",
                (last.limiting_problem or "") if last else "",
                last.hypothesis if last else "",
            ) if x
        )
        memory = self.services.memory
        recalls = memory.recall(
            query,
            best_score=best.score if best else None,
            higher_is_better=self.services.task.higher_is_better,
            top_k=self.opt.memory_top_k,
            exclude_ids=memory.ids_of(shown),
        )
        return History(
            accepted=[AcceptedView.of(s) for s in accepted],
            recent=[StepView.of(s) for s in recent],
            memory=[MemoryView.of(r, self.index) for r in recalls],
        )
