"""`gome report`: one self-contained HTML file that explains a run.

The file (default `OUT/report.html`) opens offline: styles and the small filter
script are inline and the plots are PNG data URIs; copies of the plots are
written beside it (`trajectory.png`, `time_by_phase.png`). It shows the
optimization trajectory of every trace, where each trace's time went, every
step with its diagnosis and its code diff against the solution it started from,
the success memory, the final selection, what is in place, and the cost.

Everything from the run is text written by an LLM or by generated code, so all
of it goes through the template's autoescaping; nothing is inserted as markup.
Long runs stay usable: each diff and log excerpt is capped, and past a total
size the remaining diffs are left out with a pointer to their files.
"""

from __future__ import annotations

import base64
import difflib
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from gome_agent import __version__
from gome_agent.optimizer.budget import format_duration
from gome_agent.records.events import StepRecord
from gome_agent.views.runview import RunView, TraceView, UsageRow, epoch_of, fmt_score, fmt_usd, step_end

TEMPLATES = Path(__file__).parent / "templates"
DIFF_MAX_LINES = 400
DIFF_MAX_CHARS = 40_000
TOTAL_CODE_CHARS = 4_000_000  # all diffs together, markup included; beyond this, diffs point to their files
LINE_MARKUP_CHARS = 30  # the <span class=...></span> around each diff line
CODE_READ_BYTES = 2_000_000
LOG_TAIL_CHARS = 3_000
NOTES_SHOWN = 200
PHASES = (("LLM", "llm"), ("running solutions", "run"), ("agent overhead", "overhead"), ("idle", "idle"))
PHASE_COLOURS = ("#4c78a8", "#59a14f", "#f28e2b", "#d3d3d3")


def write_report(workdir: Path, out: Path | None = None) -> Path:
    """Write the HTML report of the run in `workdir` (default `workdir/report.html`); returns its path."""
    view = RunView.load(workdir)
    out = Path(out) if out is not None else Path(workdir) / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    scale = _TimeScale.for_seconds(max([_clock_end(view, s) for s in view.steps()] + [view.spent_s, 1.0]))
    trajectory = _png(_trajectory_figure(view, scale))
    phases = _png(_phases_figure(view, scale))
    (out.parent / "trajectory.png").write_bytes(trajectory)
    (out.parent / "time_by_phase.png").write_bytes(phases)
    html = _environment().get_template("report.html.j2").render(
        **_context(view),
        trajectory_uri=_data_uri(trajectory),
        phases_uri=_data_uri(phases),
    )
    out.write_text(html, encoding="utf-8")
    return out


def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True)


# Plots ------------------------------------------------------------------------------


@dataclass
class _TimeScale:
    divisor: float
    unit: str

    @classmethod
    def for_seconds(cls, span: float) -> _TimeScale:
        if span < 180:
            return cls(1.0, "s")
        if span < 3 * 3600:
            return cls(60.0, "min")
        return cls(3600.0, "h")


def _clock_end(view: RunView, step: StepRecord) -> float:
    end = step_end(step)
    return view.clock(end) if end is not None else 0.0


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", facecolor="white")
    return buffer.getvalue()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _colour(index: int) -> str:
    palette = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf")
    return palette[index % len(palette)]


def _score_limits(view: RunView) -> tuple[float, float] | None:
    """Axis limits that fit the accepted scores; far-off rejected scores are drawn at the edge."""
    accepted = [s.score for s in view.steps() if s.accepted and s.score is not None and math.isfinite(s.score)]
    if not accepted:
        accepted = [s.score for s in view.steps() if s.score is not None and math.isfinite(s.score)]
    if not accepted:
        return None
    low, high = min(accepted), max(accepted)
    span = high - low or max(abs(high) * 0.01, 1e-3)
    return low - span, high + span


