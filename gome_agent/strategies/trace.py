"""One optimization trace: the step machinery every strategy runs on.

Each step:
  1. propose: the strategy decides the step's code (Gome: a draft, then gradient and update);
  2. run, with bounded debug attempts when the code fails (evaluation.py);
  3. accept only if the submission is valid and the validation score improves on the trace's
     best; otherwise the best is untouched and the lesson stays in the history;
  4. record the step in `events.jsonl`, then publish an accepted one: into the shared success
     memory, and into place when it is the run's best.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time

from gome_agent.errors import LLMError, LLMFatalError, LLMOutputError, SpendCapReached
from gome_agent.execution.scheduler import needs_gpu
from gome_agent.optimizer.acceptance import threshold
from gome_agent.optimizer.budget import format_duration
from gome_agent.optimizer.edits import diff_size
from gome_agent.records.events import BestUpdated, StepRecord, now_iso
from gome_agent.records.housekeeping import submittable_dirs, tidy_step
from gome_agent.strategies.base import Proposal, Strategy
from gome_agent.strategies.evaluation import Evaluation, Evaluator
from gome_agent.strategies.step import FailedDraft, Meter, Services, StepFailed, TraceState
from gome_agent.strategies.views import fmt_score
from gome_agent.task.submission import read_score_table

log = logging.getLogger(__name__)


class Trace:
    """A single optimization trajectory with its own current best, driven by one strategy."""

    def __init__(
        self,
        *,
        index: int,
        services: Services,
        strategy: type[Strategy],
        state: TraceState | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.index = index
        self.services = services
        self.cfg = services.config
        self.state = state or TraceState()
        self.strategy = strategy(index=index, services=services, state=self.state)
        self.evaluator = Evaluator(index=index, services=services, max_run_s=self.strategy.max_run_s)
        self.folder = self.cfg.workdir / "traces" / f"t{index}"
        self._consecutive_outages = 0
        self._stop = stop or threading.Event()

    def can_step(self) -> bool:
        if self._stop.is_set():
            return False
        max_steps = self.cfg.optimizer.max_steps
        if max_steps is not None and len(self.state.steps) >= max_steps:
            return False
        if self.services.llm.spend_capped() is not None:
            return False  # the coordinator records why
        return self.services.budget.remaining() >= self.cfg.execution.min_run_seconds

    # The loop -----------------------------------------------------------------
    def run(self) -> None:
        # Left by a step that was cut off before it was recorded (crash or stop): it is redone afresh, and
        # its folder goes now, before the free disk space is looked at.
        shutil.rmtree(self.folder / f"s{self.state.next_step:04d}", ignore_errors=True)
        if self.state.steps:
            self._reconcile()
        while self.can_step():
            if self.evaluator.wait_for_disk(self._stop):
                continue
            self.step()
            if self._consecutive_outages and self.can_step():
                # The LLM layer already retried with backoff; during a longer provider outage,
                # wait before the next step instead of burning steps on failed calls.
                time.sleep(min(30.0 * self._consecutive_outages, 300.0, self.services.budget.remaining()))

    def step(self) -> StepRecord:
        """One step: propose code, run it (debugging within bounds), accept or reject, record."""
        record, meter = self._begin()
        step_dir = self.folder / f"s{record.step:04d}"
        try:
            proposal = self.strategy.propose(record, meter)
            evaluation = self.evaluator.evaluate(proposal.code, step_dir, record.hypothesis, meter,
                                                 max_debug=self.strategy.max_debug, fix=self.strategy.fix)
            self._describe_change(record, proposal, evaluation)
            self._decide(record, evaluation)
            self._keep_failed_draft(record, evaluation)
            self._consecutive_outages = 0
        except LLMFatalError:
            raise
        except SpendCapReached as exc:
            record.status, record.message, record.lesson = "error", str(exc), f"Stopped: {exc}"
        except (LLMError, StepFailed) as exc:
            is_outage = isinstance(exc, LLMError) and not isinstance(exc, LLMOutputError)
            self._consecutive_outages = self._consecutive_outages + 1 if is_outage else 0
            record.status = "error"
            record.message = str(exc)
            record.lesson = f"No code was run: {exc}"
            failed = self.state.failed_draft
            if record.repairs is not None and failed is not None:
                failed.repairs += 1  # a repair that produced no code still counts
        return self._finish(record, meter)

    def _keep_failed_draft(self, record: StepRecord, ev: Evaluation) -> None:
        """Keep a failed draft (or repair) for the next step to go on debugging; forget it once one works."""
        if record.kind != "draft":
            return
        if ev.ok or ev.failure is None:
            self.state.failed_draft = None
            return
        earlier = self.state.failed_draft
        repairs = earlier.repairs + 1 if record.repairs is not None and earlier is not None else 0
        self.state.failed_draft = FailedDraft(step=record.step if record.repairs is None else record.repairs,
                                              code=ev.code, failure=ev.failure, approach=record.hypothesis,
                                              scaffolded=record.scaffolded, repairs=repairs)

    def _begin(self) -> tuple[StepRecord, Meter]:
        number = self.state.next_step
        best = self.state.best
        record = StepRecord(
            trace=self.index, step=number, clock=self.services.memory.tick(),
            kind="draft" if best is None else "improve", stage=self.services.budget.stage(self.cfg.stages),
            parent_step=best.step if best else None, status="error",
            best_before=best.score if best else None, started_at=now_iso(),
        )
        return record, Meter()

    def _finish(self, record: StepRecord, meter: Meter) -> StepRecord:
        record.duration_s = round(time.monotonic() - meter.started, 3)
        record.llm_s = round(meter.llm_s, 3)
        record.run_s = round(meter.run_s, 3)
        record.overhead_s = round(max(0.0, record.duration_s - meter.llm_s - meter.run_s), 4)
        record.llm_calls = meter.calls
        record.input_tokens, record.output_tokens = meter.input_tokens, meter.output_tokens
        record.cost_usd = round(meter.cost_usd, 6)
        record.auto_fixes = [*meter.auto_fixes, *(f for f in record.auto_fixes if f not in meter.auto_fixes)]
        self.state.steps.append(record)
        self.services.events.write(record)
        if record.accepted:
            self._publish(record)
        self._tidy(record)
        log.info(
            "trace %d step %d [%s] %s: %s (score %s, best %s)",
            self.index, record.step, record.kind, record.status, record.hypothesis[:80],
            fmt_score(record.score), fmt_score(self.state.best.score if self.state.best else None),
        )
        return record

    # Accept or reject ---------------------------------------------------------
    @staticmethod
    def _describe_change(record: StepRecord, proposal: Proposal, ev: Evaluation) -> None:
        """What the step actually changed: the replies' summaries and the size and place of the diff."""
        record.change = proposal.change + "".join(f"; then fixed: {fix}" for fix in ev.fixes)
        if proposal.base is not None:
            size = diff_size(proposal.base, ev.code)
            record.lines_added, record.lines_removed, record.changed_lines = size.added, size.removed, size.region

    def _decide(self, record: StepRecord, ev: Evaluation) -> None:
        record.runs = ev.runs
        record.code_dir = str(ev.attempt_dir.relative_to(self.cfg.workdir))
        record.run_status = ev.result.status if ev.result else None
        record.runtime_s = ev.result.duration_s if ev.result else None
        record.gpu = needs_gpu(ev.code)[0]
        record.gpu_peak_mb = self.evaluator.gpu_peak_mb if record.gpu else None
        record.oom_retries = ev.oom_retries
        record.static_problems, record.static_fixes = ev.static_problems, ev.static_fixes
        record.auto_fixes = ev.auto_fixes
        record.smoke, record.smoke_runs, record.smoke_s = ev.smoke, ev.smoke_runs, round(ev.smoke_s, 3)
        task = self.services.task
        metric = task.metric_name
        if ev.check is not None:
            record.scored_by, record.reported_score = ev.check.scored_by, ev.check.reported_score
            record.reported_folds = ev.check.reported_folds
            record.untrusted = ev.check.untrusted
        if not ev.ok:
            record.status = "failed"
            record.message = ev.message + (f"; {ev.fix_error}" if ev.fix_error else "")
            record.cause = None if ev.cause is None else str(ev.cause)
            # A crash's missing outputs follow from its exception; a run that finished names what it broke.
            # The cause comes first: later prompts show a bounded part of the lesson. A fix reply that could
            # not be used stays in the message only: it says nothing about the task, and the 0.5B model,
            # shown it among earlier failures, echoed it back as its own change.
            detail = "" if ev.cause else "; ".join(ev.problems[:2])
            runs = f"{ev.runs} full run(s) and {ev.smoke_runs} smoke run(s)" if ev.smoke_runs else f"{ev.runs} run(s)"
            if ev.failed_in == "static":
                # No run at all: the problems are the whole lesson.
                record.lesson = (f"Failed the static check after {ev.static_fixes} fix round(s) and {runs}: "
                                 + "; ".join(ev.problems[:3]))
                return
            record.lesson = (f"Failed after {runs}: {ev.message}" + (f": {ev.cause}" if ev.cause else "")
                             + (f" ({detail})" if detail else ""))
            return
        assert ev.check is not None and ev.check.score is not None and ev.result is not None
        score = ev.check.score
        record.score = score
        record.fold_scores = ev.check.fold_scores
        best = self.state.best
        improved = task.is_better(score, best.score if best else None)
        gain = None if best is None or best.score is None else score - best.score
        record.gain = gain
        opt = self.cfg.optimizer
        corroborate = opt.corroborate and record.scored_by == "gome" and best is not None and best.scored_by == "gome"
        bar = threshold(record.fold_scores, best.fold_scores if best else None, factor=opt.noise_factor,
                        min_improvement=opt.min_improvement, noise_aware=opt.acceptance == "noise",
                        reported=(record.reported_folds, best.reported_folds) if corroborate else None)
        record.noise, record.threshold, record.pooled_gain = bar.noise, bar.threshold, bar.pooled
        within_noise = improved and gain is not None and not bar.beaten_by(gain)
        if not improved or within_noise:
            record.status = "rejected"
            versus = f"{metric} {fmt_score(score)} vs best {fmt_score(record.best_before)} ({task.direction_word()})"
            if within_noise:
                assert gain is not None
                record.message = f"the gain {gain:+.4g} {bar.shortfall(gain, opt.noise_factor)}"
                versus += f": {record.message}"
            else:
                record.message = f"{metric} {fmt_score(score)} does not beat the best {fmt_score(record.best_before)}"
            record.lesson = (f"Rejected: {versus}, run time {format_duration(ev.result.duration_s)}; "
                             f"{self.strategy.rejected_code}.")
            return
        record.status = "accepted"
        record.accepted = True
        record.message = "accepted" if best else "accepted as the trace's first valid solution"
        record.lesson = (
            f"Accepted: {metric} {fmt_score(record.best_before)} -> {fmt_score(score)}"
            + (f" (gain {gain:+.4g})." if gain is not None else ".")
        )
        self.state.best = record
        self.state.best_code = ev.code
        self.state.best_runtime_s = ev.result.duration_s
        self.state.best_stdout_tail = ev.result.stdout_tail
        self.state.best_score_table = read_score_table(ev.attempt_dir / "scores.json")

    # Publication ----------------------------------------------------------------
    def _publish(self, record: StepRecord) -> None:
        """Share an accepted step in the success memory and put it in place if it is the run's best.

        Called once the step is recorded: a kill before that leaves nothing to undo (the step is
        redone), and a kill after it is repaired by `_reconcile` when the trace restarts.
        """
        assert record.score is not None and record.code_dir is not None
        self.services.memory.record(
            trace=self.index, step=record.step, hypothesis=record.hypothesis,
            component=record.component or "workflow",
            problem=record.limiting_problem or "first working solution",
            score=record.score, gain=record.gain,
        )
        self._offer(record)

    def _offer(self, record: StepRecord) -> None:
        assert record.score is not None and record.code_dir is not None
        if self.services.keeper.offer(score=record.score, trace=self.index, step=record.step,
                                      attempt_dir=self.cfg.workdir / record.code_dir):
            self.services.events.write(BestUpdated(trace=self.index, step=record.step, score=record.score,
                                                   source="step"))

    def _reconcile(self) -> None:
        """On a restart: publish what a kill cut off between an accepted step's record and its publication."""
        shared = {e.step for e in self.services.memory.entries() if e.trace == self.index}
        for record in self.state.steps:
            if record.accepted and record.step not in shared:
                self._publish(record)
        # Only the last step can have been cut off before its offer; the final selection's choice stands.
        last, current = self.state.steps[-1], self.services.keeper.current()
        if last is self.state.best and (current is None or current.source != "final_selection"):
            self._offer(last)  # a no-op unless it beats the best in place
        self._tidy(last)  # in case the kill came before it was tidied

    def _tidy(self, record: StepRecord) -> None:
        """Delete what the step's solutions wrote that nothing reads again (records/housekeeping.py)."""
        if self.cfg.execution.keep_outputs == "all":
            return
        submittable = None
        if record.accepted:  # an earlier accepted step of this trace may have stopped being a candidate
            published = self.services.keeper.current()
            submittable = submittable_dirs(self.services.events.steps(), self.services.task, self.cfg.final_candidates,
                                           also=(record.code_dir, published.code_dir if published else None))
        freed = tidy_step(self.cfg.workdir, self.folder / f"s{record.step:04d}", record,
                          trace_steps=self.state.steps, submittable=submittable)
        log.debug("trace %d step %d: %d bytes of solution outputs deleted", self.index, record.step, freed)
