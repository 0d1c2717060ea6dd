"""A fake LLM server speaking OpenAI Chat Completions, OpenAI Responses and Anthropic Messages.

It runs on 127.0.0.1 with an ephemeral port in a daemon thread, answers JSON or SSE the
way the real APIs do (closely enough for the official SDKs with strict response
validation), records every request, and plays scripted replies: text, HTTP errors with
each API's error body, delays, dropped streams and reset connections.

Two traits of local servers can be switched on: `interrupting` (like llama-cpp-python's own
server, a new request cuts off the streamed reply in progress: its stream ends, cleanly, without
a finish_reason) and `total_slots` (like llama.cpp's llama-server, `GET /props` reports it).

Standalone, for subprocesses: python -m tests.fake_llm --port N --responder file.py:function
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import math
import signal
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Api = Literal["chat", "responses", "messages"]
_ROUTES: dict[str, Api] = {"/v1/chat/completions": "chat", "/v1/responses": "responses", "/v1/messages": "messages"}

# Error (type, code) per status, as the real APIs send them.
_OPENAI_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout", None),
    409: ("invalid_request_error", "conflict"),
    429: ("requests", "rate_limit_exceeded"),
}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


@dataclass
class FakeRequest:
    api: Api
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    stream: bool

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def text(self) -> str:
        """All message, instruction and system text of the request, joined with newlines."""
        pieces: list[str] = []
        if self.api == "responses":
            pieces += _texts(self.body.get("instructions"))
            items = self.body.get("input")
            pieces += _texts(items) if isinstance(items, str) else [t for i in items or [] for t in _texts(i)]
        else:
            pieces += _texts(self.body.get("system"))
            pieces += [t for m in self.body.get("messages") or [] for t in _texts(m)]
        return "\n".join(pieces)


def _texts(value: Any) -> list[str]:
    """Text of a message, content string or list of content parts."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for part in value for t in _texts(part)]
    if isinstance(value, dict):
        if "content" in value:
            return _texts(value["content"])
        if isinstance(value.get("text"), str):
            return [value["text"]]
    return []


@dataclass
class Reply:
    """One scripted answer. Token counts default to len // 4 of the request and reply text."""

    text: str = ""
    status: int = 200
    error_body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    # Streamed: send this many SSE events, then close the socket without finishing the body.
    # Not streamed: send half of the JSON body, then close.
    drop_stream_after_chunks: int | None = None
    # Streamed: send this many SSE events, then end the body cleanly (no completion event).
    end_stream_after_chunks: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    refusal: str | None = None
    close_connection: bool = False
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    # The reply hit the output token limit: finish_reason "length" (Chat), status "incomplete"
    # with reason "max_output_tokens" (Responses), stop_reason "max_tokens" (Messages).
    truncated: bool = False


Responder = Callable[[FakeRequest], "Reply | str"]


