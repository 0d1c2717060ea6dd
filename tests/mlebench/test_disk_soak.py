"""Disk soak: a 12-hour-equivalent run in the MLE-bench container simulation, its clock compressed.

Not in the default run (`slow`):

    GOME_DISK_SOAK_MINUTES=6 GOME_SOAK_OUT=soak-disk.json python -m pytest -m slow tests/mlebench/test_disk_soak.py -s

start.sh runs `gome mlebench` in the simulated /home (tests/mlebench/test_container.py) with three trace
processes for GOME_DISK_SOAK_MINUTES (default 6) of wall time: the scripted model (bench/scripted.py)
behind the fake server, a grading stand-in answering /validate, and solutions that finish in a
fraction of a second but write a checkpoint and a folder of cached features (JUNK_MB together) in
every run, smoke runs and the final selection's re-runs included. Six minutes make over a thousand
steps, where a 12-hour run takes a few hundred. A watcher samples, every second, the run folder's size
on disk, the memory of gome's processes (the coordinator and its traces; and of the whole process tree,
solutions included), and whether
the graded /home/submission/submission.csv is byte for byte the submission of the step that
code/best.json names (under the lock the publication holds, so no half-made publication is seen).
The figures go to GOME_SOAK_OUT (default: the test's temporary folder) and docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from filelock import FileLock

from gome_agent.bench.competitions import build_breast_cancer
from gome_agent.bench.scripted import ScriptedPolicy
from gome_agent.llm.types import Message
from gome_agent.records.events import EventLog, FinalSelection
from gome_agent.records.housekeeping import disk_bytes
from gome_agent.task.sample import find_sample_submission, load_sample_submission
from gome_agent.task.submission import check_submission
from gome_agent.views.runview import epoch_of, step_end
from tests.fake_llm import FakeRequest
from tests.mlebench.test_container import KEY, ROOT, make_home
from tests.mlebench_standin import GradingStandIn
from tests.scripted_agent import ANALYSIS
from tests.shared import needs_shared

pytestmark = [pytest.mark.slow, needs_shared]

MB = 2**20
JUNK_MB = 8
# Fast (no pandas), honours the contract, and leaves what real solutions leave: a checkpoint and cached features.
SOLUTION = '''import csv
import json
import os

SCORE = {score:.6f}
with open("input/test.csv", newline="") as f:
    ids = [row["id"] for row in csv.DictReader(f)]
with open("submission.csv", "w", newline="") as f:
    f.write("id,target\\n" + "".join(f"{{i}},{{0.25 + SCORE / 10:.6f}}\\n" for i in ids))
os.makedirs("cache/features", exist_ok=True)
open("cache/features/part0.npy", "wb").write(b"f" * {features})
open("model.ckpt", "wb").write(b"c" * {checkpoint})
json.dump({{"score": SCORE}}, open("scores.json", "w"))
print("validation score", SCORE)
'''


@pytest.fixture(scope="module")
def competition(tmp_path_factory):
    return build_breast_cancer(tmp_path_factory.mktemp("comp"))


def solution(score: float) -> str:
    half = JUNK_MB * MB // 2
    return SOLUTION.format(score=score, features=half, checkpoint=half)


class Model:
    """The scripted policy behind the fake server (its replies are drawn under a lock: requests come in threads)."""

    def __init__(self) -> None:
        self.policy = ScriptedPolicy(ANALYSIS, seed=3, accept_rate=0.5, code=solution)
        self.lock = threading.Lock()

    def __call__(self, request: FakeRequest) -> str:
        with self.lock:
            return self.policy([Message(role="user", content=request.text)], request.model)


def _sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class Watcher(threading.Thread):
    """Samples the run folder's size, gome's memory and the published best, every `every_s`."""

    def __init__(self, pid: int, home: Path, every_s: float = 1.0) -> None:
        super().__init__(daemon=True, name="disk-soak-watcher")
        self.pid, self.home, self.every_s = pid, home, every_s
        self.run_dir = home / "agent" / "run"
        self.stop = threading.Event()
        self.samples: list[dict[str, float]] = []
        self.best_checks = 0
        self.mismatches: list[str] = []

    def memory(self) -> dict[str, float]:
        """Memory of the agent (gome's coordinator and trace processes: resident in all, proportional in all,
        resident in the largest) and resident in the whole tree under start.sh (solutions and sandboxes too)."""
        try:
            tree = [psutil.Process(self.pid), *psutil.Process(self.pid).children(recursive=True)]
        except psutil.Error:
            return {}
        rss, pss, whole = [], [], 0.0
        for proc in tree:
            try:
                command = " ".join(proc.cmdline())
                whole += proc.memory_info().rss / MB
                if "gome_agent mlebench" in command or "gome_agent.run.worker" in command:
                    info = proc.memory_full_info()
                    rss.append(info.rss / MB)
                    pss.append(info.pss / MB)
            except psutil.Error:
                continue
        return {"agent_rss_mb": sum(rss), "agent_pss_mb": sum(pss), "largest_rss_mb": max(rss, default=0.0),
                "tree_rss_mb": whole}

    def check_best(self) -> None:
        lock = self.run_dir / ".best.lock"
        if not (self.run_dir / "code" / "best.json").is_file():
            return
        with FileLock(str(lock)):
            best = json.loads((self.run_dir / "code" / "best.json").read_text())
            graded = _sha(self.home / "submission" / "submission.csv")
            own = _sha(self.run_dir / best["code_dir"] / "submission.csv") if best["code_dir"] else None
        self.best_checks += 1
        if best["source"] != "fallback" and not (graded == own == best["sha256"]):
            self.mismatches.append(f"{best['code_dir']}: graded {graded}, attempt {own}, recorded {best['sha256']}")

    def sample(self) -> None:
        events = self.run_dir / "events.jsonl"
        steps = events.read_bytes().count(b'"type":"step"') if events.is_file() else 0
        self.samples.append({
            "t": time.monotonic(), "steps": steps, "run_bytes": disk_bytes(self.run_dir),
            "traces_bytes": disk_bytes(self.run_dir / "traces"), **self.memory(),
        })
        self.check_best()

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            self.sample()


def test_disk_soak(tmp_path, competition, fake_llm):
    minutes = float(os.environ.get("GOME_DISK_SOAK_MINUTES", "6"))
    out_path = Path(os.environ.get("GOME_SOAK_OUT", str(tmp_path / "soak-disk.json")))
    fake_llm.set_responder(Model())
    home = make_home(tmp_path, competition)
    settings = {
        "final_reserve_fraction": 0.08, "final_seeds": [1, 2],
        "optimizer": {"max_debug": 1, "diversify_wait_s": 2},
        "execution": {"max_run_minutes": 0.5, "min_run_seconds": 2, "smoke": {"time_limit_s": 20}},
        "validation": {"scoring": "self-reported"},  # the scripted scores drive the run
        "llm": {"backoff_base_s": 0.01, "backoff_max_s": 0.05, "max_attempts": 3},
    }
    (tmp_path / "gome.json").write_text(json.dumps(settings))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update({"GOME_MLEBENCH_HOME": str(home), "COMPETITION_ID": "breast-cancer",
                "TIME_LIMIT_SECS": str(int(minutes * 60)), "GOME_TIME_MARGIN_SECS": "10", "GOME_PYTHON": sys.executable,
                "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": KEY})
    with GradingStandIn(competition.parent / "private" / "answers.csv") as server:
        env["GOME_GRADING_SERVER"] = server.url
        started = time.monotonic()
        proc = subprocess.Popen(
            ["bash", str(ROOT / "start.sh"), "--provider", "openai", "--base-url", fake_llm.base_url_openai,
             "--model", "fake", "--traces", "3", "--config", str(tmp_path / "gome.json")],
            env=env, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        watcher = Watcher(proc.pid, home)
        watcher.start()
        output, _ = proc.communicate(timeout=minutes * 60 + 180)
        took = time.monotonic() - started
        watcher.stop.set()
        watcher.join(30)
    run_dir = home / "agent" / "run"
    watcher.sample()  # the end: after finalize
    assert proc.returncode == 0, output[-3000:]

    events = EventLog(run_dir / "events.jsonl")
    steps = events.steps()
    runs = sum(s.runs + s.smoke_runs for s in steps)
    [selection] = [e for e in events.read() if isinstance(e, FinalSelection)]
    reruns = sum(len(c.rerun_outcomes) for c in selection.candidates)
    samples = watcher.samples
    quarter = next(s for s in samples if s["steps"] >= len(steps) / 4)
    peak = max(samples, key=lambda s: s["run_bytes"])
    end = samples[-1]
    records = sum(disk_bytes(run_dir / name) for name in ("events.jsonl", "llm_calls.jsonl", "memory", "logs"))
    kept_submissions = sum(1 for _ in (run_dir / "traces").rglob("submission.csv"))
    attempts = [p for p in (run_dir / "traces").glob("t*/s*/a*") if p.is_dir()]
    optimize_s = max(step_end(s) or 0.0 for s in steps) - min(epoch_of(s.started_at) or math.inf for s in steps)
    summary = {
        "minutes": minutes, "wall_s": round(took, 1), "steps": len(steps),
        "accepted": sum(s.accepted for s in steps), "solution_runs": runs + reruns,
        "steps_per_hour": round(len(steps) / (optimize_s / 3600)),
        "written_by_solutions_mb": (runs + reruns) * JUNK_MB,
        "run_folder_peak_mb": round(peak["run_bytes"] / MB, 1),
        "run_folder_peak_at_step": peak["steps"],
        "run_folder_end_mb": round(end["run_bytes"] / MB, 1),
        "traces_end_mb": round(end["traces_bytes"] / MB, 2),
        "attempt_folders": len(attempts), "kept_submissions": kept_submissions,
        "traces_kb_per_attempt_folder": round(end["traces_bytes"] / 1024 / max(1, len(attempts)), 1),
        "records_mb": round(records / MB, 2), "records_kb_per_step": round(records / 1024 / max(1, len(steps)), 1),
        **{f"{key[:-3]}_peak_mb": round(max(s.get(key, 0.0) for s in samples), 1)
           for key in ("agent_rss_mb", "agent_pss_mb", "largest_rss_mb", "tree_rss_mb")},
        "agent_rss_at_quarter_mb": round(quarter.get("agent_rss_mb", 0.0), 1),
        "best_checks": watcher.best_checks, "best_mismatches": len(watcher.mismatches),
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))

    assert len(steps) >= 40 * minutes, "too few steps for a soak"
    assert not watcher.mismatches, watcher.mismatches[:5]
    # The graded file is the best step's submission, byte for byte, and a valid one.
    best = json.loads((run_dir / "code" / "best.json").read_text())
    record = next(s for s in steps if (s.trace, s.step) == (best["trace"], best["step"]))
    graded = (home / "submission" / "submission.csv").read_bytes()
    assert graded == (run_dir / record.code_dir / "submission.csv").read_bytes()
    assert check_submission(home / "submission" / "submission.csv",
                            load_sample_submission(find_sample_submission(competition))) == []
    # Bounded: no attempt folder keeps a solution's leftovers, at most the candidates and each trace's best keep
    # their submissions, and the peak is what runs at once (3 traces, a step's attempts with their smoke runs,
    # or the final re-runs) on top of the records, never the sum of what was written.
    assert not [p for p in (run_dir / "traces").rglob("*") if p.name in ("model.ckpt", "cache")]
    assert kept_submissions <= 3 * (4 + 2)  # per trace: the candidates, its best and the best in place
    in_flight = 3 * 4 * JUNK_MB * MB
    assert peak["run_bytes"] <= records + end["traces_bytes"] + in_flight + 20 * MB
    assert summary["largest_rss_peak_mb"] < 500 and summary["agent_pss_peak_mb"] < 1200
