"""How many requests gome sends one LLM endpoint at once: a counting semaphore that processes share.

Why: some OpenAI-compatible servers serve one request at a time and cut the running reply off
when another arrives (llama-cpp-python's own server: the client sees a stream that ends without
its finish_reason), so K traces calling at once cut each other's replies. llama.cpp's
llama-server instead queues what its slots cannot take, and reports them (`GET /props`,
`total_slots`).

The semaphore is a set of lock files, `slot-<i>.lock`, one per request in flight, in one folder
per endpoint (its base URL) in the user's runtime folder (`$XDG_RUNTIME_DIR`, else the temporary
folder, `gome-agent-<uid>/endpoints/`; the run folder when that cannot be used): every gome
process of the machine that talks to the same URL shares it, and a killed process frees its
slot with its file descriptors. A call holds a slot for each attempt, never while it waits to
retry.

The limit (`EndpointState`, kept in the run folder's `endpoints/` so that every trace process of
the run sees the same) comes from the setting `max_concurrent`; with "auto": no limit for
OpenAI's and Anthropic's own APIs; for any other server the slots it reports, else no limit but
watched: when a reply is cut off (a stream that ends before its end, a connection broken
mid-reply) while another request of gome to that endpoint is in flight, the limit drops to 1 for
the rest of the run, and the cut attempt is tried again without counting against `max_attempts`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx2
from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, ValidationError

from gome_agent import jsonl
from gome_agent.errors import LLMError
from gome_agent.llm.config import LLMConfig

log = logging.getLogger(__name__)

HOSTED_HOSTS = frozenset({"api.openai.com", "api.anthropic.com"})
DEFAULT_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
WATCH_SLOTS = 64  # an endpoint without a limit is still watched through this many slots, to see overlaps
POLL_S = 0.05
PROBE_TIMEOUT_S = 3.0

Source = Literal["setting", "hosted", "server", "unreported", "interruptions"]


class EndpointState(BaseModel):
    """The concurrency limit of one endpoint in a run, and where it comes from."""

    model_config = ConfigDict(extra="forbid")

    base_url: str
    limit: int | None  # None: no limit
    # setting: max_concurrent; hosted: OpenAI's or Anthropic's own API; server: the slots it reports;
    # unreported: a server that says nothing (watched); interruptions: dropped to 1 after a reply was cut.
    source: Source
    reported_slots: int | None = None
    detail: str
    updated_at: str

    @property
    def adaptive(self) -> bool:
        """Whether a cut-off reply may still lower the limit (never against an explicit setting)."""
        return self.source in ("server", "unreported") and self.limit != 1

    @property
    def watched(self) -> bool:
        """Whether calls take slots at all (hosted APIs need none)."""
        return self.source != "hosted"


def endpoint_url(config: LLMConfig) -> str:
    """The base URL the provider talks to, without a trailing slash."""
    return (config.base_url or DEFAULT_URLS.get(config.provider, "")).rstrip("/")


def is_hosted(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() in HOSTED_HOSTS


def endpoint_key(url: str) -> str:
    """A file name for the endpoint: readable host and port, and a hash of the whole URL."""
    parts = urlsplit(url)
    readable = re.sub(r"[^A-Za-z0-9]+", "-", f"{parts.hostname or 'endpoint'}-{parts.port or ''}").strip("-")
    return f"{readable}-{hashlib.sha256(url.lower().encode()).hexdigest()[:12]}"


def props_urls(url: str) -> list[str]:
    """Where a llama.cpp server answers `GET /props`: at its root, which the OpenAI base URL ends below."""
    root = url[: -len("/v1")] if url.endswith("/v1") else url
    return list(dict.fromkeys([f"{root}/props", f"{url}/props"]))


def read_slots(url: str, *, api_key: str | None = None, timeout_s: float = PROBE_TIMEOUT_S) -> int | None:
    """The requests a server serves at once, as llama.cpp's llama-server reports them (`total_slots`
    of `GET /props`); None when the server does not say (vLLM, Ollama, llama-cpp-python's server)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    for candidate in props_urls(url):
        try:
            reply = httpx2.get(candidate, headers=headers, timeout=timeout_s)
            body = reply.json() if reply.status_code == 200 else None
        except (httpx2.HTTPError, ValueError):
            continue
        slots = body.get("total_slots") if isinstance(body, dict) else None
        if isinstance(slots, int) and not isinstance(slots, bool) and slots >= 1:
            return slots
    return None


def lock_folder(key: str, fallback: Path | None) -> Path:
    """The machine-wide folder of an endpoint's slot locks (runtime state, so not in a cache that
    outlives reboots); under `fallback` (the run folder) when that folder cannot be used."""
    user = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"gome-agent-{os.getuid()}"
    try:
        user.mkdir(mode=0o700, exist_ok=True)
        if user.stat().st_uid != os.getuid():
            raise PermissionError(f"{user} belongs to another user")
        folder = user / "endpoints" / key
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    except OSError as exc:
        if fallback is None:
            raise
        log.warning("cannot use %s (%s); LLM slots are shared by this run's processes only", user, exc)
        folder = fallback / "slots" / key
        folder.mkdir(parents=True, exist_ok=True)
        return folder


@dataclass
class Slot:
    """A request's place at the endpoint: `index` None when none was needed."""

    index: int | None
    waited_s: float
    limit: int | None


class EndpointGate:
    """The limit of one endpoint and the slots that enforce it. Safe to share between threads.

    `state_dir` holds the run's record of the limit (None: kept in memory, for this process
    only); `probe` reads a server's slots (tests replace it).
    """

    def __init__(
        self,
        config: LLMConfig,
        *,
        state_dir: Path | None,
        lock_dir: Path | None = None,
        probe: Callable[[str], int | None] | None = None,
    ) -> None:
        self.url = endpoint_url(config)
        self.key = endpoint_key(self.url)
        self._setting = config.max_concurrent
        self._state_path = state_dir / f"{self.key}.json" if state_dir is not None else None
        self._state_dir = state_dir
        self._lock_dir = lock_dir
        key_env = config.key_env_var()
        self._probe = probe or (lambda url: read_slots(url, api_key=os.environ.get(key_env) or None))
        self._mutex = threading.Lock()
        self._state: EndpointState | None = None

    # The limit -------------------------------------------------------------------------
    def state(self) -> EndpointState:
        """The endpoint's limit in this run: the run's record when there is one, else decided now and recorded."""
        with self._mutex:
            recorded = self._read_record()
            if recorded is not None:
                self._state = recorded
            elif self._state is None:
                self._state = self._record_first(self._decide())
            return self._state

    @property
    def known_limit(self) -> int | None:
        """The limit as last read, without reading the record again (None: no limit, or not read yet)."""
        return self._state.limit if self._state is not None else None

    def _decide(self) -> EndpointState:
        if isinstance(self._setting, int):
            return _state(self.url, self._setting, "setting", f"the setting max_concurrent = {self._setting}")
        if is_hosted(self.url):
            return _state(self.url, None, "hosted", "a hosted API: no limit")
        slots = self._probe(self.url)
        if slots is not None:
            return _state(self.url, slots, "server", f"the server reports {slots} slot(s) (total_slots of /props)",
                          reported=slots)
        return _state(self.url, None, "unreported",
                      "the server reports no slots: no limit until a reply is cut off by another request")

    def _read_record(self) -> EndpointState | None:
        if self._state_path is None or not self._state_path.exists():
            return None
        try:
            return EndpointState.model_validate_json(self._state_path.read_text(encoding="utf-8"))
        except (OSError, ValidationError):
            return None  # caught between a writer's temp file and its rename; the next read has it

    def _record_first(self, state: EndpointState) -> EndpointState:
        """Record `state` unless another process recorded the endpoint first (then that one holds)."""
        if self._state_path is None:
            return state
        try:
            self._state_path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self._state_path) + ".lock"):
                recorded = self._read_record()
                if recorded is not None:
                    return recorded
                jsonl.write_json(self._state_path, state)
        except OSError as exc:
            # A full disk must not stop the calls; this process keeps the limit in memory.
            log.error("could not record the LLM endpoint's limit in %s: %s", self._state_path, exc)
        return state

    def note_cut(self, slot: Slot) -> bool:
        """Whether a reply cut off in `slot` was cut by another request of gome to this endpoint (one
        is in flight now). If so, a limit that may adapt drops to 1 for the rest of the run."""
        state = self.state()
        if slot.index is None or state.source in ("setting", "hosted"):
            return False
        others = self._held(exclude=slot.index)
        if not others:
            return False
        if state.adaptive:
            self._drop_to_one(state, others)
        return True

    def _drop_to_one(self, state: EndpointState, others: int) -> None:
        dropped = _state(self.url, 1, "interruptions",
                         f"a reply was cut off while {others} other request(s) were in flight: the server serves "
                         "one request at a time", reported=state.reported_slots)
        with self._mutex:
            self._state = dropped
            if self._state_path is not None:
                try:
                    with FileLock(str(self._state_path) + ".lock"):
                        current = self._read_record()
                        if current is not None and current.limit == 1:
                            self._state = current
                            return
                        jsonl.write_json(self._state_path, dropped)
                except OSError as exc:
                    log.error("could not record the LLM endpoint's limit in %s: %s", self._state_path, exc)
        log.warning("LLM endpoint %s: %s; one request at a time from now on", self.url, dropped.detail)

    # The slots -------------------------------------------------------------------------
    @contextmanager
    def slot(self, deadline: float | None = None) -> Iterator[Slot]:
        """Holds a free slot of the endpoint while the block runs, waiting for one as long as needed
        (LLMError once `deadline`, an epoch time, has passed)."""
        state = self.state()  # a first call may ask the server for its slots: that is not waiting for one
        started = time.monotonic()
        while True:
            if not state.watched:
                yield Slot(index=None, waited_s=0.0, limit=None)
                return
            taken = self._take(state.limit)
            if taken is not None:
                break
            if deadline is not None and time.time() >= deadline:
                raise LLMError(f"deadline reached waiting {time.monotonic() - started:.0f}s for a free slot of the "
                               f"LLM server at {self.url} (limit {state.limit})")
            time.sleep(POLL_S)
            state = self.state()
        index, lock = taken
        try:
            yield Slot(index=index, waited_s=time.monotonic() - started, limit=state.limit)
        finally:
            lock.release()

    def _folder(self) -> Path:
        if self._lock_dir is None:
            self._lock_dir = lock_folder(self.key, self._state_dir)
        return self._lock_dir

    def _take(self, limit: int | None) -> tuple[int, FileLock] | None:
        folder = self._folder()
        for index in range(limit or WATCH_SLOTS):
            lock = FileLock(folder / f"slot-{index}.lock", timeout=0)
            try:
                lock.acquire()
            except Timeout:
                continue
            if limit is not None and self._held(exclude=index) >= limit:
                # Calls that began before the limit dropped still hold higher slots: let them end first.
                lock.release()
                return None
            return index, lock
        return None

    def _held(self, *, exclude: int) -> int:
        """Slots of this endpoint other than `exclude` that a request holds now (in any process)."""
        held = 0
        for path in self._folder().glob("slot-*.lock"):
            if path.name == f"slot-{exclude}.lock":
                continue
            probe = FileLock(path, timeout=0)
            try:
                probe.acquire()
            except Timeout:
                held += 1
            else:
                probe.release()
        return held


def _state(url: str, limit: int | None, source: Source, detail: str, *, reported: int | None = None) -> EndpointState:
    return EndpointState(base_url=url, limit=limit, source=source, reported_slots=reported, detail=detail,
                         updated_at=datetime.now(timezone.utc).isoformat())
