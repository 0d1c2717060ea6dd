"""`gome bench overhead`: the agent's own time per step, and how its diagnosis prompt grows.

A real run (real executor, real files, real prompts) on the breast-cancer
competition, with the scripted LLM answering instantly. Per step, overhead =
step wall time - LLM time - solution run time. To stand in for a multi-trace
run, every diagnosis also adds two successes from "other traces" to the shared
memory, so the memory grows about three times faster than one trace alone
would make it. Goals (issue #2): mean overhead under 200 ms per step, and the
diagnosis prompt at step 100 at most 1.5 times the one at step 10. It also reports the
size of every decision prompt (draft, gradient, update, ...) at step 10 and at the last
step, and checks that each holds the description, the file listing and the environment.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from gome_agent import jsonl
from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.bench.scripted import IDEAS, ScriptedPolicy, template_of
from gome_agent.config import RunConfig
from gome_agent.llm.client import LLMClient
from gome_agent.llm.config import LLMConfig
from gome_agent.llm.providers.scripted import ScriptedProvider
from gome_agent.llm.types import Message
from gome_agent.optimizer.momentum import SuccessMemory
from gome_agent.records.events import EventLog
from gome_agent.run.coordinator import run

ANALYSIS = {
    "goal": "Predict the probability that a breast mass is malignant.",
    "task_type": "binary classification",
    "metric_name": "ROC AUC",
    "higher_is_better": True,
    "direction_evidence": "Submissions are evaluated on the area under the ROC curve.",
    "id_column": "id",
    "target_columns": ["target"],
    "submission_format": "One row per test id with the probability of malignancy.",
}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


DECISION_ROLES = ("draft", "gradient", "update", "debug", "direct")


def _prompt_sizes(calls_log: Path) -> dict[str, dict[int, int]]:
    """Characters of each decision prompt (first asks only, not re-asks), by role and step."""
    sizes: dict[str, dict[int, int]] = {}
    for call in jsonl.iter_raw(calls_log):
        tags = call.get("tags", {})
        if call.get("role") in DECISION_ROLES and not tags.get("repair") and not tags.get("reask"):
            sizes.setdefault(call["role"], {})[tags["step"]] = sum(len(m["content"]) for m in call.get("messages") or [])
    return sizes


def _at(by_step: dict[int, int], step: int) -> int | None:
    """The size at `step`, or at the last step before it that sent this prompt."""
    earlier = [s for s in by_step if s <= step]
    return by_step[max(earlier)] if earlier else None


def _missing_context(calls_log: Path, workdir: Path) -> dict[str, object]:
    """Decision prompts that lack the description, the file listing or the environment line."""
    task = json.loads((workdir / "task.json").read_text(encoding="utf-8"))
    environment = json.loads((workdir / "environment.json").read_text(encoding="utf-8"))["text"]
    needles = {"description": task["prompt_description"][:300], "files": "Files (paths relative to the competition",
               "environment": environment}
    checked, missing = 0, []
    for call in jsonl.iter_raw(calls_log):
        if call.get("role") not in DECISION_ROLES:
            continue
        text = "\n".join(m["content"] for m in call.get("messages") or [])
        checked += 1
        missing += [f"{call['role']} step {call['tags'].get('step')}: {name}" for name, needle in needles.items()
                    if needle not in text]
    return {"checked": checked, "missing": missing[:20]}


def measure(steps: int, workdir: Path) -> dict[str, object]:
    data = build_breast_cancer(workdir / "competition")
    policy = ScriptedPolicy(ANALYSIS, seed=1)
    memory = SuccessMemory(workdir / "run" / "memory")
    other = {"n": 0}

    def responder(messages: list[Message], model: str) -> str:
        if template_of(messages) == "gradient":
            for trace in (1, 2):
                other["n"] += 1
                idea, component = IDEAS[other["n"] % len(IDEAS)]
                memory.record(trace=trace, step=other["n"], hypothesis=f"{idea} (variant {other['n']})",
                              component=component, problem="the model underfits", score=0.7 + other["n"] * 1e-4, gain=1e-4)
        return policy(messages, model)

    config = RunConfig(
        data_dir=data, workdir=workdir / "run", time_limit_s=24 * 3600, traces=1, final_reserve_fraction=0.0,
        llm=LLMConfig(provider="openai-compatible", base_url="http://127.0.0.1:9", model="scripted"),
        optimizer={"max_steps": steps, "max_debug": 0},
        execution={"max_run_minutes": 5, "sandbox": "auto"},
        validation={"scoring": "self-reported"},  # the scripted solutions' scores are the experiment
    )
    llm = LLMClient(config.llm, config.workdir / "llm_calls.jsonl", provider=ScriptedProvider(responder))
    run(config, llm=llm)
    records = EventLog(config.workdir / "events.jsonl").steps()
    overheads = [r.overhead_s * 1000 for r in records]
    calls = config.workdir / "llm_calls.jsonl"
    sizes = _prompt_sizes(calls)
    prompts = {}
    for role, by_step in sorted(sizes.items()):
        first, last = _at(by_step, 10), _at(by_step, steps)
        prompts[role] = {"step_10": first, f"step_{steps}": last,
                         "ratio": round(last / first, 3) if first and last else None}
    gradient = sizes.get("gradient", {})
    at10, at100 = gradient.get(10), gradient.get(100)
    ratio = round(at100 / at10, 3) if at10 and at100 else None
    context = _missing_context(calls, config.workdir)
    mean = statistics.fmean(overheads)
    return {
        "steps": len(records),
        "accepted": sum(r.accepted for r in records),
        "memory_entries": len(memory.entries()),
        "overhead_ms": {"mean": round(mean, 1), "p50": round(_percentile(overheads, 0.5), 1),
                        "p95": round(_percentile(overheads, 0.95), 1), "max": round(max(overheads), 1)},
        "gradient_prompt_chars": {"step_10": at10, "step_100": at100, "ratio": ratio},
        "prompt_chars": prompts,
        "decision_prompts_with_task_context": context,
        "goals": {"overhead_under_200ms": mean < 200, "prompt_ratio_at_most_1_5": ratio is not None and ratio <= 1.5,
                  "every_decision_prompt_has_the_task": not context["missing"]},
    }


def main(steps: int = 100, out: Path | None = None) -> int:
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        result = measure(steps, out)
    else:
        with tempfile.TemporaryDirectory(prefix="gome-bench-") as tmp:
            result = measure(steps, Path(tmp))
    print(json.dumps(result, indent=2))
    return 0
