"""Gome's step: a draft first, then the gradient and the update on the trace's current best.

  1. gradient: a structured diagnosis of the current best (observations, the limiting problem,
     scored candidate directions), informed by the trace's history and the shared success
     memory (momentum); a small model writing into the scaffold gets its compact form (the problem
     and directions as plain lines, for its own fit_predict);
  2. update: the best-ranked direction applied as a minimal code change to the best main.py.

The trace then runs the code (debugging within bounds) and accepts it only if its validation score
improves on the trace's best; otherwise the best is untouched (rolled back) and the lesson stays in
the history. With `structured_gradient` off (the paper's w/o-structured-reasoning ablation) the
update comes straight from the feedback, with no diagnosis.
"""

from __future__ import annotations

from gome_agent.errors import LLMOutputError
from gome_agent.optimizer.common_changes import fitting, untried
from gome_agent.optimizer.gradient import (
    MAX_CANDIDATES,
    SIMILAR,
    Direction,
    Gradient,
    InCode,
    RankedDirection,
    Tried,
    only_repeats,
    parse_compact,
    select_direction,
)
from gome_agent.optimizer.similarity import max_similarity
from gome_agent.llm.types import Message
from gome_agent.records.events import StepRecord
from gome_agent.strategies.base import Proposal, Strategy
from gome_agent.strategies.step import Meter
from gome_agent.strategies.views import DirectionView, fmt_score

# After this many improve steps without a usable gradient (since the last accepted step), a trace stops
# asking for the full form until a step is accepted: each failed one cost a weak model 30-110 s of its 8
# minutes. The compact form is asked for at every step: it costs a few seconds, and a direction from it
# gave the 0.5B model a concrete change where a change straight from the feedback was mostly a vague one.
GRADIENT_FAILURES_BEFORE_DIRECT = 2
# The compact gradient's reply: a problem line and a few one-line directions fit in far less; a small model
# that loops is stopped early (its full gradient replies ran to 1,536 tokens, 100 s on a CPU).
COMPACT_GRADIENT_TOKENS = 320
COMPACT_MEMORY = 3  # successes recalled in the compact prompt
COMPACT_LISTED = 5  # directions read from a compact reply before those already in the code are dropped


