"""The per-endpoint concurrency limit: where it comes from, how it adapts to a server that cuts
replies off, that processes share it, and that waiting and retrying count as LLM time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gome_agent.errors import LLMError
from gome_agent.llm import LLMClient, LLMConfig, Message, build_provider
from gome_agent.llm.client import thread_llm_time
from gome_agent.llm.concurrency import EndpointGate, endpoint_key, props_urls, read_slots
from gome_agent.llm.retry import RetryLoop, TransientError
from tests.fake_llm import FakeLLMServer, Reply

ASK = [Message(role="user", content="Say hi")]
ROOT = Path(__file__).resolve().parents[2]


def make_client(fake: FakeLLMServer, run: Path, **overrides: object) -> LLMClient:
    config = LLMConfig.model_validate({
        "provider": "openai-compatible", "base_url": fake.base_url_openai, "model": "qwen",
        "backoff_base_s": 0.01, "backoff_max_s": 0.02, **overrides,
    })
    return LLMClient(config, run / "llm_calls.jsonl", provider=build_provider(config, strict=True))


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "llm_calls.jsonl").read_text().splitlines()]


def recorded_state(run: Path) -> dict:
    (path,) = (run / "endpoints").glob("*.json")
    return json.loads(path.read_text())


def call_at_once(client: LLMClient, n: int) -> list[BaseException]:
    """`n` calls from `n` threads at once; the errors they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def one(i: int) -> None:
        start.wait()
        try:
            client.complete([Message(role="user", content=f"call {i}")], role="draft")
        except BaseException as exc:  # noqa: BLE001 - the test reports every failure
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_max_concurrent_is_auto_or_a_positive_number() -> None:
    assert LLMConfig().max_concurrent == "auto"
    assert LLMConfig(max_concurrent=2).max_concurrent == 2
    with pytest.raises(ValueError, match="at least 1"):
        LLMConfig(max_concurrent=0)
    with pytest.raises(ValueError):
        LLMConfig(max_concurrent="many")


def test_props_is_read_at_the_server_root() -> None:
    assert props_urls("http://127.0.0.1:8080/v1") == ["http://127.0.0.1:8080/props", "http://127.0.0.1:8080/v1/props"]
    assert props_urls("http://h:1") == ["http://h:1/props"]
    assert endpoint_key("http://127.0.0.1:8080/v1").startswith("127-0-0-1-8080-")
    assert endpoint_key("http://127.0.0.1:8080/v1") != endpoint_key("http://127.0.0.1:8081/v1")


def test_a_server_reporting_four_slots_gets_four_requests_at_once(tmp_path: Path) -> None:
    with FakeLLMServer(total_slots=4) as fake:
        assert read_slots(fake.base_url_openai) == 4
        fake.set_responder(lambda request: Reply(text="hello", delay_s=0.4))
        client = make_client(fake, tmp_path)
        assert call_at_once(client, 7) == []
        assert fake.max_active == 4
    state = recorded_state(tmp_path)
    assert (state["limit"], state["source"], state["reported_slots"]) == (4, "server", 4)
    calls = records(tmp_path)
    assert [c["concurrency_limit"] for c in calls] == [4] * 7
    # Three calls had to wait for one of the four to end.
    assert sum(c["slot_wait_s"] >= 0.3 for c in calls) >= 3


def test_hosted_apis_and_explicit_settings_are_not_probed(tmp_path: Path) -> None:
    def never(url: str) -> int | None:
        raise AssertionError(f"probed {url}")

    hosted = EndpointGate(LLMConfig(provider="openai"), state_dir=tmp_path / "a", probe=never)
    assert (hosted.state().limit, hosted.state().source) == (None, "hosted")
    with hosted.slot() as slot:
        assert (slot.index, slot.waited_s) == (None, 0.0)
    anthropic = EndpointGate(LLMConfig(provider="anthropic", model="claude"), state_dir=None, probe=never)
    assert anthropic.state().source == "hosted"
    fixed = EndpointGate(LLMConfig(provider="openai-compatible", base_url="http://127.0.0.1:9/v1", max_concurrent=2),
                         state_dir=tmp_path / "b", probe=never)
    assert (fixed.state().limit, fixed.state().source) == (2, "setting")


