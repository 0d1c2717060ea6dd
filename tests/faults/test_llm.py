"""LLM API faults injected into real runs: the run goes on (or stops clearly) and keeps its best."""

from __future__ import annotations

import json
import threading

import pytest

from gome_agent import jsonl
from gome_agent.records.events import EventLog, Note
from tests.fake_llm import FakeRequest, Reply
from tests.faults.conftest import Model, World, check_run, cli_args, fault_config, gome, run_in_process

pytestmark = pytest.mark.faults

DRAFT_SCORE = 0.70


def _calls(world: World, role: str) -> list[dict]:
    return [c for c in jsonl.iter_raw(world.workdir / "llm_calls.jsonl") if c["role"] == role]


@pytest.mark.parametrize(
    ("fault", "attempts"),
    [
        pytest.param([Reply(status=500), Reply(status=503)], 3, id="500-then-503"),
        pytest.param([Reply(close_connection=True)], 2, id="connection-reset"),
        pytest.param([Reply(text="{", drop_stream_after_chunks=2)], 2, id="stream-cut-midway"),
        pytest.param([Reply(text="", output_tokens=0)], 2, id="empty-answer-once"),
    ],
)
def test_transient_failures_are_retried_and_the_step_goes_through(world, fake_llm, fault, attempts):
    model = Model().inject("gradient", *fault)
    fake_llm.set_responder(model)
    summary = run_in_process(fault_config(world, fake_llm))
    verdict = check_run(world, reason="step limit reached", best_at_least=DRAFT_SCORE)
    assert [s.status for s in verdict.steps] == ["accepted"] * 3
    assert _calls(world, "gradient")[0]["attempts"] == attempts
    assert summary.best_score == verdict.steps[-1].score


def test_rate_limit_burst_waits_as_told_by_retry_after(world, fake_llm):
    limited = Reply(status=429, headers={"retry-after": "1"},
                    error_body={"error": {"message": "Rate limit reached", "type": "requests",
                                          "param": None, "code": "rate_limit_exceeded"}})
    model = Model().inject("gradient", limited, limited)
    fake_llm.set_responder(model)
    run_in_process(fault_config(world, fake_llm, optimizer={"max_steps": 2}))
    verdict = check_run(world, reason="step limit reached", best_at_least=DRAFT_SCORE)
    second = verdict.steps[1]
    assert second.status == "accepted"
    call = _calls(world, "gradient")[0]
    assert call["attempts"] == 3 and call["status"] == "ok"
    assert second.llm_s >= 2.0  # two waits of the server's 1 s, not the 0.01 s backoff


def test_read_timeout_is_retried(world, fake_llm):
    model = Model().inject("gradient", Reply(text="{}", delay_s=3))
    fake_llm.set_responder(model)
    run_in_process(fault_config(world, fake_llm, optimizer={"max_steps": 2}, llm={"request_timeout_s": 1}))
    verdict = check_run(world, reason="step limit reached", best_at_least=DRAFT_SCORE)
    assert verdict.steps[1].status == "accepted"
    assert _calls(world, "gradient")[0]["attempts"] == 2


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        pytest.param([Reply(text="")] * 3, "empty reply from fake", id="empty-every-time"),
        pytest.param([Reply(refusal="I can't help with that.")], "refused to answer: I can't help with that.",
                     id="refusal"),
        pytest.param(["this is not json", "still not json {"], "still unusable after the repair re-ask",
                     id="invalid-json-twice"),
    ],
)
def test_unusable_gradients_cost_the_diagnosis_not_the_step(world, fake_llm, fault, message):
    model = Model().inject("gradient", *fault)
    fake_llm.set_responder(model)
    run_in_process(fault_config(world, fake_llm))
    verdict = check_run(world, reason="step limit reached", best_at_least=DRAFT_SCORE)
    # The unusable gradient costs the step its diagnosis, not the step: it changes the best straight
    # from the feedback (the scripted direct change improves), and the next step asks for a gradient again.
    assert not verdict.crashes, verdict.crashes  # a restart would redo step 2 without the injected fault
    assert [s.status for s in verdict.steps] == ["accepted", "accepted", "accepted"]
    second, third = verdict.steps[1], verdict.steps[2]
    assert second.gradient_error is not None and message in second.gradient_error
    assert second.gradient is None and third.gradient is not None and third.gradient_error is None


def test_invalid_json_twice_costs_exactly_the_answer_and_one_repair(world, fake_llm):
    model = Model().inject("gradient", "this is not json", "still not json {")
    fake_llm.set_responder(model)
    run_in_process(fault_config(world, fake_llm, optimizer={"max_steps": 2}))
    verdict = check_run(world, reason="step limit reached", best_at_least=DRAFT_SCORE)
    # The answer and one repair re-ask, then the step's direct change: three calls in all.
    assert [c["status"] for c in _calls(world, "gradient")] == ["ok", "ok"]
    assert verdict.steps[1].llm_calls == 3 and "JSON" in (verdict.steps[1].gradient_error or "")


