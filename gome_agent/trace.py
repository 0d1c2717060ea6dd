"""One optimization trace: draft, then gradient steps on the current best solution.

Each step:
  1. gradient: a structured diagnosis of the current best (observations, the
     limiting problem, scored candidate directions), informed by the trace's
     history and the shared success memory (momentum);
  2. update: the chosen direction applied as a minimal code change to the best main.py;
  3. run, with bounded debug attempts when the code fails;
  4. accept only if the submission is valid and the validation score improves
     on the trace's best; otherwise roll back (the best is untouched) and keep
     the lesson in the history.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from gome_agent import budget as budget_mod
from gome_agent.best import BestKeeper
from gome_agent.budget import Budget
from gome_agent.config import RunConfig
from gome_agent.edits import EditError, new_code
from gome_agent.errors import LLMError, LLMFatalError, LLMOutputError
from gome_agent.executor import Executor, RunResult, RunSpec
from gome_agent.gradient import Candidate, Gradient, ScoredCandidate, select_direction
from gome_agent.llm.client import LLMClient
from gome_agent.llm.types import Completion, Message
from gome_agent.momentum import SuccessMemory
from gome_agent.prompting import Prompts
from gome_agent.records import BestUpdated, DraftApproach, EventLog, StepRecord, now_iso
from gome_agent.sample import SampleSubmission
from gome_agent.scheduler import LeaseTimeout, ResourceScheduler, is_gpu_oom, needs_gpu
from gome_agent.submission import OutputCheck, check_outputs
from gome_agent.task import Task

log = logging.getLogger(__name__)

_TAIL = 2500  # characters of output shown in prompts


def _tail(text: str, limit: int = _TAIL) -> str:
    return text if len(text) <= limit else "..." + text[-limit:]


def _read_tail(path: Path, limit: int = _TAIL) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - limit))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _fmt_score(value: float | None) -> str:
    return "none" if value is None else f"{value:.6g}"


@dataclass
class Meter:
    """LLM and run time, calls and tokens spent in one step."""

    started: float = field(default_factory=time.monotonic)
    llm_s: float = 0.0
    run_s: float = 0.0
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, completion: Completion) -> None:
        self.llm_s += completion.latency_s
        self.calls += 1
        self.input_tokens += completion.usage.input_tokens
        self.output_tokens += completion.usage.output_tokens
        self.cost_usd += completion.cost_usd or 0.0


@dataclass
class Evaluation:
    """The outcome of running a step's code, after any debug attempts."""

    ok: bool
    code: str
    attempt_dir: Path
    runs: int
    result: RunResult | None
    check: OutputCheck | None
    message: str
    problems: list[str] = field(default_factory=list)
    oom_retries: int = 0


@dataclass
class TraceState:
    """What a trace knows: its steps and its current best."""

    steps: list[StepRecord] = field(default_factory=list)
    best: StepRecord | None = None
    best_code: str | None = None
    best_runtime_s: float = 0.0
    best_stdout_tail: str = ""

    @property
    def next_step(self) -> int:
        return len(self.steps) + 1

    @classmethod
    def restore(cls, records: list[StepRecord], workdir: Path) -> TraceState:
        """The state a trace had after its recorded steps (to resume it after a crash or a stop)."""
        state = cls(steps=sorted(records, key=lambda r: r.step))
        for record in reversed(state.steps):
            if record.accepted and record.code_dir:
                folder = workdir / record.code_dir
                try:
                    state.best_code = (folder / "main.py").read_text(encoding="utf-8")
                except OSError:
                    continue  # its files are gone; an older accepted step becomes the best
                state.best = record
                state.best_runtime_s = record.runtime_s or 0.0
                state.best_stdout_tail = _read_tail(folder / "stdout.txt")
                break
        return state


class StepFailed(Exception):
    """The step could not produce code (LLM output unusable after its retries)."""