def _trajectory_figure(view: RunView, scale: _TimeScale) -> Figure:
    figure = Figure(figsize=(9.5, 4.6))
    axes = figure.add_subplot()
    metric = view.task.metric_name or "validation score"
    axes.set_xlabel(f"time into the run ({scale.unit})")
    axes.set_ylabel(f"{metric} ({view.task.direction_word()})")
    axes.set_title("Best validation score per trace")
    axes.grid(True, alpha=0.3)
    limits = _score_limits(view)
    if limits is None:
        axes.text(0.5, 0.5, "no scored step yet", ha="center", va="center", transform=axes.transAxes)
        return figure
    low, high = limits
    on_time_axis = blended_transform_factory(axes.transData, axes.transAxes)
    chosen = view.best_overall()
    for trace in view.traces:
        colour = _colour(trace.index)
        xs: list[float] = []
        ys: list[float] = []
        for step in trace.steps:
            x = _clock_end(view, step) / scale.divisor
            if step.status in ("failed", "error"):
                axes.plot([x], [0.0], marker="|", markersize=14, color=colour, transform=on_time_axis,
                          clip_on=False, linestyle="none")
                continue
            if step.score is None or not math.isfinite(step.score):
                continue
            if step.accepted:
                xs.append(x)
                ys.append(step.score)
                axes.plot([x], [step.score], marker="o", markersize=7, color=colour, linestyle="none")
            else:
                inset = (high - low) * 0.03  # off-scale scores sit just inside the edge they point past
                y, marker = step.score, "x"
                if step.score < low:
                    y, marker = low + inset, "v"
                elif step.score > high:
                    y, marker = high - inset, "^"
                axes.plot([x], [y], marker=marker, markersize=7, color=colour, alpha=0.7, linestyle="none")
        if xs:
            last = max([_clock_end(view, s) / scale.divisor for s in trace.steps] + [xs[-1]])
            axes.plot([*xs, last], [*ys, ys[-1]], drawstyle="steps-post", color=colour, linewidth=1.8,
                      label=f"trace {trace.index}")
    if chosen is not None and chosen.score is not None:
        axes.plot([_clock_end(view, chosen) / scale.divisor], [chosen.score], marker="*", markersize=17,
                  color="gold", markeredgecolor="black", linestyle="none", zorder=5)
    axes.set_ylim(low, high)
    axes.set_xlim(left=0)
    marks = [
        Line2D([], [], marker="o", color="gray", linestyle="none", label="accepted"),
        Line2D([], [], marker="x", color="gray", linestyle="none", label="rejected"),
        Line2D([], [], marker="|", color="gray", markersize=12, linestyle="none", label="failed / error"),
        Line2D([], [], marker="*", color="gold", markeredgecolor="black", markersize=12, linestyle="none",
               label="in place"),
    ]
    handles, _ = axes.get_legend_handles_labels()
    axes.legend(handles=[*handles, *marks], loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8,
                frameon=False)
    return figure


def _phase_seconds(view: RunView, trace: TraceView) -> dict[str, float]:
    """Seconds of LLM calls, solution runs, the agent's own work, and time outside any step."""
    span = max([_clock_end(view, s) for s in trace.steps] + [0.0])
    return {
        "llm": trace.llm_s,
        "run": trace.run_s,
        "overhead": trace.overhead_s,
        "idle": max(0.0, span - trace.duration_s),
    }


def _phases_figure(view: RunView, scale: _TimeScale) -> Figure:
    figure = Figure(figsize=(9.5, 0.9 + 0.45 * max(1, len(view.traces))))
    axes = figure.add_subplot()
    axes.set_title("Time by phase per trace")
    axes.set_xlabel(f"time ({scale.unit})")
    labels = [f"trace {t.index}" for t in view.traces]
    lefts = [0.0] * len(view.traces)
    for (label, key), colour in zip(PHASES, PHASE_COLOURS, strict=True):
        widths = [_phase_seconds(view, t)[key] / scale.divisor for t in view.traces]
        axes.barh(labels, widths, left=lefts, color=colour, label=label, height=0.6)
        lefts = [a + b for a, b in zip(lefts, widths, strict=True)]
    axes.invert_yaxis()
    axes.grid(True, axis="x", alpha=0.3)
    axes.legend(handles=[Patch(color=c, label=lbl) for (lbl, _), c in zip(PHASES, PHASE_COLOURS, strict=True)],
                loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    return figure


# Step details ---------------------------------------------------------------------------


class _CodeBudget:
    """What is left of the report's total size for diffs and code."""

    def __init__(self, chars: int) -> None:
        self.left = chars

    def take(self, lines: list[tuple[str, str]]) -> bool:
        size = sum(len(text) + LINE_MARKUP_CHARS for _, text in lines)
        if size > self.left:
            return False
        self.left -= size
        return True


def _read_text(path: Path, limit: int = CODE_READ_BYTES) -> str | None:
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError:
        return None
    text = data[:limit].decode("utf-8", errors="replace")
    return text + (f"\n... (file cut at {limit:,} bytes)" if len(data) > limit else "")


def _tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - chars * 4))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return text[-chars:]


