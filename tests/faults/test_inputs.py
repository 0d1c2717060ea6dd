"""Broken competition folders: missing, empty or malformed files, no stated metric, an unusual id column."""

from __future__ import annotations

import json
import re

import pytest

from gome_agent.errors import TaskError
from gome_agent.records.events import EventLog, FallbackWritten
from gome_agent.task.sample import load_sample_submission
from tests.faults.conftest import Model, World, check_run, fault_config, run_in_process, solution

pytestmark = pytest.mark.faults


def _fallback_message(world: World) -> str:
    [written] = [e for e in EventLog(world.workdir / "events.jsonl").read() if isinstance(e, FallbackWritten)]
    return written.message


def test_a_missing_train_csv_named_in_the_description_ends_with_the_fallback(world, fake_llm):
    (world.data / "train.csv").unlink()
    world.protect()
    assert "train.csv" in (world.data / "description.md").read_text()
    fake_llm.set_responder(Model(code=lambda s: solution(s, attack="open('input/train.csv').read()\n")))
    run_in_process(fault_config(world, fake_llm, optimizer={"max_steps": 2}))
    verdict = check_run(world, reason="step limit reached")
    assert [s.status for s in verdict.steps] == ["failed", "failed"]
    assert "FileNotFoundError" in (world.workdir / "traces" / "t0" / "s0001" / "a0" / "stderr.txt").read_text()
    assert "no training labels" in _fallback_message(world)
    task = json.loads((world.workdir / "task.json").read_text())
    assert "train.csv" not in task["files_text"]


def test_an_empty_test_csv_ends_with_a_constant_learned_from_train(world, fake_llm):
    (world.data / "test.csv").write_text("")
    world.protect()
    fake_llm.set_responder(Model())
    run_in_process(fault_config(world, fake_llm, optimizer={"max_steps": 2}))
    verdict = check_run(world, reason="step limit reached")
    assert [s.status for s in verdict.steps] == ["failed", "failed"]
    assert "wrong row count: got 0, expected 143" in verdict.steps[0].lesson
    assert "learned from train.csv" in _fallback_message(world)
    task = json.loads((world.workdir / "task.json").read_text())
    assert "test.csv (table, 0 B): unreadable CSV: No columns to parse from file" in task["files_text"]


def test_a_malformed_extra_csv_does_not_stop_the_run(world, fake_llm):
    (world.data / "extra.csv").write_bytes(b'a,b\n1,2,3,4\n"unclosed,\x00\xff\xfe\n' + bytes(range(256)) * 40)
    world.protect()
    fake_llm.set_responder(Model())
    run_in_process(fault_config(world, fake_llm, optimizer={"max_steps": 2}))
    verdict = check_run(world, reason="step limit reached", best_at_least=0.70)
    assert [s.status for s in verdict.steps] == ["accepted", "accepted"]
    assert "extra.csv" in json.loads((world.workdir / "task.json").read_text())["files_text"]


def _unstated(world: World, metric_sentence: str) -> None:
    description = world.data / "description.md"
    text = description.read_text()
    section = text[text.index("## Evaluation"):text.index("## Submission File")]
    description.write_text(text.replace(section, f"## Evaluation\n{metric_sentence}\n\n"))
    world.protect()


def test_a_known_metric_without_a_stated_direction_takes_the_metrics_own(world, fake_llm):
    _unstated(world, "Submissions are scored with the area under the ROC curve.")
    model = Model()
    model.analysis.update(higher_is_better=None, direction_evidence="AUC is a known metric.")
    fake_llm.set_responder(model)
    run_in_process(fault_config(world, fake_llm, optimizer={"max_steps": 2}))
    check_run(world, reason="step limit reached", best_at_least=0.70)
    task = json.loads((world.workdir / "task.json").read_text())
    assert task["higher_is_better"] is True and task["direction_source"] == "known_metric"


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        ("in-house quality index", "the description states no direction for metric 'in-house quality index' and it is "
                                   "not a known metric; pass --higher-is-better or --lower-is-better"),
        ("", "names no metric; the description's evaluation section must say how submissions are scored"),
    ],
    ids=["unknown-metric", "no-metric"],
)
def test_no_stated_metric_stops_before_any_step_with_the_reason_and_the_sample(world, fake_llm, metric, message):
    _unstated(world, "Submissions are scored by the organisers.")
    model = Model()
    model.analysis.update(metric_name=metric, higher_is_better=None, direction_evidence="not stated")
    fake_llm.set_responder(model)
    with pytest.raises(TaskError, match=re.escape(message)):
        run_in_process(fault_config(world, fake_llm))
    verdict = check_run(world, reason=lambda r: r.startswith("stopped: ") and message in r, expect_steps=False)
    assert model.count("task_analysis") == 2  # the analysis was sent back once with the reason
    assert verdict.best is not None and verdict.best.source == "fallback"


def test_no_stated_direction_runs_when_the_user_gives_it(world, fake_llm):
    _unstated(world, "Submissions are scored with our in-house quality index.")
    model = Model()
    model.analysis.update(metric_name="in-house quality index", higher_is_better=None)
    fake_llm.set_responder(model)
    run_in_process(fault_config(world, fake_llm, higher_is_better=True, optimizer={"max_steps": 2}))
    check_run(world, reason="step limit reached", best_at_least=0.70)
    assert json.loads((world.workdir / "task.json").read_text())["direction_source"] == "user"


def test_an_id_column_that_is_neither_first_nor_called_id(world, fake_llm):
    for name in ("test.csv", "train.csv"):
        path = world.data / name
        path.write_text(path.read_text().replace("id,", "case_key,", 1))
    sample = world.data / "sample_submission.csv"
    rows = [line.split(",") for line in sample.read_text().splitlines()[1:]]
    sample.write_text("target,case_key\n" + "".join(f"{t},{i}\n" for i, t in rows))
    world.protect()

    def code(score: float) -> str:
        return solution(score).replace('row["id"]', 'row["case_key"]').replace('"id,target', '"case_key,target')

    model = Model(code=code)
    model.analysis.update(id_column="case_key")
    fake_llm.set_responder(model)
    run_in_process(fault_config(world, fake_llm, optimizer={"max_steps": 2}))
    verdict = check_run(world, reason="step limit reached", best_at_least=0.70,
                        sample=load_sample_submission(sample, "case_key"))
    assert [s.status for s in verdict.steps] == ["accepted", "accepted"]
    assert json.loads((world.workdir / "task.json").read_text())["id_column"] == "case_key"