class FakeLLMServer:
    def __init__(self, port: int = 0, *, interrupting: bool = False, total_slots: int | None = None) -> None:
        self._port = port
        # A new request cuts off every streamed reply in progress (llama-cpp-python's server). A reply's
        # delay_s then passes after its first event, so that it is in progress for that long.
        self.interrupting = interrupting
        self.total_slots = total_slots  # reported at GET /props when set (llama.cpp's llama-server)
        self.interrupted = 0  # streamed replies cut off by a later request
        self.active = 0  # requests being answered now
        self.max_active = 0  # the most requests answered at once
        self._streams: list[threading.Event] = []  # the cut-off signal of each streamed reply in progress
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._responder: Responder | None = None
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._counter = 0
        self.requests: list[FakeRequest] = []
        self.base_url_openai = ""
        self.base_url_anthropic = ""

    def start(self) -> FakeLLMServer:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), handler)
        port = self._server.server_address[1]
        self.base_url_openai = f"http://127.0.0.1:{port}/v1"
        self.base_url_anthropic = f"http://127.0.0.1:{port}"
        # A short poll interval keeps close() (and so every test's teardown) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-llm", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def queue(self, *replies: Reply | str) -> None:
        with self._lock:
            self._queue.extend(Reply(text=r) if isinstance(r, str) else r for r in replies)

    def set_responder(self, fn: Responder | None) -> None:
        with self._lock:
            self._responder = fn

    def _record(self, request: FakeRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_reply(self, request: FakeRequest) -> Reply | None:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            responder = self._responder
        if responder is None:
            return None
        reply = responder(request)
        return Reply(text=reply) if isinstance(reply, str) else reply

    def _next_id(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter

    def _arrive(self) -> threading.Event:
        """Count a request in; when interrupting, cut off the streamed replies in progress. Returns
        the signal that cuts this request's own reply off."""
        cut = threading.Event()
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            if self.interrupting:
                for other in self._streams:
                    other.set()
                self._streams.append(cut)
        return cut

    def _leave(self, cut: threading.Event) -> None:
        with self._lock:
            self.active -= 1
            if cut in self._streams:
                self._streams.remove(cut)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeLLMServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `requests`, not the console."""

    def setup(self) -> None:
        super().setup()
        with self.fake._lock:
            self.fake._connections.add(self.connection)

    def finish(self) -> None:
        with self.fake._lock:
            self.fake._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] not in _ROUTES:
            self._discard_body()
            self._send_json(404, _error_body("chat", 404, f"no route for POST {self.path}"))
            return
        cut = self.fake._arrive()
        try:
            self._answer(cut)
        except OSError:
            self.close_connection = True  # the client went away (e.g. its read timeout fired)
        finally:
            self.fake._leave(cut)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/props" and self.fake.total_slots is not None:
            # A few of llama-server's /props fields; gome reads total_slots.
            self._send_json(200, {"total_slots": self.fake.total_slots, "model_path": "fake.gguf",
                                  "default_generation_settings": {"n_ctx": 8192}})
            return
        self._send_json(404, _error_body("chat", 404, f"no route for GET {self.path}"))

    def _discard_body(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))

    def _answer(self, cut: threading.Event) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        api = _ROUTES[self.path.split("?", 1)[0]]
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            self._send_json(400, _error_body(api, 400, f"request body is not JSON: {exc}"))
            return
        request = FakeRequest(
            api=api,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            stream=bool(body.get("stream")),
        )
        self.fake._record(request)
        try:
            reply = self.fake._next_reply(request)
        except Exception as exc:  # a broken responder must show up in the test, not hang it
            self._send_json(500, _error_body(api, 500, f"fake LLM responder raised {exc!r}"))
            return
        if reply is None:
            message = f"fake LLM: no scripted reply for this {api} request (queue empty, no responder)"
            self._send_json(500, _error_body(api, 500, message))
            return
        paced = self.fake.interrupting and request.stream
        if reply.delay_s and not paced and self.fake._closing.wait(reply.delay_s):
            return
        if reply.close_connection:
            self._reset()
            return
        if reply.status != 200:
            body = reply.error_body or _error_body(api, reply.status, f"fake error {reply.status}")
            self._send_json(reply.status, body, reply.headers)
            return
        usage = _Usage.of(request, reply)
        ident = f"{self.fake._next_id():06d}"
        if request.stream:
            self._send_sse(_EVENTS[api](request, reply, usage, ident), reply, cut if paced else None)
        else:
            self._send_json(200, _BODIES[api](request, reply, usage, ident), reply.headers, reply.drop_stream_after_chunks)

    def _send_json(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None, drop: int | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", "req_fake")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if drop is not None:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self._hang_up()
            return
        self.wfile.write(data)

    def _send_sse(
        self, events: list[tuple[str | None, Any]], reply: Reply, cut: threading.Event | None = None
    ) -> None:
        """The events as SSE. With `cut` (interrupting), the reply's delay passes after the first
        event, and once `cut` is set the body ends after the events sent so far."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("cache-control", "no-cache")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        for number, (event, data) in enumerate(events):
            if reply.drop_stream_after_chunks is not None and number >= reply.drop_stream_after_chunks:
                self._hang_up()
                return
            if reply.end_stream_after_chunks is not None and number >= reply.end_stream_after_chunks:
                break
            if cut is not None and number == 1 and reply.delay_s:
                cut.wait(reply.delay_s)
            if cut is not None and number >= 1 and cut.is_set():
                with self.fake._lock:
                    self.fake.interrupted += 1
                break
            payload = data if isinstance(data, str) else json.dumps(data)
            frame = (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"
            self._write_chunk(frame.encode())
        self._write_chunk(b"")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _hang_up(self) -> None:
        """Close mid-body, as a proxy that cuts a stream does (the client sees an incomplete body)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _reset(self) -> None:
        """Reset the connection (RST) before any response byte."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The socket only really closes once its file wrappers are closed too; the handler's
        # final flush then goes to a dummy buffer.
        self.rfile.close()
        self.wfile.close()
        self.connection.close()
        self.wfile = io.BytesIO()


def _error_body(api: Api, status: int, message: str) -> dict[str, Any]:
    if api == "messages":
        kind = _ANTHROPIC_ERRORS.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind, code = _OPENAI_ERRORS.get(status, ("server_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


@dataclass
class _Usage:
    input: int
    output: int
    cached: int
    reasoning: int

    @classmethod
    def of(cls, request: FakeRequest, reply: Reply) -> _Usage:
        produced = reply.refusal if reply.refusal is not None else reply.text
        return cls(
            input=len(request.text) // 4 if reply.input_tokens is None else reply.input_tokens,
            output=len(produced) // 4 if reply.output_tokens is None else reply.output_tokens,
            cached=reply.cached_input_tokens,
            reasoning=reply.reasoning_tokens,
        )


def _pieces(text: str) -> Iterator[str]:
    """The text in at most 16 deltas, so even multi-MB replies stream in few events."""
    size = max(8, math.ceil(len(text) / 16))
    for start in range(0, len(text), size):
        yield text[start : start + size]


# ---- OpenAI Chat Completions -------------------------------------------------------------


def _chat_usage(usage: _Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input,
        "completion_tokens": usage.output,
        "total_tokens": usage.input + usage.output,
        "prompt_tokens_details": {"cached_tokens": usage.cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning, "audio_tokens": 0},
    }


def _chat_body(request: FakeRequest, reply: Reply, usage: _Usage, ident: str) -> dict[str, Any]:
    refused = reply.refusal is not None
    return {
        "id": f"chatcmpl-fake{ident}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None if refused else reply.text,
                    "refusal": reply.refusal,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "length" if reply.truncated else "stop",
            }
        ],
        "usage": _chat_usage(usage),
        "system_fingerprint": "fp_fake",
    }


def _chat_events(request: FakeRequest, reply: Reply, usage: _Usage, ident: str) -> list[tuple[str | None, Any]]:
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> tuple[None, dict[str, Any]]:
        base = {
            "id": f"chatcmpl-fake{ident}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": request.model,
            "system_fingerprint": "fp_fake",
            "choices": choices,
        }
        return None, {**base, **extra}

    def delta(**fields: Any) -> dict[str, Any]:
        return {"index": 0, "delta": fields, "logprobs": None, "finish_reason": None}

    key = "refusal" if reply.refusal is not None else "content"
    events = [chunk([delta(role="assistant", content="" if key == "content" else None, refusal=None)])]
    events += [chunk([delta(**{key: piece})]) for piece in _pieces(reply.refusal or reply.text)]
    finish = "length" if reply.truncated else "stop"
    events.append(chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}]))
    if (request.body.get("stream_options") or {}).get("include_usage"):
        events.append(chunk([], usage=_chat_usage(usage)))
    events.append((None, "[DONE]"))
    return events