def _code(view: RunView, step: StepRecord | None) -> str | None:
    if step is None or not step.code_dir:
        return None
    return _read_text(view.workdir / step.code_dir / "main.py")


def _diff_lines(view: RunView, step: StepRecord, parent: StepRecord | None) -> tuple[list[tuple[str, str]], str]:
    """The step's code against its parent's as (css class, line) pairs, and a one-line caption."""
    new = _code(view, step)
    if new is None:
        missing = "no code was run" if not step.code_dir else f"{step.code_dir}/main.py is missing"
        return [], missing
    if parent is None:
        lines = [("add", line) for line in new.splitlines()]
        caption = f"new code ({step.code_dir}/main.py)"
    else:
        old = _code(view, parent)
        if old is None:
            lines = [("add", line) for line in new.splitlines()]
            caption = f"parent step {parent.step}'s code is missing; the whole code of {step.code_dir}/main.py"
        else:
            raw = difflib.unified_diff(old.splitlines(), new.splitlines(), fromfile=f"step {parent.step}/main.py",
                                       tofile=f"step {step.step}/main.py", lineterm="", n=3)
            lines = [(_diff_class(line), line) for line in raw]
            caption = f"diff against step {parent.step} ({parent.code_dir} -> {step.code_dir})"
            if not lines:
                caption = f"same code as step {parent.step}"
    return _cap(lines), caption


