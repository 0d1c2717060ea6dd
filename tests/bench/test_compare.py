"""`gome bench run`: strategies compared on the offline benchmark, with seeds."""

from __future__ import annotations

import json

import pytest

from gome_agent.bench.compare import compare, details_table, run_detail, summarize, summarize_by_model, table
from gome_agent.bench.grading import CompetitionReport
from gome_agent.bench.prepare import load_competition, prepare
from gome_agent.bench.sweep import RunResult, normalized, score_range
from gome_agent.llm.config import LLMConfig
from tests.run.test_coordinator import Recorder


def _report(score, valid=True, above=False, medal=False):
    return {"competition_id": "c", "score": score, "valid_submission": valid, "above_median": above,
            "any_medal": medal}


def _result(strategy, seed, competition, model=None, **report):
    return RunResult(competition_id=competition, strategy=strategy, seed=seed, workdir="w", model=model,
                     report=_report(**report), normalized_score=report.get("score") or 0.0, steps=3, reason="r")


def test_normalized_score_runs_from_the_constant_guess_to_the_leaderboard_best():
    def rep(score):
        return CompetitionReport.model_construct(score=score)
    assert normalized(rep(0.5), 0.5, 1.0) == 0.0
    assert normalized(rep(0.75), 0.5, 1.0) == pytest.approx(0.5)
    assert normalized(rep(0.2), 0.4, 0.1) == pytest.approx(2 / 3)  # lower is better
    assert normalized(rep(None), 0.5, 1.0) == 0.0


def test_summary_rates_are_means_over_at_least_three_seeds_missing_runs_counted_as_failures():
    results = [
        _result("gome", 0, "a", score=1.0, medal=True, above=True), _result("gome", 0, "b", score=0.0, valid=False),
        _result("gome", 1, "a", score=0.5, above=True), _result("gome", 1, "b", score=0.5),
        _result("gome", 2, "a", score=0.5), _result("gome", 2, "b", score=0.5),
        _result("tree", 0, "a", score=0.2), _result("tree", 0, "b", score=0.2),
    ]
    summary = summarize(results)
    gome = summary["gome"]
    assert gome["runs"] == 6 and gome["seeds"] == 3 and gome["competitions"] == 2 and gome["padded"] == 0
    assert gome["valid_submission"] == {"mean": 83.333, "sem": 16.667}   # 50%, 100%, 100%
    assert gome["any_medal"] == {"mean": 16.667, "sem": 16.667}
    assert gome["above_median"]["mean"] == pytest.approx(100 / 3, abs=1e-3)
    assert gome["normalized_score"]["mean"] == pytest.approx(0.5)
    # tree ran seed 0 only: seeds 1 and 2 are padded with failed runs (MLE-bench's rule), and it says so.
    tree = summary["tree"]
    assert tree["runs"] == 2 and tree["seeds"] == 3 and tree["padded"] == 4
    assert tree["valid_submission"] == {"mean": 33.333, "sem": 33.333}   # 100%, 0%, 0%
    assert tree["normalized_score"]["mean"] == pytest.approx(0.2 / 3, abs=1e-3)
    text = table(summary)
    assert "| gome | 6 | 83.3 ± 16.7 | 33.3 ± 16.7 | 16.7 ± 16.7 | 0.500 ± 0.000 |" in text
    assert "| tree | 2 | 33.3 ± 33.3 |" in text
    assert "over 3 seeds (MLE-bench's rule: at least 3); runs missing and counted as failures: tree 4." in text


def test_fewer_than_three_seeds_are_padded_to_three_and_a_competition_a_strategy_missed_counts_as_failed():
    results = [_result("gome", 0, "a", score=1.0), _result("gome", 0, "b", score=1.0), _result("tree", 0, "a", score=1.0)]
    summary = summarize(results)
    assert summary["gome"]["seeds"] == 3 and summary["gome"]["padded"] == 4
    assert summary["gome"]["valid_submission"]["mean"] == pytest.approx(100 / 3, abs=1e-3)
    assert summary["tree"]["padded"] == 5  # b in seed 0, a and b in seeds 1 and 2
    assert summary["tree"]["valid_submission"]["mean"] == pytest.approx(50 / 3, abs=1e-3)


def test_rows_per_model_and_results_written_before_models_were_recorded():
    results = [_result(s, seed, "a", model=m, score=v) for s, m, v in
               (("gome", "big", 1.0), ("gome", "small", 0.0), ("tree", "big", 0.5)) for seed in range(3)]
    by_model = summarize_by_model(results)
    assert set(by_model) == {"big", "small"} and set(by_model["small"]) == {"gome"}
    assert by_model["big"]["gome"]["normalized_score"] == {"mean": 1.0, "sem": 0.0}
    assert by_model["small"]["gome"]["normalized_score"] == {"mean": 0.0, "sem": 0.0}
    summary = summarize(results)
    assert summary["gome"]["runs"] == 6 and summary["gome"]["normalized_score"]["mean"] == 0.5  # both models' runs
    # tree ran one model of two: only that model's cells count, none padded
    assert summary["tree"]["padded"] == 0 and summary["tree"]["normalized_score"]["mean"] == 0.5
    text = table(summary, by_model)
    assert "| gome · big | 3 | 100.0 ± 0.0 |" in text and "| gome · small | 3 |" in text
    old = summarize_by_model([_result("gome", seed, "a", score=1.0) for seed in range(3)])
    assert set(old) == {"(not recorded)"}
    details = details_table([run_detail(r) for r in results])  # no run folders: the source is unknown
    assert "| a | gome · big | 0 | yes | no | unknown |" in details and "| a | tree · big | 2 |" in details


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

    from gome_agent.bench import sweep as sweep_module
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

    monkeypatch.setattr(sweep_module, "run", run)
    out = tmp_path / "results"
    compare(data_dir=data, out=out, competitions=["breast-cancer"], strategies=["gome", "tree"], seeds=1,
            llm=LLMConfig(model="m"), time_limit_s=60)
    assert calls == ["gome", "tree"]  # the benchmark went on
    rows = {r["strategy"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert rows["gome"]["reason"] == ("stopped: the task analysis names target columns ['apex'] that are not "
                                      "columns of the sample")
    assert rows["gome"]["report"]["valid_submission"] and rows["gome"]["normalized_score"] == 0.0