# ---- OpenAI Responses --------------------------------------------------------------------


def _responses_usage(usage: _Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input,
        "input_tokens_details": {"cached_tokens": usage.cached, "cache_write_tokens": 0},
        "output_tokens": usage.output,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning},
        "total_tokens": usage.input + usage.output,
    }


def _responses_part(reply: Reply, done: bool) -> dict[str, Any]:
    if reply.refusal is not None:
        return {"type": "refusal", "refusal": reply.refusal if done else ""}
    return {"type": "output_text", "text": reply.text if done else "", "annotations": [], "logprobs": []}


def _responses_item(reply: Reply, ident: str, done: bool) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"msg_fake{ident}",
        "status": "completed" if done else "in_progress",
        "role": "assistant",
        "content": [_responses_part(reply, done)] if done else [],
    }


def _responses_body(
    request: FakeRequest, reply: Reply, usage: _Usage, ident: str, done: bool = True
) -> dict[str, Any]:
    return {
        "id": f"resp_fake{ident}",
        "object": "response",
        "created_at": time.time(),
        "status": ("incomplete" if reply.truncated else "completed") if done else "in_progress",
        "completed_at": time.time() if done else None,
        "model": request.model,
        "output": [_responses_item(reply, ident, True)] if done else [],
        "instructions": request.body.get("instructions"),
        "max_output_tokens": request.body.get("max_output_tokens"),
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "temperature": request.body.get("temperature"),
        "top_p": None,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if done and reply.truncated else None,
        "metadata": {},
        "usage": _responses_usage(usage) if done else None,
    }


