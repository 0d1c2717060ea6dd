"""A local stand-in of MLE-bench's grading server, only for what the real one cannot do in a test.

The tests of the validation path run MLE-bench's own `environment/grading_server.py`
(tests/mlebench/real.py, used by tests/task/test_grading_server.py). This stand-in
remains for two things the real server cannot provide:
- a server too slow to answer (`mode="slow"`);
- validation for a competition that MLE-bench's registry does not hold: the
  container simulation (tests/mlebench/test_container.py) runs gome's offline
  breast-cancer competition, on which the real server can only fail, so it uses
  the stand-in in every mode (`ok`, `error500`, `slow`).

GET /health -> {"status": "running"}; POST /validate with multipart field `file`
-> {"result": "Submission is valid."} or {"result": "Submission invalid! ..."},
judged against the private answers by ids, columns and rows.
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd


class GradingStandIn:
    def __init__(self, answers: Path, mode: str = "ok") -> None:
        self.answers = pd.read_csv(answers)
        self.mode = mode  # ok | error500 | slow
        self.validations: list[str] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/health":
                    self._json(200, {"status": "running"})
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path != "/validate":
                    self._json(404, {"error": "not found"})
                    return
                if standin.mode == "error500":
                    self._json(500, {"error": "An unexpected error occurred.", "details": "boom"})
                    return
                if standin.mode == "slow":
                    time.sleep(5)
                message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                    f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body
                )
                parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
                if "file" not in parts:
                    self._json(200, {"result": "Submission invalid! No file provided."})
                    return
                result = standin.judge(parts["file"].get_payload(decode=True))
                standin.validations.append(result)
                self._json(200, {"result": result})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def judge(self, data: bytes) -> str:
        try:
            sub = pd.read_csv(io.BytesIO(data))
        except Exception as exc:  # noqa: BLE001 - any parse failure is an invalid submission
            return f"Submission invalid! The attempt to grade the submission has resulted in the following error message:\n{exc}"
        answers = self.answers
        if len(sub) != len(answers):
            return "Submission invalid! Submission and answers must have the same length"
        if set(sub.columns) != set(answers.columns):
            return f"Submission invalid! Submission must have columns {list(answers.columns)}"
        if sorted(sub["id"].astype(str)) != sorted(answers["id"].astype(str)):
            return "Submission invalid! Submission and answers must have the same ids"
        return "Submission is valid."

    def __enter__(self) -> GradingStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