def test_a_reply_of_several_megabytes_is_cut_and_re_asked(world, fake_llm):
    # 5 MB with no closing fence; numbered lines, so the loop guard (a repeated passage) does not stop it first
    huge = "Change: everything\n```python\n" + "".join(f"# padding line {i} of a runaway model\n"
                                                         for i in range(120_000))
    model = Model().inject("update", huge)
    fake_llm.set_responder(model)
    run_in_process(fault_config(world, fake_llm, optimizer={"max_steps": 2}))
    verdict = check_run(world, reason="step limit reached", best_at_least=DRAFT_SCORE)
    assert verdict.steps[1].status == "accepted"
    updates = _calls(world, "update")
    assert updates[0]["finish_reason"] == "length_cut" and len(updates[0]["reply"]) == 400_000
    assert verdict.steps[1].llm_calls == 3  # gradient, the cut reply, the re-ask
    assert (world.workdir / "llm_calls.jsonl").stat().st_size < 3_000_000


def test_unknown_model_before_the_task_is_read_stops_with_the_sample_in_place(world, fake_llm):
    fake_llm.queue(Reply(status=404, error_body={"error": {"message": "The model `nope` does not exist",
                                                            "type": "invalid_request_error", "code": "model_not_found"}}))
    summary = run_in_process(fault_config(world, fake_llm))
    verdict = check_run(world, reason=lambda r: r.startswith("stopped: unknown model 'fake'"), expect_steps=False)
    assert summary.fatal and len(fake_llm.requests) == 1
    assert verdict.best is not None and verdict.best.source == "fallback"


def test_unknown_model_mid_run_stops_the_trace_and_keeps_the_best(world, fake_llm):
    gone = Reply(status=404, error_body={"error": {"message": "The model `fake` does not exist",
                                                    "type": "invalid_request_error", "code": "model_not_found"}})
    model = Model().inject("gradient", gone)
    fake_llm.set_responder(model)
    summary = run_in_process(fault_config(world, fake_llm, optimizer={"max_steps": 5}))
    verdict = check_run(world, reason="stopped: every trace stopped on an LLM error that retrying cannot fix; "
                                      "see events.jsonl", best_at_least=DRAFT_SCORE)
    assert summary.fatal
    assert [s.status for s in verdict.steps] == ["accepted"]
    assert model.count("gradient") == 1  # not retried


def test_revoked_api_key_stops_every_trace_after_one_request_each(world, fake_llm, tmp_path):
    model = Model(delay_s=0.1)
    revoked = threading.Event()
    refused: list[FakeRequest] = []

    def responder(request: FakeRequest) -> Reply | str:
        if revoked.is_set():
            refused.append(request)
            key = request.headers.get("authorization", "")
            return Reply(status=401, error_body={"error": {"message": f"Incorrect API key provided: {key[7:]}",
                                                            "type": "invalid_request_error", "param": None,
                                                            "code": "invalid_api_key"}})
        reply = model(request)
        if model.count("draft") >= 2 and model.count("gradient") >= 1:
            revoked.set()
        return reply

    fake_llm.set_responder(responder)
    config = fault_config(world, fake_llm, traces=2, optimizer={"max_steps": 50})
    proc = gome(cli_args(config, tmp_path / "gome.json"))
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 1, out
    verdict = check_run(world, output=out, best_at_least=DRAFT_SCORE,
                        reason="stopped: every trace stopped on an LLM error that retrying cannot fix; see events.jsonl")
    assert len(refused) == 2  # one refused request per trace: no retry, no restart
    notes = [e.message for e in EventLog(world.workdir / "events.jsonl").read() if isinstance(e, Note) and e.trace is not None]
    assert len(notes) == 2 and all("refused the API key (HTTP 401)" in n and "OPENAI_API_KEY" in n for n in notes)
    assert verdict.steps and all(s.trace in (0, 1) for s in verdict.steps)
    # The server echoed the key in its message: it is redacted everywhere the run wrote it.
    assert "[REDACTED]" in (world.workdir / "events.jsonl").read_text()
    assert "run finished (stopped: every trace stopped" in out


def test_calls_log_holds_no_key_even_when_the_prompt_would(world, fake_llm):
    # The model's reply quotes the key it "found": the call log must still not hold it.
    model = Model().inject("gradient", lambda r: json.dumps({"observations": [world.secrets["OPENAI_API_KEY"]]}))
    fake_llm.set_responder(model)
    run_in_process(fault_config(world, fake_llm, optimizer={"max_steps": 2}))
    check_run(world, reason="step limit reached", best_at_least=DRAFT_SCORE)
    assert "[REDACTED]" in (world.workdir / "llm_calls.jsonl").read_text()


def test_an_unusable_task_analysis_is_read_from_the_files_and_the_run_goes_on(world, fake_llm):
    # The 0.5B model's task JSON looped on breast-cancer, the answer and its repair alike.
    model = Model().inject("task_analysis", '{"goal": "predict", "Our goal is', "not json either")
    fake_llm.set_responder(model)
    run_in_process(fault_config(world, fake_llm, optimizer={"max_steps": 1}))
    verdict = check_run(world, reason="step limit reached", best_at_least=DRAFT_SCORE)
    assert verdict.steps[0].status == "accepted" and model.count("task_analysis") == 2
    task = json.loads((world.workdir / "task.json").read_text())
    assert task["analysis_source"] == "files" and task["target_columns"] == ["target"]
    assert task["metric_name"] == "roc_auc" and task["higher_is_better"] is True
    notes = [e.message for e in EventLog(world.workdir / "events.jsonl").read() if isinstance(e, Note)]
    assert any(n.startswith("the model's task analysis could not be used, so gome read the task from the files: "
                            "metric roc_auc (higher is better), predictions target") for n in notes)
