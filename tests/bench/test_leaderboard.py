"""Leaderboards from reference solutions: variety, order, size, provenance and reproducibility."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from gome_agent.bench.competitions import COMPETITIONS, Competition, build_competition, get_spec
from gome_agent.bench.grading import grade_csv, medal_thresholds, read_answers
from gome_agent.bench.leaderboard import (
    LEADERBOARD_COLUMNS,
    LeaderboardMeta,
    ReferenceSolution,
    build_leaderboard,
    read_public,
    reference_solutions,
    run_solution,
)
from gome_agent.bench.prepare import prepare

BUILT = {"penguin-body-mass": 30, "hpc-job-class": 10}  # a tenth of their registry sizes


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two competitions with small leaderboards, built in this process (no worker pool to start)."""
    out = tmp_path_factory.mktemp("bench")
    for cid, size in BUILT.items():
        build_leaderboard(build_competition(get_spec(cid), out / cid), size, n_jobs=1)
    return out


@pytest.mark.parametrize("cid", list(COMPETITIONS))
def test_reference_solutions_are_varied_and_deterministic(cid: str):
    spec = get_spec(cid)
    solutions = reference_solutions(spec, spec.leaderboard_size)
    assert solutions == reference_solutions(spec, spec.leaderboard_size)
    assert len(solutions) == spec.leaderboard_size
    assert len({s.family for s in solutions}) >= 6
    assert len({s.train_fraction for s in solutions}) >= 3
    assert all(0 < s.train_fraction <= 1 for s in solutions)
    assert any(s.family in ("prior", "mean", "median") for s in solutions)
    # The first teams of a longer board are the teams of a shorter one.
    assert reference_solutions(spec, 10) == solutions[:10]


def test_boosting_rounds_shrink_with_many_classes():
    spec = get_spec("leaf-species")
    boosted = [s for s in reference_solutions(spec, 200, n_classes=32) if s.family == "hist_gbm"]
    assert {s.params["max_iter"] for s in boosted} == {40 * 10 // 32, 100 * 10 // 32}
    few = [s for s in reference_solutions(spec, 200, n_classes=4) if s.family == "hist_gbm"]
    assert {s.params["max_iter"] for s in few} == {40, 100}


@pytest.mark.parametrize("cid", list(BUILT))
def test_leaderboards_are_sorted_and_sized_as_recorded(bench: Path, cid: str):
    competition = Competition(get_spec(cid), bench / cid)
    board = pd.read_csv(competition.leaderboard_path)
    meta = LeaderboardMeta.model_validate_json(competition.leaderboard_meta_path.read_text())
    assert list(board.columns) == LEADERBOARD_COLUMNS
    assert len(board) == meta.n_teams == len(meta.rows) == BUILT[cid]
    assert board["score"].tolist() == board["scoreNullable"].tolist() == [r.score for r in meta.rows]
    assert board["teamId"].tolist() == [r.team_id for r in meta.rows] and board["teamId"].is_unique
    assert [r.rank for r in meta.rows] == list(range(1, len(board) + 1))
    assert board["hasScore"].all() and board["hasTeamName"].all()
    assert board["submissionDate"].is_monotonic_increasing
    lower = competition.spec.is_lower_better
    scores = board["score"]
    assert scores.is_monotonic_increasing if lower else scores.is_monotonic_decreasing
    assert scores.iloc[0] != scores.iloc[-1]
    assert medal_thresholds(scores, competition.leaderboard_path).is_lower_better == lower
    assert (meta.competition_id, meta.metric, meta.is_lower_better) == (cid, competition.spec.metric, lower)


@pytest.mark.parametrize("cid", list(BUILT))
def test_a_leaderboard_row_is_reproduced_by_rerunning_its_solution(bench: Path, cid: str):
    competition = Competition(get_spec(cid), bench / cid)
    meta = LeaderboardMeta.model_validate_json(competition.leaderboard_meta_path.read_text())
    data, answers = read_public(competition), read_answers(competition)
    for row in (meta.rows[0], meta.rows[-1]):
        solution = ReferenceSolution(row.family, row.params, row.train_fraction, row.seed)
        assert run_solution(solution, data, answers)[0] == row.score


def test_the_sample_and_the_answers_land_where_expected(bench: Path):
    competition = Competition(get_spec("penguin-body-mass"), bench / "penguin-body-mass")
    sample = grade_csv(competition.sample_path, competition)
    assert sample.valid_submission and not sample.any_medal and not sample.above_median
    perfect = grade_csv(competition.answers_path, competition)
    assert perfect.score == 0.0 and perfect.gold_medal


def test_a_leaderboard_of_another_size_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    prepare(tmp_path, only=["hpc-job-class"], leaderboard_scale=0.05)
    competition = Competition(get_spec("hpc-job-class"), tmp_path / "hpc-job-class")
    assert len(pd.read_csv(competition.leaderboard_path)) == 5
    prepare(tmp_path, only=["hpc-job-class"], leaderboard_scale=0.08)
    assert "the leaderboard has 5 teams, 8 asked for" in caplog.text
    assert len(pd.read_csv(competition.leaderboard_path)) == 8
    competition.leaderboard_path.unlink()
    prepare(tmp_path, only=["hpc-job-class"], leaderboard_scale=0.08)
    assert "leaderboard.csv missing" in caplog.text
    assert len(pd.read_csv(competition.leaderboard_path)) == 8


def test_prepare_builds_the_same_leaderboard_with_two_processes(bench: Path, tmp_path: Path):
    scale = BUILT["hpc-job-class"] / get_spec("hpc-job-class").leaderboard_size
    [root] = prepare(tmp_path, only=["hpc-job-class"], leaderboard_scale=scale)
    assert (root / "leaderboard.csv").read_bytes() == (bench / "hpc-job-class" / "leaderboard.csv").read_bytes()
