"""`gome bench run`: strategies compared on the offline benchmark, with seeds."""

from __future__ import annotations

import json

import pytest

from gome_agent.bench.compare import RunResult, compare, normalized, score_range, summarize, table
from gome_agent.bench.grading import CompetitionReport
from gome_agent.bench.prepare import load_competition, prepare
from gome_agent.llm.config import LLMConfig
from tests.run.test_coordinator import Recorder


def _report(score, valid=True, above=False, medal=False):
    return {"competition_id": "c", "score": score, "valid_submission": valid, "above_median": above,
            "any_medal": medal}


def _result(strategy, seed, competition, **report):
    return RunResult(competition_id=competition, strategy=strategy, seed=seed, workdir="w",
                     report=_report(**report), normalized_score=report.get("score") or 0.0, steps=3, reason="r")


def test_normalized_score_runs_from_the_constant_guess_to_the_leaderboard_best():
    def rep(score):
        return CompetitionReport.model_construct(score=score)
    assert normalized(rep(0.5), 0.5, 1.0) == 0.0
    assert normalized(rep(0.75), 0.5, 1.0) == pytest.approx(0.5)
    assert normalized(rep(0.2), 0.4, 0.1) == pytest.approx(2 / 3)  # lower is better
    assert normalized(rep(None), 0.5, 1.0) == 0.0


def test_summary_rates_are_means_over_seeds_with_standard_errors():
    results = [
        _result("gome", 0, "a", score=1.0, medal=True, above=True), _result("gome", 0, "b", score=0.0, valid=False),
        _result("gome", 1, "a", score=0.5, above=True), _result("gome", 1, "b", score=0.5),
        _result("tree", 0, "a", score=0.2), _result("tree", 0, "b", score=0.2),
    ]
    summary = summarize(results)
    gome = summary["gome"]
    assert gome["runs"] == 4 and gome["seeds"] == 2 and gome["competitions"] == 2
    assert gome["valid_submission"] == {"mean": 75.0, "sem": 25.0}   # 50% and 100%
    assert gome["any_medal"] == {"mean": 25.0, "sem": 25.0}
    assert gome["above_median"]["mean"] == 50.0
    assert gome["normalized_score"]["mean"] == pytest.approx(0.5)
    assert summary["tree"]["valid_submission"] == {"mean": 100.0, "sem": 0.0}
    text = table(summary)
    assert "| gome | 4 | 75.0 ± 25.0 | 50.0 ± 0.0 | 25.0 ± 25.0 | 0.500 ± 0.000 |" in text


def test_compare_runs_grades_and_resumes(tmp_path, fake_llm):
    data = tmp_path / "bench"
    prepare(data, only=["breast-cancer"], leaderboard_scale=0.1)
    fake_llm.set_responder(Recorder())
    llm = LLMConfig(provider="openai-compatible", base_url=fake_llm.base_url_openai, model="m")
    base = {"traces": 1, "final_reserve_fraction": 0.0, "optimizer": {"max_steps": 2, "max_debug": 0},
            "execution": {"min_run_seconds": 1}}
    out = tmp_path / "results"
    summary = compare(data_dir=data, out=out, competitions=["breast-cancer"], strategies=["gome", "tree"], seeds=1,
                      llm=llm, time_limit_s=600, base=base)
    assert set(summary) == {"gome", "tree"}
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {(r["strategy"], r["seed"]) for r in rows} == {("gome", 0), ("tree", 0)}
    assert all(r["report"]["valid_submission"] for r in rows)  # the scripted solutions predict a constant 0.25
    baseline, best = score_range(load_competition(data, "breast-cancer"))
    assert baseline == pytest.approx(0.5) and best > 0.9
    assert all(r["normalized_score"] == pytest.approx(0.0) for r in rows)
    assert (out / "summary.md").read_text().startswith("| strategy |")
    # Per run: who wrote the submission. The scripted solutions write no held-out predictions, so every
    # step fails and the valid submission graded is gome's fallback: valid, but not model-written.
    details = {d["strategy"]: d for d in json.loads((out / "details.json").read_text())}
    for strategy in ("gome", "tree"):
        detail = details[strategy]
        assert (detail["valid"], detail["model_written"], detail["source"]) == (True, False, "fallback")
        assert (detail["first_valid_s"], detail["improvements"], detail["steps"]) == (None, 0, 2)
    assert "| gome | 1 | 0 | 0 |" in (out / "summary.md").read_text()
    requests = len(fake_llm.requests)
    compare(data_dir=data, out=out, competitions=["breast-cancer"], strategies=["gome", "tree"], seeds=1,
            llm=llm, time_limit_s=600, base=base)
    assert len(fake_llm.requests) == requests  # nothing ran again


def test_a_run_whose_task_cannot_be_read_is_a_failed_run_not_the_end_of_the_benchmark(tmp_path, monkeypatch):
    import shutil

    from gome_agent.bench import compare as compare_module
    from gome_agent.errors import TaskError
    from gome_agent.run.coordinator import RunSummary

    data = tmp_path / "bench"
    prepare(data, only=["breast-cancer"], leaderboard_scale=0.1)
    competition = load_competition(data, "breast-cancer")
    calls = []

    def run(config):
        calls.append(config.strategy)
        (config.workdir / "submission").mkdir(parents=True)
        shutil.copyfile(competition.sample_path, config.workdir / "submission" / "submission.csv")
        if config.strategy == "gome":  # like the 0.5B model naming columns the sample does not have
            raise TaskError("the task analysis names target columns ['apex'] that are not columns of the sample")
        return RunSummary(workdir=config.workdir, reason="budget spent", best_score=None, steps=0, submission=None)

    monkeypatch.setattr(compare_module, "run", run)
    out = tmp_path / "results"
    compare(data_dir=data, out=out, competitions=["breast-cancer"], strategies=["gome", "tree"], seeds=1,
            llm=LLMConfig(model="m"), time_limit_s=60)
    assert calls == ["gome", "tree"]  # the benchmark went on
    rows = {r["strategy"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert rows["gome"]["reason"] == ("stopped: the task analysis names target columns ['apex'] that are not "
                                      "columns of the sample")
    assert rows["gome"]["report"]["valid_submission"] and rows["gome"]["normalized_score"] == 0.0