class Trace:
    """A single optimization trajectory with its own current best."""

    def __init__(
        self,
        *,
        index: int,
        config: RunConfig,
        task: Task,
        sample: SampleSubmission,
        llm: LLMClient,
        prompts: Prompts,
        executor: Executor,
        scheduler: ResourceScheduler,
        memory: SuccessMemory,
        keeper: BestKeeper,
        events: EventLog,
        budget: Budget,
        environment: str,
        state: TraceState | None = None,
        stop: threading.Event | None = None,
        validator: Callable[[Path], str | None] | None = None,
    ) -> None:
        self.index = index
        self.cfg = config
        self.opt = config.optimizer
        self.task = task
        self.sample = sample
        self.llm = llm
        self.prompts = prompts
        self.executor = executor
        self.scheduler = scheduler
        self.memory = memory
        self.keeper = keeper
        self.events = events
        self.budget = budget
        self.environment = environment
        self.state = state or TraceState()
        self.folder = config.workdir / "traces" / f"t{index}"
        self._consecutive_outages = 0
        self._gpu_peak_mb: int | None = None
        self._stop = stop or threading.Event()
        # An outside judge of validity (MLE-bench's grading server), asked after the local check passes.
        self.validator = validator

    # Time ---------------------------------------------------------------------
    @property
    def max_run_s(self) -> float:
        if self.cfg.execution.max_run_minutes is not None:
            return self.cfg.execution.max_run_minutes * 60
        return min(3600.0, self.cfg.time_limit_s / 4)

    def can_step(self) -> bool:
        if self._stop.is_set():
            return False
        if self.opt.max_steps is not None and len(self.state.steps) >= self.opt.max_steps:
            return False
        return self.budget.remaining() >= self.cfg.execution.min_run_seconds

    def _context(self) -> dict[str, object]:
        stage = self.budget.stage(self.cfg.stages)
        return {
            "task": self.task,
            "environment": self.environment,
            "run_time_limit": budget_mod.format_duration(self.budget.run_timeout(self.max_run_s)),
            "stage_guidance": budget_mod.STAGE_GUIDANCE[stage],
            "budget": self.budget.describe(),
        }

    # The loop -----------------------------------------------------------------
    def run(self) -> None:
        if self.state.steps:
            self._reconcile()
        while self.can_step():
            self.step()
            if self._consecutive_outages and self.can_step():
                # The LLM layer already retried with backoff; during a longer provider outage,
                # wait before the next step instead of burning steps on failed calls.
                time.sleep(min(30.0 * self._consecutive_outages, 300.0, self.budget.remaining()))

    def step(self) -> StepRecord:
        """One step: propose code, run it (debugging within bounds), accept or reject, record."""
        record, step_dir, meter = self._begin()
        try:
            code = self._propose(record, meter)
            evaluation = self._evaluate(code, step_dir, record.hypothesis, meter, max_debug=self._max_debug())
            self._decide(record, evaluation)
            self._consecutive_outages = 0
        except LLMFatalError:
            raise
        except (LLMError, StepFailed) as exc:
            is_outage = isinstance(exc, LLMError) and not isinstance(exc, LLMOutputError)
            self._consecutive_outages = self._consecutive_outages + 1 if is_outage else 0
            record.status = "error"
            record.message = str(exc)
            record.lesson = f"No code was run: {exc}"
        return self._finish(record, meter)

    def _begin(self) -> tuple[StepRecord, Path, Meter]:
        number = self.state.next_step
        step_dir = self.folder / f"s{number:04d}"
        if step_dir.exists():
            # Left by a step that was cut off before it was recorded (crash or stop): start it afresh.
            shutil.rmtree(step_dir, ignore_errors=True)
        best = self.state.best
        record = StepRecord(
            trace=self.index, step=number, clock=self.memory.tick(),
            kind="draft" if best is None else "improve", stage=self.budget.stage(self.cfg.stages),
            parent_step=best.step if best else None, status="error",
            best_before=best.score if best else None, started_at=now_iso(),
        )
        return record, step_dir, Meter()

    def _finish(self, record: StepRecord, meter: Meter) -> StepRecord:
        record.duration_s = round(time.monotonic() - meter.started, 3)
        record.llm_s = round(meter.llm_s, 3)
        record.run_s = round(meter.run_s, 3)
        record.overhead_s = round(max(0.0, record.duration_s - meter.llm_s - meter.run_s), 4)
        record.llm_calls = meter.calls
        record.input_tokens, record.output_tokens = meter.input_tokens, meter.output_tokens
        record.cost_usd = round(meter.cost_usd, 6)
        self.state.steps.append(record)
        self.events.write(record)
        if record.accepted:
            self._publish(record)
        log.info(
            "trace %d step %d [%s] %s: %s (score %s, best %s)",
            self.index, record.step, record.kind, record.status, record.hypothesis[:80],
            _fmt_score(record.score), _fmt_score(self.state.best.score if self.state.best else None),
        )
        return record

    def _max_debug(self) -> int:
        return self.opt.max_debug

    def _propose(self, record: StepRecord, meter: Meter) -> str:
        """The code of this step: a draft, or the best code moved along the gradient."""
        if record.kind == "draft":
            code, record.hypothesis = self._draft(meter)
            record.component = "workflow"
            return code
        if not self.opt.structured_gradient:
            code, record.hypothesis = self._direct(meter)
            return code
        gradient, ranking, direction = self._diagnose(meter)
        record.gradient, record.ranking = gradient, ranking
        record.limiting_problem = gradient.limiting_problem
        record.hypothesis, record.component = direction.hypothesis, direction.component
        return self._update(direction, meter)

    # LLM helpers --------------------------------------------------------------
    def _ask_code(self, messages: list[Message], current: str | None, role: str, meter: Meter) -> tuple[str, str]:
        """Ask for code; re-ask (bounded) when the reply's edits do not apply."""
        tags = {"trace": self.index, "step": self.state.next_step}
        for attempt in range(self.opt.max_reply_edit_retries + 1):
            completion = self.llm.complete(messages, role=role, deadline=self.budget.deadline, tags=tags)
            meter.add(completion)
            try:
                return new_code(completion.text, current)
            except EditError as exc:
                if attempt == self.opt.max_reply_edit_retries:
                    raise StepFailed(f"the model's code reply could not be used: {exc}") from exc
                messages = [
                    *messages,
                    Message(role="assistant", content=completion.text),
                    Message(role="user", content=f"That reply could not be applied: {exc}. Reply again, correctly."),
                ]
        raise AssertionError("unreachable")

    # Draft --------------------------------------------------------------------
    def _draft(self, meter: Meter) -> tuple[str, str]:
        failures = [s.lesson for s in self.state.steps if s.kind == "draft" and s.status != "accepted"][-3:]
        messages = self.prompts.messages("draft", **self._context(), avoid=self._sibling_approaches(), failures=failures)
        code, approach = self._ask_code(messages, None, "draft", meter)
        approach = approach or "first complete solution"
        self.events.write(DraftApproach(trace=self.index, step=self.state.next_step, approach=approach))
        return code, approach

    def _sibling_approaches(self) -> list[str]:
        """Approaches other traces chose for their drafts; waits (bounded) for lower-numbered traces
        to announce theirs, so that K traces started together do not all draft the same thing."""
        waited_until = time.monotonic() + min(self.opt.diversify_wait_s, self.budget.remaining())
        while True:
            announced = [e for e in self.events.read() if isinstance(e, DraftApproach) and e.trace != self.index]
            earlier = {e.trace for e in announced if e.trace < self.index}
            if len(earlier) >= self.index or time.monotonic() >= waited_until:
                break
            time.sleep(0.5)
        seen: dict[str, None] = {}
        for e in announced:
            seen.setdefault(f"trace {e.trace}: {e.approach}", None)
        return list(seen)

    def _direct(self, meter: Meter) -> tuple[str, str]:
        """The w/o-structured-reasoning ablation: feedback straight to a code change, no diagnosis."""
        _, history, _ = self._history_views()
        messages = self.prompts.messages("direct", **self._context(), best=self._best_view(), history=history)
        code, change = self._ask_code(messages, self.state.best_code, "direct", meter)
        return code, change or "direct change"

    # Gradient + update --------------------------------------------------------
    def _best_view(self, with_code: bool = True) -> dict[str, object]:
        best = self.state.best
        assert best is not None and self.state.best_code is not None
        view: dict[str, object] = {
            "step": best.step,
            "score": _fmt_score(best.score),
            "hypothesis": best.hypothesis,
            "runtime": budget_mod.format_duration(self.state.best_runtime_s),
            "stdout_tail": _tail(self.state.best_stdout_tail, 1500),
        }
        if with_code:
            view["code"] = self.state.best_code
        return view

    def _history_views(self) -> tuple[list[dict[str, object]], list[dict[str, object]], list[dict[str, object]]]:
        """Accepted path, recent steps and recalled successes, each bounded in length."""
        steps = self.state.steps
        accepted = [s for s in steps if s.accepted][-self.opt.accepted_window :]
        recent = steps[-self.opt.history_window :]
        if not self.opt.momentum:
            # The paper's w/o-momentum ablation: no successes anywhere, only failures in the history.
            return [], [self._step_view(s) for s in recent if not s.accepted], []
        accepted_views = [
            {"step": s.step, "hypothesis": s.hypothesis, "score": _fmt_score(s.score),
             "gain": None if s.gain is None else f"{s.gain:+.4g}"}
            for s in accepted
        ]
        shown = {(self.index, s.step) for s in accepted}
        last = steps[-1] if steps else None
        query = " ".join(
            x for x in (
                self.task.task_type,
                self.state.best.hypothesis if self.state.best else "",
                (last.limiting_problem or "") if last else "",
                last.hypothesis if last else "",
            ) if x
        )
        exclude = {e.id for e in self.memory.entries() if (e.trace, e.step) in shown}
        recalls = self.memory.recall(
            query,
            best_score=self.state.best.score if self.state.best else None,
            higher_is_better=self.task.higher_is_better,
            top_k=self.opt.memory_top_k,
            exclude_ids=exclude,
        )
        memory_views = [
            {"trace": r.entry.trace, "step": r.entry.step, "hypothesis": r.entry.hypothesis,
             "component": r.entry.component, "problem": r.entry.problem[:400],
             "score": _fmt_score(r.entry.score), "age": r.age, "own": r.entry.trace == self.index,
             "gain": None if r.entry.gain is None else f"{r.entry.gain:+.4g}"}
            for r in recalls
        ]
        return accepted_views, [self._step_view(s) for s in recent], memory_views

    @staticmethod
    def _step_view(s: StepRecord) -> dict[str, object]:
        return {
            "step": s.step, "kind": s.kind, "hypothesis": s.hypothesis[:400], "component": s.component,
            "status": s.status, "score": None if s.score is None else _fmt_score(s.score), "lesson": s.lesson[:500],
        }

    def _diagnose(self, meter: Meter) -> tuple[Gradient, list[ScoredCandidate], Candidate]:
        accepted, history, memory = self._history_views()
        messages = self.prompts.messages(
            "gradient", **self._context(), best=self._best_view(), accepted=accepted,
            history=history, memory=memory, k=self.opt.directions,
        )
        try:
            result = self.llm.structured(
                messages, Gradient, role="gradient", deadline=self.budget.deadline,
                tags={"trace": self.index, "step": self.state.next_step},
            )
        except LLMOutputError as exc:
            for completion in exc.completions:
                meter.add(completion)  # type: ignore[arg-type]
            raise
        for completion in result.completions:
            meter.add(completion)
        gradient = result.value
        gradient.candidates = gradient.candidates[: self.opt.directions]
        texts = [f"{c.hypothesis} {c.component}" for c in gradient.candidates]
        support = self.memory.support(texts) if self.opt.momentum else [0.0] * len(texts)
        tried = [s.hypothesis for s in self.state.steps[-20:] if s.status in ("rejected", "failed") and s.hypothesis]
        direction, ranking = select_direction(
            gradient, support=support, tried=tried,
            momentum_weight=self.opt.momentum_weight if self.opt.momentum else 0.0,
            repeat_penalty=self.opt.repeat_penalty,
        )
        return gradient, ranking, direction

    def _update(self, direction: Candidate, meter: Meter) -> str:
        messages = self.prompts.messages(
            "update", **self._context(), best=self._best_view(),
            direction=direction.model_dump(include={"hypothesis", "reasoning", "expected_impact", "component"}),
        )
        code, _ = self._ask_code(messages, self.state.best_code, "update", meter)
        return code

    # Run + debug --------------------------------------------------------------
    def _evaluate(self, code: str, step_dir: Path, goal: str, meter: Meter, *, max_debug: int) -> Evaluation:
        earlier: list[str] = []
        attempt_dir = step_dir / "a0"
        result: RunResult | None = None
        check: OutputCheck | None = None
        message, problems = "no run was started", []
        runs = oom_retries = 0
        for attempt in range(max_debug + 1):
            attempt_dir = step_dir / f"a{attempt}"
            attempt_dir.mkdir(parents=True, exist_ok=True)
            (attempt_dir / "main.py").write_text(code, encoding="utf-8")
            outcome = self._run_once(code, attempt_dir)
            # The solution may have replaced or removed its own main.py; the step's code is what was proposed.
            (attempt_dir / "main.py").write_text(code, encoding="utf-8")
            if outcome is None:
                message = "not run: the time budget is spent"
                break
            result, retried = outcome
            runs += 1 + retried
            oom_retries += retried
            meter.run_s += result.duration_s
            check = self._check(attempt_dir, result)
            if result.status == "ok" and check.ok:
                return Evaluation(True, code, attempt_dir, runs, result, check,
                                  "ran and produced a valid scored submission", oom_retries=oom_retries)
            message = result.message if result.status != "ok" else "the run finished but its outputs break the contract"
            problems = check.problems if result.status == "ok" else check.problems[:3]
            if retried and is_gpu_oom(result.stderr_tail):
                message += " (CUDA out of memory even with the whole GPU to itself)"
            if attempt == max_debug:
                break
            failure = {
                "message": message,
                "problems": problems,
                "stderr_tail": _tail(result.stderr_tail),
                "stdout_tail": _tail(result.stdout_tail, 1200),
            }
            try:
                fixed, change = self._fix(code, failure, goal, earlier, meter)
            except StepFailed as exc:
                message = f"{message}; the fix could not be applied: {exc}"
                break
            earlier.append(f"attempt {attempt + 1}: {message}" + (f" -> changed: {change}" if change else ""))
            code = fixed
        return Evaluation(False, code, attempt_dir, runs, result, check, message, problems, oom_retries=oom_retries)

    def _fix(self, code: str, failure: dict[str, object], goal: str, earlier: list[str], meter: Meter) -> tuple[str, str]:
        """Ask for a fix of failing code, given exactly what went wrong."""
        messages = self.prompts.messages(
            "debug", **self._context(), goal=goal, code=code, failure=failure, earlier=earlier,
        )
        return self._ask_code(messages, code, "debug", meter)

    def _check(self, attempt_dir: Path, result: RunResult) -> OutputCheck:
        check = check_outputs(attempt_dir, self.sample)
        if result.status == "ok" and check.ok and self.validator is not None:
            problem = self.validator(attempt_dir / "submission.csv")
            if problem is not None:
                check = check.model_copy(update={"valid_submission": False, "problems": [problem]})
        return check

    def _run_once(self, code: str, attempt_dir: Path) -> tuple[RunResult, int] | None:
        """Run main.py under a resource lease; a GPU out-of-memory failure is retried once with the
        GPU to itself (another run's memory, not the idea, may be at fault). None: no time left."""
        gpu, declared_mb = needs_gpu(code)
        need = declared_mb or (int(self._gpu_peak_mb * 1.25) if self._gpu_peak_mb else None)
        exclusive = False
        for retried in (0, 1):
            try:
                with self.scheduler.lease(owner=f"trace{self.index}", gpu=gpu, mem_mb=need, exclusive=exclusive,
                                          deadline=self.budget.deadline) as lease:
                    timeout = self.budget.run_timeout(self.max_run_s)
                    if timeout < self.cfg.execution.min_run_seconds:
                        return None
                    spec = RunSpec(
                        workdir=attempt_dir, timeout_s=timeout, memory_limit_bytes=self._memory_limit(),
                        env={**lease.env(), "GOME_SEED": str(self.cfg.seed)},
                    )
                    result = self.executor.run(spec, on_poll=lambda pids: self.scheduler.observe(lease, pids))
                    peak = self.scheduler.peak_mb(lease)
            except LeaseTimeout:
                return None
            if peak:
                self._gpu_peak_mb = peak
            oom = gpu and result.status == "failed" and is_gpu_oom(result.stderr_tail)
            if not oom or exclusive:
                return result, retried
            log.warning("trace %d: CUDA out of memory; running again with the GPU to itself", self.index)
            exclusive = True
        raise AssertionError("unreachable")

    def _memory_limit(self) -> int:
        if self.cfg.execution.memory_limit_gb is not None:
            return int(self.cfg.execution.memory_limit_gb * 2**30)
        return int(psutil.virtual_memory().total * 0.75)

    # Accept or reject ---------------------------------------------------------
    def _decide(self, record: StepRecord, ev: Evaluation) -> None:
        record.runs = ev.runs
        record.code_dir = str(ev.attempt_dir.relative_to(self.cfg.workdir))
        record.run_status = ev.result.status if ev.result else None
        record.runtime_s = ev.result.duration_s if ev.result else None
        record.gpu = needs_gpu(ev.code)[0]
        record.gpu_peak_mb = self._gpu_peak_mb if record.gpu else None
        record.oom_retries = ev.oom_retries
        metric = self.task.metric_name
        if not ev.ok:
            record.status = "failed"
            record.message = ev.message
            detail = "; ".join(ev.problems[:2])
            record.lesson = f"Failed after {ev.runs} run(s): {ev.message}" + (f" ({detail})" if detail else "")
            return
        assert ev.check is not None and ev.check.score is not None and ev.result is not None
        score = ev.check.score
        record.score = score
        best = self.state.best
        improved = self.task.is_better(score, best.score if best else None)
        gain = None if best is None or best.score is None else score - best.score
        if improved and gain is not None and abs(gain) <= self.opt.min_improvement:
            improved = False
        record.gain = gain
        if not improved:
            record.status = "rejected"
            record.message = f"{metric} {_fmt_score(score)} does not beat the best {_fmt_score(record.best_before)}"
            record.lesson = f"Rejected: {metric} {_fmt_score(score)} vs best {_fmt_score(record.best_before)} ({self.task.direction_word()}); rolled back."
            return
        record.status = "accepted"
        record.accepted = True
        record.message = "accepted" if best else "accepted as the trace's first valid solution"
        record.lesson = (
            f"Accepted: {metric} {_fmt_score(record.best_before)} -> {_fmt_score(score)}"
            + (f" (gain {gain:+.4g})." if gain is not None else ".")
        )
        self.state.best = record
        self.state.best_code = ev.code
        self.state.best_runtime_s = ev.result.duration_s
        self.state.best_stdout_tail = ev.result.stdout_tail

    def _publish(self, record: StepRecord) -> None:
        """Share an accepted step in the success memory and put it in place if it is the run's best.

        Called once the step is recorded: a kill before that leaves nothing to undo (the step is
        redone), and a kill after it is repaired by `_reconcile` when the trace restarts.
        """
        assert record.score is not None and record.code_dir is not None
        self.memory.record(
            trace=self.index, step=record.step, hypothesis=record.hypothesis,
            component=record.component or "workflow",
            problem=record.limiting_problem or "first working solution",
            score=record.score, gain=record.gain,
        )
        self._offer(record)

    def _offer(self, record: StepRecord) -> None:
        assert record.score is not None and record.code_dir is not None
        if self.keeper.offer(score=record.score, trace=self.index, step=record.step,
                             attempt_dir=self.cfg.workdir / record.code_dir):
            self.events.write(BestUpdated(trace=self.index, step=record.step, score=record.score, source="step"))

    def _reconcile(self) -> None:
        """On a restart: publish what a kill cut off between an accepted step's record and its publication."""
        shared = {e.step for e in self.memory.entries() if e.trace == self.index}
        for record in self.state.steps:
            if record.accepted and record.step not in shared:
                self._publish(record)
        # Only the last step can have been cut off before its offer; the final selection's choice stands.
        last, current = self.state.steps[-1], self.keeper.current()
        if last is self.state.best and (current is None or current.source != "final_selection"):
            self._offer(last)  # a no-op unless it beats the best in place