def _responses_events(request: FakeRequest, reply: Reply, usage: _Usage, ident: str) -> list[tuple[str | None, Any]]:
    item_id = f"msg_fake{ident}"
    at = {"item_id": item_id, "output_index": 0, "content_index": 0}
    refused = reply.refusal is not None
    raw: list[dict[str, Any]] = [
        {"type": "response.created", "response": _responses_body(request, reply, usage, ident, done=False)},
        {"type": "response.in_progress", "response": _responses_body(request, reply, usage, ident, done=False)},
        {"type": "response.output_item.added", "output_index": 0, "item": _responses_item(reply, ident, False)},
        {"type": "response.content_part.added", **at, "part": _responses_part(reply, False)},
    ]
    if refused:
        raw += [{"type": "response.refusal.delta", **at, "delta": p} for p in _pieces(reply.refusal or "")]
        raw.append({"type": "response.refusal.done", **at, "refusal": reply.refusal})
    else:
        raw += [{"type": "response.output_text.delta", **at, "delta": p, "logprobs": []} for p in _pieces(reply.text)]
        raw.append({"type": "response.output_text.done", **at, "text": reply.text, "logprobs": []})
    raw += [
        {"type": "response.content_part.done", **at, "part": _responses_part(reply, True)},
        {"type": "response.output_item.done", "output_index": 0, "item": _responses_item(reply, ident, True)},
        {"type": "response.incomplete" if reply.truncated else "response.completed",
         "response": _responses_body(request, reply, usage, ident)},
    ]
    return [(event["type"], {**event, "sequence_number": n}) for n, event in enumerate(raw)]


# ---- Anthropic Messages ------------------------------------------------------------------


def _messages_usage(usage: _Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input - usage.cached,
        "output_tokens": usage.output,
        "cache_read_input_tokens": usage.cached,
        "cache_creation_input_tokens": 0,
    }


def _messages_stop(reply: Reply) -> tuple[str, dict[str, Any] | None]:
    if reply.refusal is not None:
        return "refusal", {"type": "refusal", "category": None, "explanation": reply.refusal}
    return ("max_tokens" if reply.truncated else "end_turn"), None


def _messages_body(request: FakeRequest, reply: Reply, usage: _Usage, ident: str) -> dict[str, Any]:
    stop_reason, stop_details = _messages_stop(reply)
    return {
        "id": f"msg_fake{ident}",
        "type": "message",
        "role": "assistant",
        "model": request.model,
        "content": [] if reply.refusal is not None else [{"type": "text", "text": reply.text}],
        "stop_reason": stop_reason,
        "stop_details": stop_details,
        "stop_sequence": None,
        "usage": _messages_usage(usage),
    }


def _messages_events(request: FakeRequest, reply: Reply, usage: _Usage, ident: str) -> list[tuple[str | None, Any]]:
    stop_reason, stop_details = _messages_stop(reply)
    start = {**_messages_body(request, reply, usage, ident), "content": [], "stop_reason": None, "stop_details": None}
    start["usage"] = {**_messages_usage(usage), "output_tokens": 1}
    raw: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    if reply.refusal is None:
        raw.append({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        raw += [
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
            for p in _pieces(reply.text)
        ]
        raw.append({"type": "content_block_stop", "index": 0})
    raw += [
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None, "stop_details": stop_details},
            "usage": {"output_tokens": usage.output},
        },
        {"type": "message_stop"},
    ]
    return [(event["type"], event) for event in raw]


_BODIES = {"chat": _chat_body, "responses": _responses_body, "messages": _messages_body}
_EVENTS = {"chat": _chat_events, "responses": _responses_events, "messages": _messages_events}


def _load_responder(spec: str) -> Responder:
    path, _, name = spec.rpartition(":")
    if not path or not name:
        raise SystemExit(f"--responder must look like path/to/file.py:function, got {spec!r}")
    module_spec = importlib.util.spec_from_file_location("fake_llm_responder", path)
    if module_spec is None or module_spec.loader is None:
        raise SystemExit(f"--responder: cannot load {path}")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--responder", required=True, help="file.py:function taking a FakeRequest")
    parser.add_argument("--interrupting", action="store_true", help="a new request cuts off the reply in progress")
    parser.add_argument("--total-slots", type=int, default=None, help="report this at GET /props")
    args = parser.parse_args(argv)
    server = FakeLLMServer(port=args.port, interrupting=args.interrupting, total_slots=args.total_slots)
    server.set_responder(_load_responder(args.responder))
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # One line a parent process can parse to learn the port.
    print(f"fake LLM listening: openai {server.base_url_openai} anthropic {server.base_url_anthropic}", flush=True)
    stop.wait()
    server.close()


if __name__ == "__main__":
    main()
