"""Live progress of a run while `gome run` works.

On a terminal: a table redrawn about once a second (rich) with, per trace, its
stage, current step, best score and accepted steps, and the run-wide best, the
time left, tokens and dollars. Elsewhere (the MLE-bench container, a log file):
one plain line at most every `line_every_s` seconds, and at every new best.
It reads the run folder like `gome status` does, incrementally.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from gome_agent.errors import ConfigError
from gome_agent.optimizer.budget import format_duration
from gome_agent.views.runview import RunReader, RunView, fmt_score, fmt_usd

log = logging.getLogger(__name__)


def headline(view: RunView) -> str:
    """One line: time left, the best so far, tokens and dollars."""
    left = "?" if view.left_s is None else format_duration(view.left_s)
    best = view.best
    if best is not None and best.score is not None:
        where = f"{fmt_score(best.score)} (trace {best.trace}, step {best.step})"
    else:
        where = "none valid yet"
    usage = view.usage.total
    tokens = usage.input_tokens + usage.output_tokens
    scored = " (self-reported)" if view.task.self_reported and best is not None else ""
    return (f"{left} left; best {where}{scored}; {usage.calls} LLM calls, {tokens:,} tokens, "
            f"{fmt_usd(usage.cost_usd)}")


def trace_line(view: RunView) -> str:
    parts = []
    for trace in view.traces:
        step = trace.in_progress_step or len(trace.steps)
        parts.append(f"t{trace.index} {trace.stage or 'waiting'} s{step} best {fmt_score(trace.best_score)} "
                     f"({trace.accepted}/{len(trace.steps)} accepted)")
    return " | ".join(parts)


def table(view: RunView) -> Table:
    metric = view.task.metric_name or "score"
    grid = Table(title=f"gome: {view.task.competition_id or '?'}, {metric} ({view.task.direction_word()})",
                 caption=headline(view), expand=False)
    for column in ("trace", "stage", "step", "last", f"best {metric}", "accepted", "failed", "cost"):
        grid.add_column(column)
    for trace in view.traces:
        step = f"{trace.in_progress_step} (running)" if trace.in_progress_step else str(len(trace.steps))
        best = f"{fmt_score(trace.best_score)} (s{trace.best_step})" if trace.best else "-"
        grid.add_row(f"t{trace.index}", trace.stage or "waiting", step, trace.last_status or "-", best,
                     f"{trace.accepted}/{len(trace.steps)}", str(trace.failed + trace.errors), fmt_usd(trace.cost_usd))
    return grid


class Progress:
    """Shows a run's progress; `update()` is cheap enough to call twice a second."""

    def __init__(self, workdir: Path, *, live: bool | None = None, line_every_s: float = 300.0,
                 console: Console | None = None) -> None:
        self.reader = RunReader(workdir)
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal if live is None else live
        self.line_every_s = line_every_s
        self._last_line = 0.0
        self._last_best: float | None = None
        self._screen: Live | None = None

    def __enter__(self) -> Progress:
        if self.live:
            self._screen = Live(console=self.console, refresh_per_second=1, transient=False)
            self._screen.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.update(force=True)
        if self._screen is not None:
            self._screen.stop()

    def update(self, *, force: bool = False) -> None:
        try:
            view = self.reader.view()
        except (ConfigError, OSError):
            return  # the folder is not complete yet
        if self._screen is not None:
            self._screen.update(table(view))
            return
        best = view.best.score if view.best is not None else None
        now = time.monotonic()
        if force or now - self._last_line >= self.line_every_s or best != self._last_best:
            self._last_line, self._last_best = now, best
            log.info("progress: %s", headline(view))
            if view.traces:
                log.info("traces: %s", trace_line(view))