def _diff_class(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "del"
    return "ctx"


def _cap(lines: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    size = 0
    for index, (kind, text) in enumerate(lines):
        if index >= DIFF_MAX_LINES or size + len(text) > DIFF_MAX_CHARS:
            out.append(("cut", f"... {len(lines) - index} more lines not shown"))
            break
        if len(text) > 2000:
            text = text[:2000] + " ..."
        out.append((kind, text))
        size += len(text) + 1
    return out


def _candidates(step: StepRecord) -> list[dict[str, Any]]:
    """The diagnosis's candidates with their ranking terms (ranking i belongs to candidate i)."""
    if step.gradient is None:
        return [{"hypothesis": r.hypothesis, "component": r.component, "reasoning": "", "impact": "",
                 "scores": "", "base": r.base, "momentum": r.momentum, "repeat": r.repeat, "total": r.total,
                 "notes": r.notes, "chosen": r.hypothesis == step.hypothesis} for r in step.ranking]
    rows = []
    aligned = len(step.ranking) == len(step.gradient.candidates)
    for index, cand in enumerate(step.gradient.candidates):
        rank = step.ranking[index] if aligned else next(
            (r for r in step.ranking if r.hypothesis == cand.hypothesis), None)
        s = cand.scores
        rows.append({
            "hypothesis": cand.hypothesis, "component": cand.component, "reasoning": cand.reasoning,
            "impact": cand.expected_impact,
            "scores": f"{s.alignment}/{s.impact}/{s.novelty}/{s.feasibility}/{s.risk_reward}" if s else "listed order",
            "base": rank.base if rank else None, "momentum": rank.momentum if rank else None,
            "repeat": rank.repeat if rank else None, "total": rank.total if rank else None,
            "notes": rank.notes if rank else [], "chosen": cand.hypothesis == step.hypothesis,
        })
    return rows


def _step_row(view: RunView, step: StepRecord, budget: _CodeBudget) -> dict[str, Any]:
    trace = view.trace(step.trace)
    parent = trace.step(step.parent_step) if trace else None
    diff, caption = _diff_lines(view, step, parent)
    if diff and not budget.take(diff):
        diff, caption = [], f"diff left out to keep the report small; see {step.code_dir}/main.py"
    logs = {}
    if step.code_dir:
        folder = view.workdir / step.code_dir
        logs["stdout"] = _tail(folder / "stdout.txt", LOG_TAIL_CHARS if step.status == "failed" else 800)
        if step.status == "failed":
            logs["stderr"] = _tail(folder / "stderr.txt")
    return {
        "id": f"t{step.trace}-s{step.step}",
        "trace": step.trace,
        "step": step.step,
        "kind": step.kind,
        "stage": step.stage,
        "hypothesis": step.hypothesis,
        "component": step.component or "",
        "status": step.status,
        "score": fmt_score(step.score),
        "gain": "" if step.gain is None else f"{step.gain:+.4g}",
        "duration": format_duration(step.duration_s),
        "tokens": f"{step.input_tokens + step.output_tokens:,}",
        "cost": fmt_usd(step.cost_usd),
        "parent": step.parent_step,
        "best_before": fmt_score(step.best_before),
        "message": step.message,
        "lesson": step.lesson,
        "acceptance": "" if step.threshold is None or step.noise is None else (
            f"{'held-out part' if step.scored_by == 'gome' else 'fold'} scores "
            f"{', '.join(fmt_score(f) for f in step.fold_scores or [])}; "
            + ("" if step.pooled_gain is None else
               f"its own fold scores {', '.join(fmt_score(f) for f in step.reported_folds or [])}; "
               f"pooled gain {step.pooled_gain:+.4g}, ")
            + f"noise {step.noise:.4g}, a gain had to beat {step.threshold:.4g}"),
        "scored_by": _scored_by(step),
        "untrusted": step.untrusted or "",
        "auto_fixes": "; ".join(step.auto_fixes),
        "change": step.reported_change(),
        "runs": step.runs,
        "run_status": step.run_status or "",
        "runtime": format_duration(step.runtime_s) if step.runtime_s is not None else "-",
        "times": f"LLM {step.llm_s:.1f} s, running {step.run_s:.1f} s, overhead {step.overhead_s:.1f} s",
        "gpu": f"GPU, peak {step.gpu_peak_mb} MB" if step.gpu and step.gpu_peak_mb else ("GPU" if step.gpu else ""),
        "observations": step.gradient.observations if step.gradient else [],
        "problem": step.limiting_problem or "",
        "candidates": _candidates(step),
        "diff": diff,
        "diff_caption": caption,
        "logs": {k: v for k, v in logs.items() if v},
        "code_dir": step.code_dir or "",
    }


# The page ---------------------------------------------------------------------------------


def _usage_rows(rows: dict[str, UsageRow]) -> list[dict[str, Any]]:
    ordered = sorted(rows.items(), key=lambda kv: (-kv[1].cost_usd, -kv[1].calls))
    return [_usage_row(name, row) for name, row in ordered]


def _usage_row(name: str, row: UsageRow) -> dict[str, Any]:
    return {
        "name": name, "calls": row.calls, "errors": row.errors, "input": f"{row.input_tokens:,}",
        "output": f"{row.output_tokens:,}", "cached": f"{row.cached_input_tokens:,}",
        "reasoning": f"{row.reasoning_tokens:,}", "cost": fmt_usd(row.cost_usd), "unpriced": row.unpriced,
        "latency": format_duration(row.latency_s) + _waiting(row.wait_s),
    }


def _waiting(wait_s: float) -> str:
    """The part of an LLM time spent waiting for a free slot of the server, when there was any."""
    return f" (of which waiting for the server: {format_duration(wait_s)})" if wait_s >= 1.0 else ""


def _trace_rows(view: RunView) -> list[dict[str, Any]]:
    rows = []
    for t in view.traces:
        phases = _phase_seconds(view, t)
        rows.append({
            "index": t.index, "stage": t.stage or "waiting", "steps": len(t.steps), "last": t.last_status or "-",
            "best": fmt_score(t.best_score), "best_step": t.best_step if t.best_step is not None else "-",
            "accepted": t.accepted, "rejected": t.rejected, "failed": t.failed, "errors": t.errors,
            "llm": format_duration(phases["llm"]) + _waiting(view.usage.by_trace.get(t.index, UsageRow()).wait_s),
            "run": format_duration(phases["run"]),
            "overhead": format_duration(phases["overhead"]), "idle": format_duration(phases["idle"]),
            "tokens": f"{t.input_tokens + t.output_tokens:,}", "cost": fmt_usd(t.cost_usd),
            "exit": t.exited.message if t.exited else "",
        })
    return rows


_OUTCOME_TEXT = {"no_time": "no time", "failed": "failed", "unchanged": "unchanged by the seed"}


def _rerun_text(score: float | None, outcome: str | None) -> str:
    """A re-run as the report shows it: its score, or why there is none or why it is not counted."""
    if outcome in (None, "scored"):
        return fmt_score(score) if score is not None else "failed"
    shown = _OUTCOME_TEXT.get(outcome, outcome)
    return f"{fmt_score(score)} ({shown})" if score is not None else shown


def _final_rows(view: RunView) -> list[dict[str, Any]]:
    selection = view.final_selection
    if selection is None:
        return []
    return [{
        "trace": c.trace, "step": c.step, "score": fmt_score(c.score),
        "reruns": ", ".join(_rerun_text(s, o) for s, o in zip(
            c.rerun_scores, c.rerun_outcomes or [None] * len(c.rerun_scores), strict=False)),
        "mean": fmt_score(c.mean), "std": fmt_score(c.std),
        "chosen": c.trace == selection.chosen_trace and c.step == selection.chosen_step,
    } for c in selection.candidates]


def _scored_by(step: StepRecord) -> str:
    """Who measured the step's score, and what the solution itself claimed."""
    if step.scored_by == "gome":
        return "measured by gome" + (f"; the solution reported {fmt_score(step.reported_score)}"
                                     if step.reported_score is not None else "")
    return "self-reported" if step.scored_by == "self-reported" else ""


def _context(view: RunView) -> dict[str, Any]:
    budget = _CodeBudget(TOTAL_CODE_CHARS)
    steps = sorted(view.steps(), key=lambda s: (s.trace, s.step))
    # When the size budget runs out, the diffs of accepted steps (the path to the best) are kept first.
    rows = {(s.trace, s.step): _step_row(view, s, budget) for s in sorted(steps, key=lambda s: not s.accepted)}
    best = view.best
    chosen = view.best_overall()
    return {
        "version": __version__,
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "workdir": str(view.workdir),
        "competition": view.task.competition_id or "?",
        "metric": view.task.metric_name or "?",
        "direction": view.task.direction_word(),
        "scoring": view.task.scoring,
        "self_reported": view.task.self_reported,
        "goal": view.task.goal,
        "state": view.state,
        "finish_reason": view.finish_reason or "",
        "spent": format_duration(view.spent_s),
        "limit": format_duration(view.time_limit_s) if view.time_limit_s is not None else "?",
        "left": format_duration(view.left_s) if view.left_s is not None else "?",
        "started": _started(view),
        "n_steps": len(steps),
        "n_accepted": sum(s.accepted for s in steps),
        "first_valid": format_duration(view.first_valid_s) if view.first_valid_s is not None else "-",
        "first_valid_note": "into the run" if view.first_valid_s is not None else "no step accepted yet",
        "best_score": fmt_score(chosen.score) if chosen else "-",
        "best_where": f"trace {chosen.trace}, step {chosen.step}" if chosen else "",
        "traces": _trace_rows(view),
        "steps": [rows[(s.trace, s.step)] for s in steps],
        "memory": [{"trace": e.trace, "step": e.step, "clock": e.clock, "hypothesis": e.hypothesis,
                    "component": e.component, "problem": e.problem, "score": fmt_score(e.score),
                    "gain": "" if e.gain is None else f"{e.gain:+.4g}"} for e in view.memory],
        "final": view.final_selection,
        "final_rows": _final_rows(view),
        "refit": view.refit,
        "best": best,
        "best_score_in_place": fmt_score(best.score) if best else "-",
        "submission": str(view.submission) if view.submission else "",
        "fallback": view.fallback or "",
        "spend_cap": view.spend_cap or "",
        "usage_total": _usage_row("all calls", view.usage.total),
        "usage_roles": _usage_rows(view.usage.by_role),
        "usage_models": _usage_rows(view.usage.by_model),
        "notes": [{"ts": n.ts, "level": n.level, "trace": "" if n.trace is None else n.trace, "message": n.message}
                  for n in view.notes[-NOTES_SHOWN:]],
        "crashes": [e for e in view.exits if e.exit_code not in (0, None)],
        "skipped_lines": view.skipped_lines,
    }


def _started(view: RunView) -> str:
    if not view.sessions:
        return "?"
    moment = epoch_of(view.sessions[0].ts)
    if moment is None:
        return "?"
    text = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return text + (f", {len(view.sessions)} sessions" if len(view.sessions) > 1 else "")