def test_interrupting_server_cuts_no_call_and_the_limit_drops_to_one(tmp_path: Path) -> None:
    # Like llama-cpp-python's server: each new request cuts off the streamed reply in progress.
    with FakeLLMServer(interrupting=True) as fake:
        fake.set_responder(lambda request: Reply(text="a complete reply " * 8, delay_s=0.5))
        # One attempt per call: a cut that counted as a failure would fail the call.
        client = make_client(fake, tmp_path, max_attempts=1)
        assert call_at_once(client, 3) == []
        assert fake.interrupted >= 1  # the server did cut replies off before the limit dropped
        cut_before = fake.interrupted
        assert call_at_once(client, 3) == []
        assert fake.interrupted == cut_before  # one at a time from then on
    state = recorded_state(tmp_path)
    assert (state["limit"], state["source"]) == (1, "interruptions")
    calls = records(tmp_path)
    assert [c["status"] for c in calls] == ["ok"] * 6
    assert sum(c["interrupted"] for c in calls) == cut_before
    interrupted = [c for c in calls if c["interrupted"]]
    assert all(c["attempts"] == c["interrupted"] + 1 for c in interrupted)
    # The second round queued: two of its calls waited for most of a reply each.
    assert sum(c["slot_wait_s"] >= 0.3 for c in calls[3:]) >= 2
    assert all(c["latency_s"] >= c["slot_wait_s"] + c["retry_s"] for c in calls)


def test_a_cut_with_nothing_else_in_flight_is_an_ordinary_failure(tmp_path: Path) -> None:
    with FakeLLMServer(interrupting=True) as fake:
        fake.queue(Reply(text="cut short", end_stream_after_chunks=1))
        client = make_client(fake, tmp_path, max_attempts=1)
        with pytest.raises(LLMError, match="failed after 1 attempts.*dropped stream"):
            client.complete(ASK, role="draft")
    (call,) = records(tmp_path)
    assert (call["status"], call["interrupted"], call["concurrency_limit"]) == ("error", 0, None)
    assert recorded_state(tmp_path)["source"] == "unreported"


def test_interrupted_attempts_are_free_only_up_to_max_attempts() -> None:
    def cut(timeout_s: float) -> str:
        error = TransientError("dropped stream", broken_off=True)
        error.interrupted = True
        raise error

    loop = RetryLoop(max_attempts=2, backoff_base_s=0.0, backoff_max_s=0.0, deadline=None, what="call",
                     sleep=lambda s: None)
    with pytest.raises(LLMError, match="failed after 4 attempts"):
        loop.run(cut, 1.0)
    assert (loop.attempts, loop.interrupted) == (4, 2)


def test_waiting_and_failed_calls_are_on_the_thread_llm_clock(tmp_path: Path) -> None:
    with FakeLLMServer() as fake:
        fake.queue(Reply(status=500), Reply(status=500))
        client = make_client(fake, tmp_path, max_attempts=2, backoff_base_s=0.3, backoff_max_s=0.3)
        before = thread_llm_time()
        with pytest.raises(LLMError):
            client.complete(ASK, role="draft")
        spent = thread_llm_time() - before
    (call,) = records(tmp_path)
    assert spent.total_s >= 0.15 and spent.total_s == pytest.approx(call["latency_s"], abs=0.01)
    assert call["retry_s"] == pytest.approx(call["latency_s"], abs=0.01)


HOLDER = """
import json, sys, time
from pathlib import Path
from gome_agent.llm.concurrency import EndpointGate
from gome_agent.llm.config import LLMConfig
run, out = Path(sys.argv[1]), Path(sys.argv[2])
config = LLMConfig(provider="openai-compatible", base_url="http://127.0.0.1:9/v1", max_concurrent=1)
gate = EndpointGate(config, state_dir=run / "endpoints")
for _ in range(3):
    with gate.slot() as slot:
        start = time.time()
        time.sleep(0.2)
        with out.open("a") as f:
            f.write(json.dumps([start, time.time(), slot.index]) + "\\n")
"""


def test_processes_share_the_limit(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path), "XDG_RUNTIME_DIR": ""}  # the slot locks live under tmp_path
    outs = [tmp_path / f"held{i}.jsonl" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "run"), str(out)], cwd=ROOT, env=env)
             for out in outs]
    assert [p.wait(60) for p in procs] == [0, 0]
    assert list((tmp_path / f"gome-agent-{os.getuid()}" / "endpoints").iterdir())
    spans = sorted(json.loads(line) for out in outs for line in out.read_text().splitlines())
    assert len(spans) == 6 and {s[2] for s in spans} == {0}
    overlaps = [(a, b) for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1]]
    assert overlaps == []


def test_deadline_while_waiting_for_a_slot(tmp_path: Path) -> None:
    config = LLMConfig(provider="openai-compatible", base_url="http://127.0.0.1:9/v1", max_concurrent=1)
    gate = EndpointGate(config, state_dir=tmp_path, lock_dir=tmp_path / "locks")
    other = EndpointGate(config, state_dir=tmp_path, lock_dir=tmp_path / "locks")
    with gate.slot():
        with pytest.raises(LLMError, match="deadline reached waiting .* for a free slot"):
            with other.slot(deadline=0.0):
                pass
