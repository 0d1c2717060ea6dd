"""The MLE-bench grading server's validity check, as a submission validator.

`POST /validate` (multipart field `file`) answers whether a submission would be
graded, never its score. It is used when `/health` answers; when the server is
down, slow or failing, candidates fall back to the local format check alone,
and the server is asked again after a pause.

MLE-bench's server saves every upload to one fixed path and validates that path,
serving requests in threads: two posts that overlap can each be judged on the
other's file. So posts to one server are serialized across processes (every trace
is one) by a file lock named after the server's URL.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

import httpx2
from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

VALID = "Submission is valid"


class GradingServer:
    """Callable validator: `server(path)` is None when valid (or unknown), else the server's reason."""

    def __init__(self, url: str, *, timeout_s: float | None = None, recheck_s: float = 300.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s or float(os.environ.get("GOME_GRADING_TIMEOUT_SECS", "120"))
        self.recheck_s = recheck_s
        self._down_until = 0.0
        self._healthy: bool | None = None
        self._lock = threading.Lock()
        key = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        # Shared by whoever posts to this server from this machine, whatever their user.
        self._post_lock = FileLock(str(Path(tempfile.gettempdir()) / f"gome-validate-{key}.lock"), mode=0o666)

    def _mark_down(self, why: str) -> None:
        with self._lock:
            if self._healthy is not False:
                log.warning("grading server %s unavailable (%s); using the local format check only", self.url, why)
            self._healthy = False
            self._down_until = time.monotonic() + self.recheck_s

    def available(self) -> bool:
        with self._lock:
            if self._healthy is False and time.monotonic() < self._down_until:
                return False
        try:
            response = httpx2.get(f"{self.url}/health", timeout=10.0)
        except httpx2.HTTPError as exc:
            self._mark_down(f"/health: {type(exc).__name__}")
            return False
        if response.status_code != 200:
            self._mark_down(f"/health answered {response.status_code}")
            return False
        with self._lock:
            if self._healthy is not True:
                log.info("grading server %s answers; every candidate submission is checked with it", self.url)
            self._healthy = True
        return True

    def __call__(self, submission: Path) -> str | None:
        if not self.available():
            return None
        try:
            # Waiting for the other posts is bounded like a post itself; past that, the answer is unknown.
            with self._post_lock.acquire(timeout=self.timeout_s), open(submission, "rb") as f:
                response = httpx2.post(
                    f"{self.url}/validate", files={"file": (submission.name, f, "text/csv")}, timeout=self.timeout_s
                )
        except Timeout:
            log.warning("no turn to post %s to %s within %.0f s (other traces are validating); "
                        "using the local format check only", submission, self.url, self.timeout_s)
            return None
        except httpx2.HTTPError as exc:
            self._mark_down(f"/validate: {type(exc).__name__}")
            return None
        if response.status_code != 200:
            self._mark_down(f"/validate answered {response.status_code}")
            return None
        try:
            result = str(response.json()["result"])
        except (ValueError, KeyError, TypeError):
            self._mark_down("/validate answered something that is not {'result': ...}")
            return None
        if result.startswith(VALID):
            return None
        return f"the grading server rejects it: {result.strip()[:1500]}"
