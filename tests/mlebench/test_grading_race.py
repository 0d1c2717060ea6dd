"""Traces validating at once: MLE-bench's grading server saves every upload to one fixed path and
serves requests in threads, so two overlapping posts can each be judged on the other's file.

Each client is a process of its own (as gome's traces are) posting its own file through
`GradingServer`; every answer must be the one its own file deserves. The server is MLE-bench's real
`environment/grading_server.py` where Flask is installed (with its grader stubbed: the answers are
not here), and a handler with the same save-then-validate behaviour in any case.
"""

from __future__ import annotations

import email.parser
import email.policy
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.shared import needs_shared, shared

ROOT = Path(__file__).resolve().parents[2]
GRADING_TIME_S = 0.2  # between saving the upload and reading it back: the grader loading the answers
POSTS = 5
VALID = "id,target\n1,0.5\n"
INVALID = "id,WRONG\n1,0.5\n"

# One client process: posts its file POSTS times through gome's validator and prints the answers.
CLIENT = """
import json, sys
from pathlib import Path
from gome_agent.task.grading_server import GradingServer
server = GradingServer(sys.argv[1])
print(json.dumps([server(Path(sys.argv[2])) for _ in range(int(sys.argv[3]))]))
"""


def judge(text: str) -> str:
    return "Submission is valid." if text.startswith("id,target") else "Submission invalid! wrong columns"


class FixedPathServer:
    """The grading server's handling of /validate: save the upload to one fixed path, then validate that path."""

    def __init__(self, fixed: Path) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _json(self, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._json({"status": "running"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                    f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body)
                upload = next(p for p in message.iter_parts()
                              if p.get_param("name", header="content-disposition") == "file")
                fixed.write_bytes(upload.get_payload(decode=True))
                time.sleep(GRADING_TIME_S)
                self._json({"result": judge(fixed.read_text())})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FixedPathServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def post_at_once(url: str, tmp_path: Path) -> list[tuple[str, str | None]]:
    """A valid and an invalid file, each posted POSTS times from its own process, all at once:
    (the file's content, the validator's answer) for every post."""
    files = {"valid": VALID, "invalid": INVALID}
    clients = {}
    for name, text in files.items():
        path = tmp_path / f"{name}.csv"
        path.write_text(text)
        clients[name] = subprocess.Popen(
            [sys.executable, "-c", CLIENT, url, str(path), str(POSTS)], stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
    answers = []
    for name, proc in clients.items():
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        answers += [(files[name], answer) for answer in json.loads(out)]
    return answers


def assert_each_judged_on_its_own_file(answers: list[tuple[str, str | None]]) -> None:
    assert len(answers) == 2 * POSTS
    for text, answer in answers:
        expected = judge(text)
        assert (answer is None) == expected.startswith("Submission is valid"), (text, answer)
        if answer is not None:
            assert expected in answer


def test_concurrent_validations_from_several_processes_get_their_own_answers(tmp_path):
    with FixedPathServer(tmp_path / "submission_to_validate.csv") as server:
        answers = post_at_once(server.url, tmp_path)
    assert_each_judged_on_its_own_file(answers)


@pytest.fixture
def real_grading_server(tmp_path: Path) -> Iterator[str]:
    """MLE-bench's grading_server.py as a process on a free loopback port; its fixed upload path is
    moved into tmp_path (so that parallel test runs do not share /tmp's), its grader stubbed."""
    if importlib.util.find_spec("flask") is None:
        reason = "Flask is not installed (pip install -e '.[mlebench]')"
        if os.environ.get("GOME_REQUIRE_MLEBENCH") == "1":  # CI: tests against MLE-bench's own code must run
            pytest.fail(reason)
        pytest.skip(reason)
    server_file = shared("mle-bench", "environment", "grading_server.py")
    moved = f"Path({str(tmp_path / 'submission_to_validate.csv')!r})"
    stubs = tmp_path / "stubs" / "mlebench"
    stubs.mkdir(parents=True)
    (stubs / "__init__.py").write_text("")
    (stubs / "grade.py").write_text(
        "import time\n"
        "def validate_submission(submission, competition):\n"
        f"    time.sleep({GRADING_TIME_S})\n"
        "    text = submission.read_text()\n"
        "    valid = text.startswith('id,target')\n"
        "    return valid, 'Submission is valid.' if valid else 'Submission invalid! wrong columns'\n")
    (stubs / "registry.py").write_text(
        "class _Registry:\n"
        "    def set_data_dir(self, path):\n        return self\n"
        "    def get_competition(self, competition_id):\n        return competition_id\n"
        "registry = _Registry()\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    launcher = (
        "import sys\n"
        f"source = open({str(server_file)!r}).read()\n"
        "fixed = 'Path(\"/tmp/submission_to_validate.csv\")'\n"
        "assert source.count(fixed) == 1, 'grading_server.py no longer saves uploads to that fixed path'\n"
        f"source = source.replace(fixed, {moved!r})\n"
        "namespace = {'__name__': 'grading_server'}\n"
        f"exec(compile(source, {str(server_file)!r}, 'exec'), namespace)\n"
        f"namespace['app'].run(host='127.0.0.1', port={port})\n")
    proc = subprocess.Popen([sys.executable, "-c", launcher], env={**os.environ, "PYTHONPATH": str(tmp_path / "stubs")},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else "the server exited"
            try:
                if httpx2.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            assert time.monotonic() < deadline, "the grading server did not answer /health within 30 s"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@needs_shared
def test_concurrent_validations_against_mlebench_real_grading_server(tmp_path, real_grading_server):
    assert_each_judged_on_its_own_file(post_at_once(real_grading_server, tmp_path))
