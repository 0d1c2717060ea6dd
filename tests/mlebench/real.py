"""MLE-bench's real code for the tests: the installed `mlebench` package and the source snapshot.

`bash scripts/install_mlebench.sh` installs the package; `agents/registry.py` and
`environment/grading_server.py` are not part of it, so they are read from the
source: $GOME_MLEBENCH_SRC, else `mle-bench/` in the shared reference folder
(../shared). A test that needs either skips with the reason when it is absent,
except where GOME_REQUIRE_MLEBENCH=1 (CI sets it): there it fails, so CI always
runs the tests against MLE-bench's own code.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import NoReturn

import httpx2
import pandas as pd
import pytest

from tests.shared import shared

INSTALL = "pip install -e '.[mlebench]' && bash scripts/install_mlebench.sh"
# A small MLE-bench competition whose grader only needs pandas and scikit-learn: log loss over three authors.
SPOOKY = "spooky-author-identification"
SPOOKY_CLASSES = ["EAP", "HPL", "MWS"]


def _missing(reason: str) -> NoReturn:
    if os.environ.get("GOME_REQUIRE_MLEBENCH") == "1":
        pytest.fail(f"{reason} (GOME_REQUIRE_MLEBENCH=1: these tests must run here)")
    pytest.skip(reason)


def require_mlebench() -> Path:
    """The installed package's folder (`mlebench/`), or skip (fail under CI) when it is not installed."""
    spec = importlib.util.find_spec("mlebench")
    if spec is None or spec.origin is None:
        _missing(f"the mlebench package is not installed ({INSTALL})")
    return Path(str(spec.origin)).parent


def require_source() -> Path:
    """The MLE-bench source snapshot (with agents/ and environment/), or skip (fail under CI)."""
    require_mlebench()
    candidates = [os.environ.get("GOME_MLEBENCH_SRC"), str(shared("mle-bench"))]
    for candidate in candidates:
        if candidate and (Path(candidate) / "agents" / "registry.py").is_file():
            return Path(candidate)
    _missing("MLE-bench's source is not here (set GOME_MLEBENCH_SRC to a clone, or put the shared "
             "reference folder at ../shared)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spooky_answers(ids: list[str]) -> pd.DataFrame:
    """One-hot answers in the competition's private format (id, EAP, HPL, MWS), cycling through the authors."""
    frame = pd.DataFrame({"id": ids})
    for i, author in enumerate(SPOOKY_CLASSES):
        frame[author] = [int(k % 3 == i) for k in range(len(ids))]
    return frame


def prepare_private(data_dir: Path, competition_id: str, answers: pd.DataFrame) -> Path:
    """The private answers where MLE-bench's registry looks for them (what `mlebench prepare` would write)."""
    from mlebench.registry import registry

    path = Path(registry.set_data_dir(data_dir).get_competition(competition_id).answers)
    path.parent.mkdir(parents=True, exist_ok=True)
    answers.to_csv(path, index=False)
    return path


def package_with_leaderboard(tmp: Path, competition_id: str, scores: list[float]) -> Path:
    """A copy of the installed mlebench whose leaderboard for `competition_id` is a real file.

    The snapshot's leaderboards are Git LFS pointers; put the returned folder first on PYTHONPATH.
    """
    root = tmp / "site"
    shutil.copytree(require_mlebench(), root / "mlebench", ignore=shutil.ignore_patterns("__pycache__"))
    pd.DataFrame({
        "scoreNullable": scores, "teamId": range(1, len(scores) + 1), "hasTeamName": True,
        "submissionDate": "2024-01-01 00:00:00", "score": scores, "hasScore": True,
    }).to_csv(root / "mlebench" / "competitions" / competition_id / "leaderboard.csv", index=False)
    return root


# Runs environment/grading_server.py as the container's entrypoint does, with the container's
# /private/data replaced by a folder. MLE-bench saves every upload to one fixed path
# (/tmp/submission_to_validate.csv), so uploads are serialized across processes: parallel test
# workers, each with its own server, would otherwise grade each other's files.
_LAUNCH = """
import importlib.util, sys
from filelock import FileLock
path, data_dir, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
spec = importlib.util.spec_from_file_location("grading_server", path)
server = importlib.util.module_from_spec(spec)
spec.loader.exec_module(server)
server.PRIVATE_DATA_DIR = data_dir
validate = server.app.view_functions["validate"]
lock = FileLock("/tmp/submission_to_validate.csv.lock")
def locked():
    with lock:
        return validate()
server.app.view_functions["validate"] = locked
server.app.run(host="127.0.0.1", port=port)
"""


class RealGradingServer:
    """MLE-bench's `environment/grading_server.py` (Flask) in its own process, for one competition."""

    def __init__(self, data_dir: Path, competition_id: str, workdir: Path, port: int | None = None) -> None:
        self.script = require_source() / "environment" / "grading_server.py"
        self.data_dir = data_dir
        self.competition_id = competition_id
        self.workdir = workdir  # mlebench.data makes a cache folder in the working directory
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"grading_server_{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RealGradingServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "COMPETITION_ID": self.competition_id}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _LAUNCH, str(self.script), str(self.data_dir), str(self.port)],
                cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"MLE-bench's grading server exited: {self.log.read_text(errors='replace')}")
            try:
                if httpx2.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    return self
            except httpx2.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"MLE-bench's grading server did not answer /health in 60 s: {self.log.read_text()}")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