class GomeStrategy(Strategy):
    """Reasoning as gradient: diagnose the best solution, move it one step along the best direction."""

    name = "gome"

    def propose(self, record: StepRecord, meter: Meter) -> Proposal:
        if record.kind == "draft":  # the trace has no working solution yet
            record.component = "workflow"
            failed = self.state.failed_draft
            if failed is not None and failed.repairs < self.opt.draft_repairs:
                return self.repair(record, failed, meter)
            return self.draft(record, meter)
        if not self.opt.structured_gradient:
            return self.direct_step(record, meter)
        unusable = self.unusable_gradients()
        compact = self.written_function(self.state.best_code or "", "gradient") is not None
        if unusable >= GRADIENT_FAILURES_BEFORE_DIRECT and not compact:
            record.gradient_error = (f"the last {unusable} gradients of this trace could not be used; "
                                     "no diagnosis until a step is accepted")
            return self.direct_step(record, meter)
        try:
            gradient, ranking, direction = self.diagnose(meter)
        except LLMOutputError as exc:
            # A model that cannot write the gradient's JSON (the 0.5B model, after the repair re-ask)
            # still gets its step: a change straight from the feedback, as in the ablation.
            record.gradient_error = f"the gradient reply could not be used: {exc}"[:500]
            return self.direct_step(record, meter)
        record.gradient, record.ranking = gradient, ranking
        record.limiting_problem = gradient.limiting_problem
        record.hypothesis, record.component = direction.hypothesis, direction.component
        code, change = self.update(direction, meter)
        return Proposal(code, change or direction.hypothesis, self.state.best_code)

    def direct_step(self, record: StepRecord, meter: Meter) -> Proposal:
        code, record.hypothesis = self.direct(meter)
        return Proposal(code, record.hypothesis, self.state.best_code)

    def unusable_gradients(self) -> int:
        """How many steps since the trace's last accepted one had no usable gradient (from the records,
        so a resumed trace counts the same)."""
        count = 0
        for step in reversed(self.state.steps):
            if step.accepted:
                break
            count += step.gradient_error is not None
        return count

    def diagnose(self, meter: Meter) -> tuple[Gradient, list[RankedDirection], Direction]:
        """The gradient of the current best, and the direction it points to (momentum and the
        repeat penalty included)."""
        s = self.services
        current = self.written_function(self.state.best_code or "", "gradient")
        gradient = self.full_gradient(meter) if current is None else self.compact_gradient(current, meter)
        gradient.candidates = gradient.candidates[: self.opt.directions]
        accepted = [x for x in self.state.steps if x.accepted]
        tried = [Tried(x.step, x.hypothesis, x.status, x.cause or x.lesson)  # type: ignore[arg-type]
                 for x in self.state.steps[-20:] if x.status in ("rejected", "failed") and x.hypothesis]
        if current is not None and only_repeats(gradient, tried):
            # A small model that copies back only what failed gets the untried changes of its list first.
            done = [x.hypothesis for x in accepted if x.kind != "draft"]
            fresh = untried(s.task.scaffold.kind, current, exclude=[t.hypothesis for t in tried] + done,
                            limit=max(1, MAX_CANDIDATES - len(gradient.candidates)))
            gradient.candidates = [*fresh, *gradient.candidates][:MAX_CANDIDATES]
        texts = [f"{c.hypothesis} {c.component}" for c in gradient.candidates]
        if self.opt.momentum:
            mine = s.memory.ids_of({(self.index, x.step) for x in accepted})
            support = s.memory.support(texts, exclude_ids=mine)
        else:
            support = [0.0] * len(texts)
        direction, ranking = select_direction(
            gradient, support=support, tried=tried, in_code=[InCode(x.step, x.hypothesis) for x in accepted],
            momentum_weight=self.opt.momentum_weight if self.opt.momentum else 0.0,
            repeat_penalty=self.opt.repeat_penalty,
        )
        return gradient, ranking, direction

    def full_gradient(self, meter: Meter) -> Gradient:
        """The diagnosis as the schema's JSON, from the whole best main.py, its output and the trace's history."""
        history = self.history()
        s = self.services
        messages = s.prompts.messages(
            "gradient", **self.context().variables(), best=self.best_view(), accepted=history.accepted,
            history=history.recent, memory=history.memory, k=self.opt.directions,
        )
        try:
            result = s.llm.structured(
                messages, Gradient, role="gradient", deadline=s.budget.deadline,
                tags={"trace": self.index, "step": self.state.next_step},
            )
        except LLMOutputError as exc:
            for completion in exc.completions:
                meter.add(completion)  # type: ignore[arg-type]
            raise
        for completion in result.completions:
            meter.add(completion)
        return result.value

    def compact_gradient(self, current: str, meter: Meter) -> Gradient:
        """A small model's diagnosis of the fit_predict it wrote (prompts/function_gradient.j2 says why):
        the limiting problem and directions as plain lines, in one short call (and one re-ask that says
        what its reply lacked)."""
        s, context, best = self.services, self.context(), self.state.best
        assert best is not None
        worked = [f"{m.hypothesis} (gain {m.gain})" if m.gain is not None else m.hypothesis
                  for m in self.history().memory[:COMPACT_MEMORY]]
        messages = s.prompts.messages(
            "function_gradient", task=context.task, environment=context.environment, plan=s.task.scaffold,
            current=current, score=fmt_score(best.score), tried=self.tried_changes(), worked=worked,
            common=fitting(s.task.scaffold.kind, current), k=self.opt.directions,
        )
        tags = {"trace": self.index, "step": self.state.next_step, "form": "compact"}
        limit = min(COMPACT_GRADIENT_TOKENS, self.cfg.llm.max_output_tokens)
        for attempt in range(2):  # one re-ask, with the reason: a call costs the small model seconds
            completion = s.llm.complete(messages, role="gradient", deadline=s.budget.deadline, max_output_tokens=limit,
                                        tags={**tags, "reask": attempt} if attempt else tags)
            meter.add(completion)
            try:
                gradient = parse_compact(completion.text, COMPACT_LISTED)
                break
            except ValueError as exc:
                if attempt:
                    raise LLMOutputError(f"the compact gradient reply could not be used: {exc}") from None
                messages = [*messages, Message(role="assistant", content=completion.text),
                            Message(role="user", content=f"That reply could not be used: {exc}. Reply again: the "
                                    f"`Problem:` line, then {self.opt.directions} numbered lines, one change each.")]
        # The 0.5B model copies lines of its prompt into its list, accepted changes among them: those are
        # in the code already, so they are no direction.
        done = [x.hypothesis for x in self.state.steps if x.accepted and x.kind != "draft"]
        gradient.candidates = [c for c in gradient.candidates if max_similarity(c.hypothesis, done) < SIMILAR]
        if not gradient.candidates:
            raise LLMOutputError("the compact gradient reply could not be used: every direction it lists is a "
                                 "change the code already has")
        return gradient

    def update(self, direction: Direction, meter: Meter) -> tuple[str, str]:
        """The best code with `direction` applied as a minimal edit, and the reply's summary of the edit."""
        small = self.function_change("update", direction.hypothesis, meter)
        if small is not None:
            return small
        messages = self.services.prompts.messages(
            "update", **self.context().variables(), best=self.best_view(), direction=DirectionView.of(direction),
            functions=self.function_edits(self.state.best_code or "", "update"),
        )
        return self.ask_code(messages, self.state.best_code, "update", meter)
