"""Runs to and from the layout of the released Gome traces (`amstrongzyf/Gome-GPT5-Traces`).

That layout is one JSON object per file, one entry per competition:

    {"<competition_id>": {"scenario": {...}, "loop_0": {...}, "loop_1": {...}, ...}}

`scenario` holds `background`, `submission_specifications`, `evaluation`,
`metric_name`, `metric_direction` (true = higher is better), `raw_description`
and `runtime_environment`; an export adds `competition_id`, `task_type`,
`id_column`, `target_columns`, `time_limit_s`, `traces` and `source`.

Each `loop_N` is one hypothesis -> code -> execution -> feedback cycle. The
released files do not document its fields, so an export writes these, and an
import reads them and common alternatives (see `import_traces`):

    loop_N = {
      "trace": 0, "step": 3, "parent_step": 1, "kind": "improve", "stage": "draft",
      "started_at": ISO time, "duration_s": 12.5,
      "hypothesis": {"hypothesis", "reason", "component", "problem", "expected_impact",
                     "observations": [...], "diagnosis": {gradient}, "ranking": [...]},
      "code": {"main.py": "..."},
      "execution": {"status", "score", "running_time", "runs", "message", "stdout_tail", "stderr_tail"},
      "feedback": {"decision": true, "status": "accepted", "reason", "observations",
                   "best_before", "gain"},
      "usage": {"llm_calls", "input_tokens", "output_tokens", "cost_usd", "llm_s", "run_s", "overhead_s"}
    }

Loops are numbered in the order their steps started, across all traces; each
names its trace. As in the released traces, the final multi-seed selection is
not part of the layout.

`import_traces` turns such a file (ours, or one shaped like the released GPT-5
traces) into one run folder per competition (`events.jsonl`, `task.json`,
`run.json`, each step's code under `traces/`, the success memory and
`code/best.json`), which `RunView` and `write_report` read like any run.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gome_agent import __version__, jsonl
from gome_agent.errors import ConfigError
from gome_agent.optimizer.gradient import Gradient, RankedDirection
from gome_agent.optimizer.momentum import MemoryEntry
from gome_agent.records.best import BestInfo
from gome_agent.records.events import RunFinished, RunStarted, StepKind, StepRecord, StepStatus, TaskAnalyzed
from gome_agent.records.runinfo import RunInfo
from gome_agent.task.metrics import known_direction
from gome_agent.views.runview import RunView, epoch_of, read_json_object

TAIL_CHARS = 2000
_LOOP = re.compile(r"^loop_(\d+)$")
_STATUSES: tuple[StepStatus, ...] = ("accepted", "rejected", "failed", "error")
_KINDS: tuple[StepKind, ...] = ("draft", "improve", "debug")


# Export ------------------------------------------------------------------------------


def export_traces(workdir: Path, out: Path) -> Path:
    """Write the run in `workdir` as a traces file at `out`; returns `out`."""
    view = RunView.load(workdir)
    task = read_json_object(view.workdir / "task.json") or {}
    competition = view.task.competition_id or view.workdir.name
    entry: dict[str, Any] = {"scenario": _scenario(view, task)}
    for number, step in enumerate(view.steps()):
        entry[f"loop_{number}"] = _loop(view, step)
    jsonl.write_json(Path(out), {competition: entry})
    return Path(out)


def _scenario(view: RunView, task: dict[str, Any]) -> dict[str, Any]:
    environment = read_json_object(view.workdir / "environment.json") or {}
    targets = task.get("target_columns") or []
    specification = str(task.get("submission_format") or "")
    if task.get("id_column"):
        specification += f" Columns: {task['id_column']} (id), {', '.join(map(str, targets))}."
    metric = view.task.metric_name or ""
    return {
        "background": " ".join(x for x in (str(task.get("goal") or ""), str(task.get("task_type") or "")) if x),
        "submission_specifications": specification.strip(),
        "evaluation": f"{metric} ({view.task.direction_word()})" if metric else "",
        "metric_name": metric,
        "metric_direction": view.task.higher_is_better,
        "raw_description": str(task.get("description") or ""),
        "runtime_environment": str(environment.get("text") or ""),
        "competition_id": view.task.competition_id,
        "task_type": task.get("task_type"),
        "id_column": task.get("id_column"),
        "target_columns": targets,
        "time_limit_s": view.time_limit_s,
        "traces": len(view.traces),
        "source": f"gome-agent {__version__}",
    }


def _loop(view: RunView, step: StepRecord) -> dict[str, Any]:
    folder = view.workdir / step.code_dir if step.code_dir else None
    code = {}
    if folder is not None:
        text = _read_text(folder / "main.py")
        if text is not None:
            code["main.py"] = text
    chosen = None
    if step.gradient is not None:
        chosen = next((c for c in step.gradient.candidates if c.hypothesis == step.hypothesis), None)
    execution: dict[str, Any] = {
        "status": step.run_status, "score": step.score, "running_time": step.runtime_s, "runs": step.runs,
        "message": step.message,
    }
    if folder is not None:
        execution["stdout_tail"] = _tail(folder / "stdout.txt")
        if step.status == "failed":
            execution["stderr_tail"] = _tail(folder / "stderr.txt")
    return {
        "trace": step.trace,
        "step": step.step,
        "parent_step": step.parent_step,
        "kind": step.kind,
        "stage": step.stage,
        "started_at": step.started_at,
        "duration_s": step.duration_s,
        "hypothesis": {
            "hypothesis": step.hypothesis,
            "reason": chosen.reasoning if chosen else "",
            "expected_impact": chosen.expected_impact if chosen else "",
            "component": step.component,
            "problem": step.limiting_problem,
            "observations": step.gradient.observations if step.gradient else [],
            "diagnosis": step.gradient.model_dump() if step.gradient else None,
            "ranking": [r.model_dump() for r in step.ranking],
        },
        "code": code,
        "execution": execution,
        "feedback": {
            "decision": step.accepted, "status": step.status, "reason": step.message,
            "observations": step.lesson, "best_before": step.best_before, "gain": step.gain,
        },
        "usage": {
            "llm_calls": step.llm_calls, "input_tokens": step.input_tokens, "output_tokens": step.output_tokens,
            "cost_usd": step.cost_usd, "llm_s": step.llm_s, "run_s": step.run_s, "overhead_s": step.overhead_s,
        },
    }


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _tail(path: Path) -> str:
    text = _read_text(path)
    return "" if text is None else text[-TAIL_CHARS:]


# Import: reading a loop leniently ----------------------------------------------------------


def _first(mapping: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = mapping.get(key)
        if value is not None and value != "":
            return value
    return None


def _section(loop: dict[str, Any], *keys: str) -> dict[str, Any]:
    for key in keys:
        value = loop.get(key)
        if isinstance(value, dict):
            return value
    return {}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_text(v) for v in value)
    return json.dumps(value, ensure_ascii=False)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def find_score(value: Any, metric: str | None = None) -> float | None:
    """A validation score from a number, a string, or a table as a dict ({metric: {"ensemble": x}} and the like)."""
    number = _number(value)
    if number is not None or not isinstance(value, dict | list):
        return number
    if isinstance(value, list):
        return next((s for s in (find_score(v, metric) for v in value) if s is not None), None)
    for key in ("ensemble", metric, "score", "valid_score", "value"):
        if key and key in value:
            found = find_score(value[key], metric)
            if found is not None:
                return found
    return next((s for s in (find_score(v, metric) for v in value.values()) if s is not None), None)


def _direction(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("true", "higher", "higher is better", "maximize", "max", "up"):
            return True
        if word in ("false", "lower", "lower is better", "minimize", "min", "down"):
            return False
    return None


def _decision(feedback: dict[str, Any]) -> bool | None:
    for key in ("decision", "accepted", "Replace Best Result", "replace_best", "acceptable", "Acceptable"):
        value = feedback.get(key)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("yes", "no", "true", "false"):
            return value.strip().lower() in ("yes", "true")
    return None


def _code_files(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        return {"main.py": value}
    if not isinstance(value, dict):
        return {}
    for key in ("file_dict", "files", "workspace"):
        if isinstance(value.get(key), dict):
            return _code_files(value[key])
    files = {}
    for name, text in value.items():
        path = Path(str(name))
        if isinstance(text, str) and not path.is_absolute() and ".." not in path.parts and path.parts:
            files[path.as_posix()] = text
    return files


@dataclass
class _Loop:
    """One loop of a traces file, read into what a step record needs."""

    trace: int
    step: int | None
    parent_step: int | None
    kind: StepKind | None
    stage: str | None
    started: float | None
    duration_s: float
    hypothesis: str
    reason: str
    component: str | None
    problem: str | None
    gradient: Gradient | None
    ranking: list[RankedDirection]
    files: dict[str, str]
    run_status: str | None
    score: float | None
    runtime_s: float | None
    runs: int
    message: str
    stdout: str
    stderr: str
    decision: bool | None
    status: StepStatus | None
    feedback_reason: str
    lesson: str
    gain: float | None
    usage: dict[str, Any]


def _read_loop(loop: dict[str, Any], metric: str | None) -> _Loop:
    hyp_raw = _first(loop, "hypothesis", "direct_exp_gen", "proposal")
    hyp = hyp_raw if isinstance(hyp_raw, dict) else {"hypothesis": hyp_raw}
    if isinstance(hyp.get("hypothesis"), dict):
        hyp = {**hyp, **hyp["hypothesis"]}
    execution = _section(loop, "execution", "running", "result")
    feedback = _section(loop, "feedback", "exp_feedback")
    usage = _section(loop, "usage")
    gradient = None
    if isinstance(hyp.get("diagnosis"), dict):
        try:
            gradient = Gradient.model_validate(hyp["diagnosis"])
        except ValidationError:
            gradient = None
    ranking = []
    raw_ranking = hyp.get("ranking")
    for item in raw_ranking if isinstance(raw_ranking, list) else []:
        try:
            ranking.append(RankedDirection.model_validate(item))
        except ValidationError:
            continue
    score_source = _first(execution, "score", "valid_score", "scores", "result", "ensemble_score")
    if score_source is None:
        score_source = _first(loop, "score", "result")
    status = _first(feedback, "status")
    running_time = _number(_first(execution, "running_time", "runtime_s", "running_time_s", "time"))
    return _Loop(
        trace=int(_number(_first(loop, "trace", "trace_id", "trace_index")) or 0),
        step=_int_or_none(loop.get("step")),
        parent_step=_int_or_none(loop.get("parent_step")),
        kind=next((k for k in _KINDS if k == loop.get("kind")), None),
        stage=str(loop["stage"]) if loop.get("stage") else None,
        started=epoch_of(str(_first(loop, "started_at", "start_time", "timestamp", "ts") or "")),
        duration_s=_number(_first(loop, "duration_s", "duration")) or running_time or 0.0,
        hypothesis=_text(_first(hyp, "hypothesis", "caption", "statement")),
        reason=_text(_first(hyp, "reason", "reasoning", "concise_reason")),
        component=str(hyp["component"]) if hyp.get("component") else None,
        problem=_text(_first(hyp, "problem", "problem_desc", "problem_name", "limiting_problem")) or None,
        gradient=gradient,
        ranking=ranking,
        files=_code_files(_first(loop, "code", "coding", "workspace")),
        run_status=str(execution["status"]) if execution.get("status") else None,
        score=find_score(score_source, metric),
        runtime_s=running_time,
        runs=int(_number(execution.get("runs")) or 0),
        message=_text(_first(execution, "message", "error")),
        stdout=_text(_first(execution, "stdout_tail", "stdout", "log")),
        stderr=_text(_first(execution, "stderr_tail", "stderr")),
        decision=_decision(feedback),
        status=next((k for k in _STATUSES if k == status), None),
        feedback_reason=_text(_first(feedback, "reason", "Reasoning", "Feedback for Hypothesis")),
        lesson=_text(_first(feedback, "observations", "Observations", "hypothesis_evaluation", "lesson")),
        gain=_number(feedback.get("gain")),
        usage=usage,
    )


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# Import: writing run folders ----------------------------------------------------------------


def import_traces(path: Path, out_dir: Path) -> list[Path]:
    """Write one run folder per competition of the traces file at `path` under `out_dir`; returns them.

    Lenient about the loops: missing or unknown fields are tolerated. Where a loop
    does not say, the trace is 0, steps are numbered in order, a step's parent is
    the trace's last accepted step, and its status follows the feedback's decision
    (accepted / rejected, or failed when it has no score). Loops without times are
    laid out one after another from their durations (at least a second each).
    Without `metric_direction`, the direction comes from the metric's name when it
    is a known metric, else from how accepted scores moved; when nothing tells,
    it stays unknown (null in task.json) and no code/best.json is written.
    """
    path, out_dir = Path(path), Path(out_dir)
    data = _load_file(path)
    targets: list[tuple[str, dict[str, Any], Path]] = []
    used: set[str] = set()
    for competition, entry in data.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: the entry of competition {competition!r} is not a JSON object")
        name = _folder_name(competition, used)
        folder = out_dir / name
        if folder.exists() and any(folder.iterdir()):
            raise ConfigError(f"{folder} already exists and is not empty; import {path.name} into another folder")
        targets.append((competition, entry, folder))
    for competition, entry, folder in targets:
        _write_run(folder, competition, entry, source=path)
    return [folder for _, _, folder in targets]


def _load_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"traces file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"traces file {path} cannot be read: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"traces file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise ConfigError(
            f"traces file {path} must hold a JSON object with one entry per competition "
            '({"<competition>": {"scenario": ..., "loop_0": ...}})'
        )
    return data


def _folder_name(competition: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", str(competition)).strip(".-") or "competition"
    name, number = base, 2
    while name in used:
        name, number = f"{base}-{number}", number + 1
    used.add(name)
    return name


def _decide_direction(scenario: dict[str, Any], metric: str | None, loops: list[_Loop]) -> tuple[bool | None, str]:
    stated = _direction(scenario.get("metric_direction"))
    if stated is not None:
        return stated, "description"
    known = known_direction(metric) if metric else None
    if known is not None:
        return known, "known_metric"
    votes = 0
    last: dict[int, float] = {}
    for loop in loops:
        if (loop.decision or loop.status == "accepted") and loop.score is not None:
            if loop.trace in last and loop.score != last[loop.trace]:
                votes += 1 if loop.score > last[loop.trace] else -1
            last[loop.trace] = loop.score
    if votes:
        return votes > 0, "inferred"
    return None, "unknown"


def _place_in_time(loops: list[_Loop]) -> None:
    if all(loop.started is not None for loop in loops):
        return
    cursor = datetime.now(UTC).timestamp() - sum(max(loop.duration_s, 1.0) for loop in loops)
    for loop in loops:
        loop.started = cursor
        cursor += max(loop.duration_s, 1.0)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def _better(score: float, best: float | None, higher_is_better: bool | None) -> bool:
    if best is None:
        return True
    if higher_is_better is None:
        return False
    return score > best if higher_is_better else score < best


class _Steps:
    """Turns loops into step records, trace by trace, the way a trace would have recorded them."""

    def __init__(self, higher_is_better: bool | None) -> None:
        self.higher_is_better = higher_is_better
        self.used: dict[int, set[int]] = {}
        self.best: dict[int, StepRecord] = {}

    def record(self, loop: _Loop, clock: int) -> StepRecord:
        used = self.used.setdefault(loop.trace, set())
        number = loop.step if loop.step is not None and loop.step not in used else max(used, default=0) + 1
        used.add(number)
        best = self.best.get(loop.trace)
        kind: StepKind = loop.kind or ("draft" if best is None else "improve")
        parent = loop.parent_step if loop.parent_step is not None else (best.step if best and kind != "draft" else None)
        status = loop.status or self._status(loop, best)
        best_before = best.score if best else None
        gain = loop.gain
        if gain is None and loop.score is not None and best_before is not None and status in ("accepted", "rejected"):
            gain = loop.score - best_before
        lesson = loop.lesson
        if loop.gradient is None and loop.reason:
            # Without our own diagnosis, the hypothesis's reasoning would otherwise be lost.
            lesson = "\n".join(x for x in (lesson, f"Reasoning: {loop.reason}") if x)
        usage = loop.usage
        runtime = loop.runtime_s
        assert loop.started is not None
        record = StepRecord(
            ts=_iso(loop.started), trace=loop.trace, step=number, clock=clock, kind=kind,
            stage=loop.stage or ("draft" if kind == "draft" else "improve"), parent_step=parent,
            hypothesis=loop.hypothesis, component=loop.component, limiting_problem=loop.problem,
            gradient=loop.gradient, ranking=loop.ranking, status=status,
            accepted=status == "accepted", score=loop.score, best_before=best_before, gain=gain,
            runs=loop.runs or (1 if loop.files and status != "error" else 0),
            run_status=loop.run_status or ("ok" if loop.score is not None else None),
            message=loop.feedback_reason or loop.message, lesson=lesson, runtime_s=runtime,
            started_at=_iso(loop.started), duration_s=loop.duration_s or runtime or 0.0,
            llm_s=_number(usage.get("llm_s")) or 0.0, run_s=_number(usage.get("run_s")) or runtime or 0.0,
            overhead_s=_number(usage.get("overhead_s")) or 0.0, llm_calls=int(_number(usage.get("llm_calls")) or 0),
            input_tokens=int(_number(usage.get("input_tokens")) or 0),
            output_tokens=int(_number(usage.get("output_tokens")) or 0),
            cost_usd=_number(usage.get("cost_usd")) or 0.0,
        )
        if record.accepted:
            self.best[loop.trace] = record
        return record

    def _status(self, loop: _Loop, best: StepRecord | None) -> StepStatus:
        if loop.decision is True:
            return "accepted"
        if loop.score is None:
            return "failed" if loop.files else "error"
        if loop.decision is False:
            return "rejected"
        best_score = best.score if best else None
        return "accepted" if _better(loop.score, best_score, self.higher_is_better) else "rejected"


def _write_run(folder: Path, competition: str, entry: dict[str, Any], *, source: Path) -> None:
    raw_scenario = entry.get("scenario")
    scenario: dict[str, Any] = raw_scenario if isinstance(raw_scenario, dict) else {}
    metric = str(scenario.get("metric_name") or "") or None
    numbered = sorted((int(m.group(1)), value) for key, value in entry.items()
                      if (m := _LOOP.match(str(key))) and isinstance(value, dict))
    loops = [_read_loop(value, metric) for _, value in numbered]
    direction, direction_source = _decide_direction(scenario, metric, loops)
    _place_in_time(loops)
    builder = _Steps(direction)
    steps = [builder.record(loop, clock) for clock, loop in enumerate(loops, 1)]
    folder.mkdir(parents=True, exist_ok=True)
    for loop, step in zip(loops, steps, strict=True):
        step.code_dir = _write_code(folder, step, loop)
    start = min((epoch_of(s.started_at) or 0.0 for s in steps), default=datetime.now(UTC).timestamp())
    end = max([start] + [(epoch_of(s.started_at) or start) + s.duration_s for s in steps])
    traces = max([s.trace + 1 for s in steps] + [_int_or_none(scenario.get("traces")) or 1])
    time_limit = _number(scenario.get("time_limit_s")) or max(end - start, 1.0)
    best = _best(steps, direction)
    competition_id = str(scenario.get("competition_id") or competition)
    task: dict[str, Any] = {
        "competition_id": competition_id,
        "data_dir": "", "goal": _text(scenario.get("background")), "task_type": _text(scenario.get("task_type")),
        "metric_name": metric or "", "higher_is_better": direction, "direction_source": direction_source,
        "id_column": _text(scenario.get("id_column")), "target_columns": scenario.get("target_columns") or [],
        "submission_format": _text(scenario.get("submission_specifications")), "sample_path": "",
        "description": _text(scenario.get("raw_description")), "files_text": "",
        "evaluation": _text(scenario.get("evaluation")), "imported_from": str(source),
    }
    jsonl.write_json(folder / "task.json", task)
    if scenario.get("runtime_environment"):
        jsonl.write_json(folder / "environment.json", {"text": _text(scenario["runtime_environment"])})
    jsonl.write_json(folder / "run.json", RunInfo(time_limit_s=time_limit, reserve_s=0.0, started_at=start,
                                                  heartbeat_at=end))
    events: list[Any] = [RunStarted(ts=_iso(start), version=__version__, competition_id=competition_id,
                                    time_limit_s=time_limit, traces=traces)]
    if direction is not None and metric:
        events.append(TaskAnalyzed(ts=_iso(start), metric_name=metric, higher_is_better=direction,
                                   direction_source=direction_source))
    events.extend(steps)
    events.append(RunFinished(
        ts=_iso(end), reason=f"imported from {source.name}", best_score=best.score if best else None,
        best_trace=best.trace if best else None, best_step=best.step if best else None, steps=len(steps),
        elapsed_s=round(end - start, 3),
    ))
    _write_lines(folder / "events.jsonl", events)
    _write_lines(folder / "memory" / "successes.jsonl", [
        MemoryEntry(id=f"import-t{s.trace}-s{s.step}", trace=s.trace, step=s.step, clock=s.clock, ts=s.started_at,
                    hypothesis=s.hypothesis, component=s.component or "workflow",
                    problem=s.limiting_problem or "first working solution", score=s.score, gain=s.gain)
        for s in steps if s.accepted and s.score is not None
    ])
    if best is not None and direction is not None and best.code_dir:
        main = folder / best.code_dir / "main.py"
        if main.exists():
            (folder / "code").mkdir(exist_ok=True)
            (folder / "code" / "main.py").write_bytes(main.read_bytes())
        jsonl.write_json(folder / "code" / "best.json", BestInfo(
            trace=best.trace, step=best.step, score=best.score, higher_is_better=direction, source="step",
            code_dir=best.code_dir, ts=_iso(end),
        ))


def _best(steps: list[StepRecord], direction: bool | None) -> StepRecord | None:
    scored = [s for s in steps if s.accepted and s.score is not None]
    if not scored:
        return None
    if direction is None:
        return scored[-1]
    sign = 1.0 if direction else -1.0
    return max(scored, key=lambda s: sign * (s.score or 0.0))


def _write_code(folder: Path, step: StepRecord, loop: _Loop) -> str | None:
    if not loop.files:
        return None
    relative = Path("traces") / f"t{step.trace}" / f"s{step.step:04d}" / "a0"
    attempt = folder / relative
    attempt.mkdir(parents=True, exist_ok=True)
    files = dict(loop.files)
    if "main.py" not in files:
        python = [name for name in files if name.endswith(".py")]
        files["main.py"] = files[python[0] if python else next(iter(files))]
    for name, text in files.items():
        target = attempt / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    if loop.stdout:
        (attempt / "stdout.txt").write_text(loop.stdout, encoding="utf-8")
    if loop.stderr:
        (attempt / "stderr.txt").write_text(loop.stderr, encoding="utf-8")
    return relative.as_posix()


def _write_lines(path: Path, records: list[Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(jsonl.dumps(r) + "\n" for r in records), encoding="utf-8")
