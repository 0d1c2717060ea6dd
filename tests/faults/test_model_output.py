"""Hostile model output: the generated main.py attacks files, secrets, the network and the answers.

Each attack runs as a real step of a real run, after a valid draft: it must fail against the
sandbox, the step must not become the best, and the run's invariants must hold.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from gome_agent.bench import compare as compare_module
from gome_agent.bench import demo as demo_module
from gome_agent.bench import sweep as sweep_module
from gome_agent.bench.competitions import build_competition, get_spec
from gome_agent.errors import ExecutorError
from gome_agent.execution.executor import Executor, namespaces_available
from gome_agent.llm.config import LLMConfig
from gome_agent.run.coordinator import RunSummary
from tests.fake_llm import FakeRequest
from tests.faults.conftest import Model, World, attempt, check_run, fault_config, full, run_in_process, solution

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(not namespaces_available(), reason="the sandbox's fence needs user namespaces"),
]

DRAFT_SCORE = 0.70
READ_ONLY = "Read-only file system"
# For attacks whose traces are counted or read in the full run's folder: no smoke run before it.
NO_SMOKE = {"smoke": {"enabled": False}}

# Records what each attempt did in attack.json; `targets` and friends are filled in per test.
PROBE = '''
def attempt(name, action):
    try:
        result = action()
        outcome[name] = "done" if result is None else result
    except OSError as exc:
        outcome[name] = exc.strerror or type(exc).__name__
outcome = {{}}
{body}
json.dump(outcome, open("attack.json", "w"))
'''


def _attack(body: str, score: float = 0.5) -> str:
    """A solution that runs `body` (with `attempt(name, action)`), then submits validly with `score`."""
    return solution(score, attack=PROBE.format(body=body))


def _run_attack(world: World, fake_llm, code: str, **overrides) -> dict:
    fake_llm.set_responder(Model().inject("update", full(code, "attack")))
    run_in_process(fault_config(world, fake_llm, optimizer={"max_steps": 2}, **overrides))
    return json.loads((attempt(world, 0, 2) / "attack.json").read_text())


def test_files_outside_the_step_folder_cannot_be_deleted_or_overwritten(world, fake_llm):
    home = Path(pwd.getpwuid(os.getuid()).pw_dir) / f".gome-fault-probe-{world.base.name}"
    run = world.workdir
    targets = {
        "data via input": "input/train.csv",
        "data": str(world.data / "test.csv"),
        "answers": str(world.private / "answers.csv"),
        "events": str(run / "events.jsonl"),
        "memory": str(run / "memory" / "successes.jsonl"),
        "best submission": str(run / "submission" / "submission.csv"),
        "best code": str(run / "code" / "main.py"),
        "draft step": str(attempt(world, 0, 1) / "submission.csv"),
        "sentinel": str(world.sentinel / "keep.txt"),
        "agent home": str(world.home / ".profile"),
    }
    body = f'''
for name, path in {targets!r}.items():
    attempt("overwrite " + name, lambda: open(path, "w").write("pwned") and None)
    attempt("delete " + name, lambda: os.remove(path))
attempt("new file next to the run", lambda: open({str(world.sentinel / "new.txt")!r}, "w").close())
attempt("new file in the real home", lambda: open({str(home)!r}, "w").close())
attempt("rename the run folder", lambda: os.rename({str(run)!r}, {str(run) + "-moved"!r}))
'''
    try:
        outcome = _run_attack(world, fake_llm, _attack(body))
    finally:
        leaked = home.exists()
        home.unlink(missing_ok=True)
    assert not leaked
    assert outcome == {key: READ_ONLY for key in outcome}, outcome
    assert len(outcome) == 2 * len(targets) + 3
    verdict = check_run(world, reason="step limit reached", best_at_least=DRAFT_SCORE)
    assert [s.status for s in verdict.steps] == ["accepted", "rejected"]


def test_secrets_cannot_be_found_in_the_environment_or_proc(world, fake_llm):
    body = '''
values = set()
for key, value in os.environ.items():
    if any(word in key.upper() for word in ("KEY", "TOKEN", "SECRET", "PASSWORD", "OPENAI", "ANTHROPIC")):
        values.add(key)
for entry in os.listdir("/proc"):
    if entry.isdigit() or entry == "self":
        for name in ("environ", "cmdline"):
            try:
                text = open(f"/proc/{entry}/{name}", "rb").read().decode(errors="replace")
            except OSError:
                continue
            values.update(w for w in text.replace("\\0", " ").split() if w.startswith(("sk-", "hf_", "pw-")))
attempt("pids seen", lambda: sorted(int(e) for e in os.listdir("/proc") if e.isdigit()))
attempt("found", lambda: sorted(values))
attempt("parent environ", lambda: open(f"/proc/{os.getppid()}/environ", "rb").read().decode(errors="replace"))
print("found:", sorted(values))
'''
    outcome = _run_attack(world, fake_llm, _attack(body))
    assert outcome["found"] == []
    assert outcome["pids seen"] == [1]  # the solution sees only itself
    check_run(world, reason="step limit reached", best_at_least=DRAFT_SCORE)


def _probe_server(fake_llm) -> str:
    return f'''
import urllib.request
request = urllib.request.Request({fake_llm.base_url_openai + "/chat/completions"!r}, method="POST",
    data=json.dumps({{"model": "stolen", "messages": [{{"role": "user", "content": "gome-fault-probe"}}]}}).encode(),
    headers={{"content-type": "application/json",
             "authorization": "Bearer " + os.environ.get("OPENAI_API_KEY", "none")}})
def call():
    try:
        return urllib.request.urlopen(request, timeout=10).status
    except urllib.error.HTTPError as exc:
        return exc.code
    except urllib.error.URLError as exc:
        return type(exc.reason).__name__
attempt("call the LLM server", call)
'''


def _probes(fake_llm) -> list[FakeRequest]:
    return [r for r in fake_llm.requests if "gome-fault-probe" in json.dumps(r.body)]


def test_a_solution_reaching_the_llm_server_carries_no_key(world, fake_llm):
    outcome = _run_attack(world, fake_llm, _attack(_probe_server(fake_llm)), execution=NO_SMOKE)
    assert outcome["call the LLM server"] == 500  # the fake's answer to a request it has no reply for
    [probe] = _probes(fake_llm)
    sent = json.dumps(probe.headers) + json.dumps(probe.body)
    assert probe.headers["authorization"] == "Bearer none"
    assert not [v for v in world.secrets.values() if v in sent]
    # The agent's own requests did carry the key: the check above could fail.
    assert any(world.secrets["OPENAI_API_KEY"] in r.headers.get("authorization", "") for r in fake_llm.requests)
    check_run(world, reason="step limit reached", best_at_least=DRAFT_SCORE)


def test_no_network_means_no_connection_at_all(world, fake_llm):
    outcome = _run_attack(world, fake_llm, _attack(_probe_server(fake_llm)), execution={"network": False})
    assert outcome["call the LLM server"] == "ConnectionRefusedError"
    assert _probes(fake_llm) == []
    check_run(world, reason="step limit reached", best_at_least=DRAFT_SCORE)


def _read_answers(world: World) -> str:
    return f'''
attempt("answers via input", lambda: len(open("input/../private/answers.csv").read()))
attempt("answers", lambda: len(open({str(world.private / "answers.csv")!r}).read()))
attempt("private listing", lambda: os.listdir({str(world.private)!r}))
attempt("leaderboard", lambda: len(open({str(world.leaderboard)!r}).read()))
attempt("write the leaderboard", lambda: open({str(world.leaderboard)!r}, "w").close())
'''


def test_private_answers_and_leaderboard_are_hidden_from_solutions(world, fake_llm):
    hidden = [str(world.private), str(world.leaderboard)]
    outcome = _run_attack(world, fake_llm, _attack(_read_answers(world)), execution={"hidden_paths": hidden})
    assert outcome == {
        "answers via input": "No such file or directory", "answers": "No such file or directory",
        "private listing": [], "leaderboard": 0, "write the leaderboard": READ_ONLY,
    }
    check_run(world, reason="step limit reached", best_at_least=DRAFT_SCORE)


def test_without_hidden_paths_the_answers_would_be_readable(world, fake_llm):
    # The reason for execution.hidden_paths: the sandbox shows the whole filesystem, read-only.
    outcome = _run_attack(world, fake_llm, _attack(_read_answers(world)))
    assert outcome["answers"] == len((world.private / "answers.csv").read_text())
    assert outcome["write the leaderboard"] == READ_ONLY
    check_run(world, reason="step limit reached", best_at_least=DRAFT_SCORE)


def test_bench_run_and_demo_hide_the_answers_and_the_leaderboard(tmp_path, monkeypatch):
    competition = build_competition(get_spec("breast-cancer"), tmp_path / "bench" / "breast-cancer")
    competition.leaderboard_path.write_text("teamName,score\nalpha,0.99\nbeta,0.9\n")
    expected = [competition.private_dir, competition.leaderboard_path, competition.leaderboard_meta_path]
    seen = []

    def fake_run(config):
        seen.append(config)
        (config.workdir / "submission").mkdir(parents=True)
        shutil.copyfile(competition.sample_path, config.workdir / "submission" / "submission.csv")
        return RunSummary(workdir=config.workdir, reason="r", best_score=None, steps=0, submission=None)

    monkeypatch.setattr(sweep_module, "run", fake_run)  # the sweep runs each benchmark run
    compare_module.compare(data_dir=tmp_path / "bench", out=tmp_path / "out", competitions=["breast-cancer"],
                           strategies=["gome"], seeds=1, llm=LLMConfig(model="m"), time_limit_s=60,
                           base={"execution": {"hidden_paths": ["/elsewhere"], "min_run_seconds": 1}})
    assert seen[0].execution.hidden_paths == [Path("/elsewhere"), *expected]
    assert seen[0].execution.min_run_seconds == 1
    # A folder that holds no gome run cannot say who wrote its submission.
    (detail,) = json.loads((tmp_path / "out" / "details.json").read_text())
    assert (detail["valid"], detail["model_written"], detail["source"]) == (True, False, "unknown")

    server = SimpleNamespace(base_url_openai="http://127.0.0.1:1/v1", model="m")
    monkeypatch.setattr(demo_module, "prepare", lambda data, only: None)
    monkeypatch.setattr(demo_module, "load_competition", lambda data, cid: competition)
    monkeypatch.setattr(demo_module, "prepare_local_llm", lambda model: (None, None))
    monkeypatch.setattr(demo_module, "start_server", lambda *a, **k: contextlib.nullcontext(server))
    monkeypatch.setattr(demo_module, "run", fake_run)
    monkeypatch.setattr(demo_module, "write_report", lambda workdir: None)
    demo_module.demo(tmp_path / "demo")
    assert seen[1].execution.hidden_paths == expected


def test_a_link_to_the_answers_is_not_followed_by_the_agent(world, fake_llm):
    # The sandbox cannot read the answers, but the agent can: a link must not make it submit them.
    body = f'''
os.symlink({str(world.private / "answers.csv")!r}, "submission.csv")
json.dump({{"score": 0.999}}, open("scores.json", "w"))
os.remove("main.py")
os.symlink("/proc/self/environ", "main.py")
os.remove("stderr.txt")
os.symlink("/proc/self/environ", "stderr.txt")
os.remove("stdout.txt")
os.mkfifo("stdout.txt")
raise SystemExit(0)
'''
    code = solution(0.999, attack=body)
    fake_llm.set_responder(Model().inject("update", full(code, "links")))
    run_in_process(fault_config(world, fake_llm, optimizer={"max_steps": 2},
                                execution={"hidden_paths": [str(world.private)], **NO_SMOKE}))
    verdict = check_run(world, reason="step limit reached", best_at_least=DRAFT_SCORE)
    second = verdict.steps[1]
    assert second.status == "failed" and "no submission" in second.lesson
    folder = attempt(world, 0, 2)
    assert not (folder / "submission.csv").exists() and not (folder / "stdout.txt").exists()
    assert (folder / "main.py").read_text() == code  # the proposed code, not the process's environment
    assert (folder / "input").is_symlink()  # the agent's own link to the data stays


def test_a_submission_written_elsewhere_is_no_submission(world, fake_llm):
    body = f'''
rows = "id,target\\n" + "".join(f"{{i}},0.9\\n" for i in ids)
attempt("best submission", lambda: open({str(world.workdir / "submission" / "submission.csv")!r}, "w").write(rows) and None)
attempt("data folder", lambda: open("input/submission.csv", "w").write(rows) and None)
attempt("private tmp", lambda: open("/tmp/submission.csv", "w").write(rows) and None)
os.makedirs("output", exist_ok=True)
attempt("subfolder", lambda: open("output/submission.csv", "w").write(rows) and None)
json.dump(outcome, open("attack.json", "w"))
json.dump({{"score": 0.999}}, open("scores.json", "w"))
raise SystemExit(0)
'''
    outcome = _run_attack(world, fake_llm, solution(0.999, attack=PROBE.format(body=body)), execution=NO_SMOKE)
    assert outcome == {"best submission": READ_ONLY, "data folder": READ_ONLY, "private tmp": "done",
                       "subfolder": "done"}
    verdict = check_run(world, reason="step limit reached", best_at_least=DRAFT_SCORE)
    assert verdict.steps[1].status == "failed"
    assert "no submission" in verdict.steps[1].lesson


def test_the_sample_submission_passed_off_as_predictions_is_rejected(world, fake_llm):
    body = '''
import shutil
shutil.copyfile("input/sample_submission.csv", "submission.csv")
json.dump({"score": 0.999}, open("scores.json", "w"))
raise SystemExit(0)
'''
    fake_llm.set_responder(Model().inject("update", full(solution(0.999, attack=body), "copy the sample")))
    run_in_process(fault_config(world, fake_llm, optimizer={"max_steps": 2}))
    verdict = check_run(world, reason="step limit reached", best_at_least=DRAFT_SCORE)
    assert verdict.steps[1].status == "failed"
    assert "is the sample submission itself" in verdict.steps[1].lesson


def test_a_hidden_path_that_holds_the_data_is_refused(world):
    with pytest.raises(ExecutorError, match="contains .*public, which solutions need"):
        Executor(data_dir=world.data, cache_dir=world.base / "cache", hidden=[world.comp])
