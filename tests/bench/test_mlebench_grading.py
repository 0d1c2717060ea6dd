"""`gome bench grade` decides medals with MLE-bench's own grading code, and says so when it cannot."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gome_agent.bench.competitions import Competition, get_spec
from gome_agent.bench.grading import (
    GomeGrading,
    MlebenchGrading,
    aggregate_reports,
    grade_csv,
    grade_jsonl,
    grading_code,
)
from gome_agent.bench.prepare import prepare
from gome_agent.cli import main
from tests.mlebench.real import require_mlebench

# Team counts around every bracket of the medal rule (1-99, 100-249, 250-999, 1000+).
SIZES = [1, 2, 9, 10, 50, 99, 100, 101, 249, 250, 251, 999, 1000, 1001, 1500]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two competitions from scikit-learn's data sets (AUC, accuracy), without leaderboards."""
    out = tmp_path_factory.mktemp("bench")
    prepare(out, only=["breast-cancer", "digit-images"], leaderboards=False)
    return out


def _board(path: Path, scores: list[float]) -> None:
    pd.DataFrame({"scoreNullable": scores, "teamId": range(1, len(scores) + 1), "hasTeamName": True,
                  "submissionDate": "2025-01-01 00:00:00", "score": scores, "hasScore": True}).to_csv(path, index=False)


def _without_time(report: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in report.items() if k != "created_at"}


def _leaderboards() -> list[pd.DataFrame]:
    """Leaderboards of every bracket, with ties, unscored rows and rounding, best (highest) first."""
    rng = np.random.default_rng(0)
    boards = []
    for n in SIZES:
        scores = np.sort(np.round(rng.uniform(0.5, 1.0, n), 3))[::-1]
        if n >= 10:
            scores[3:7] = scores[3]  # a tie across the gold position of small boards
        frame = pd.DataFrame({"score": scores})
        if n >= 100:
            frame.loc[n - 3:, "score"] = np.nan  # teams without a score count in N, not in the median
        boards.append(frame)
    return boards


def test_gome_copy_of_the_medal_rule_agrees_with_mlebench(bench: Path):
    require_mlebench()
    competition = Competition(get_spec("breast-cancer"), bench / "breast-cancer")
    mlebench, gome = MlebenchGrading(label="m"), GomeGrading(label="g")
    compared = 0
    for board in _leaderboards():
        known = board["score"].dropna().to_numpy()
        # Every leaderboard score (ties with a threshold) and the values just beside them, and no score.
        for score in [None, *known, *(known + 1e-5), *(known - 1e-5), 2.0, 0.0]:
            score = None if score is None else float(score)
            theirs = mlebench.report(competition, score, board, True, Path("s.csv"))
            ours = gome.report(competition, score, board, True, Path("s.csv"))
            assert _without_time(ours) == _without_time(theirs), (len(board), score)
            compared += 1
    assert compared > 3000


def test_medals_come_from_mlebench_grader(bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    require_mlebench()
    from mlebench.grade_helpers import Grader

    calls: list[tuple[float | None, int]] = []
    rank_score = Grader.rank_score

    def spy(self: Grader, score: float | None, leaderboard: pd.DataFrame) -> dict[str, object]:
        calls.append((score, len(leaderboard)))
        return rank_score(self, score, leaderboard)

    monkeypatch.setattr(Grader, "rank_score", spy)
    shutil.copytree(bench / "digit-images", tmp_path / "digit-images")
    competition = Competition(get_spec("digit-images"), tmp_path / "digit-images")
    _board(competition.leaderboard_path, [1.0, 0.98, 0.9, 0.8, 0.5])
    report = grade_csv(competition.answers_path, competition)
    assert calls == [(1.0, 5)]
    assert report.graded_by.startswith("MLE-bench's own grading code (mlebench in ")
    assert report.score == 1.0 and report.gold_medal and report.valid_submission
    assert isinstance(grading_code(), MlebenchGrading)


def test_an_invalid_submission_keeps_its_reason_through_mlebench(bench: Path, tmp_path: Path):
    require_mlebench()
    shutil.copytree(bench / "breast-cancer", tmp_path / "breast-cancer")
    competition = Competition(get_spec("breast-cancer"), tmp_path / "breast-cancer")
    _board(competition.leaderboard_path, [1.0, 0.9, 0.5])
    short = tmp_path / "short.csv"
    pd.read_csv(competition.answers_path).iloc[1:].to_csv(short, index=False)
    report = grade_csv(short, competition)
    assert report.score is None and report.submission_exists and not report.valid_submission
    assert report.invalid_reason is not None and "rows, expected" in report.invalid_reason
    assert report.gold_threshold == 1.0 and not report.any_medal


def test_aggregate_report_matches_mlebench(bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    require_mlebench()
    monkeypatch.chdir(tmp_path)  # mlebench.grade makes a cache folder in the working directory
    from mlebench.grade import aggregate_reports as mlebench_aggregate
    from mlebench.grade_helpers import CompetitionReport as MlebenchReport

    shutil.copytree(bench / "breast-cancer", tmp_path / "breast-cancer")
    competition = Competition(get_spec("breast-cancer"), tmp_path / "breast-cancer")
    _board(competition.leaderboard_path, [1.0, 0.99, 0.9, 0.7, 0.5])
    reports = [grade_csv(path, competition) for path in (competition.answers_path, competition.sample_path,
                                                         tmp_path / "absent.csv")]
    theirs = mlebench_aggregate([MlebenchReport.from_dict(r.to_dict()) for r in reports])
    assert aggregate_reports(reports) == theirs
    assert theirs["total_runs"] == 3 and theirs["total_medals"] == 1 and theirs["total_valid_submissions"] == 2


def test_without_mlebench_the_grading_says_whose_rule_it_is(bench: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]):
    monkeypatch.setitem(sys.modules, "mlebench", None)
    monkeypatch.setitem(sys.modules, "mlebench.grade_helpers", None)
    code = grading_code()
    assert isinstance(code, GomeGrading)
    assert code.label.startswith("gome's copy of MLE-bench's medal rule, since the mlebench package cannot be "
                                 "imported")
    assert "bash scripts/install_mlebench.sh PATH/TO/mle-bench" in code.label
    data = tmp_path / "data"
    shutil.copytree(bench / "breast-cancer", data / "breast-cancer")
    competition = Competition(get_spec("breast-cancer"), data / "breast-cancer")
    _board(competition.leaderboard_path, [1.0, 0.99, 0.9, 0.7, 0.5])
    jsonl = tmp_path / "submission.jsonl"
    jsonl.write_text(json.dumps({"competition_id": "breast-cancer", "submission_path": str(competition.answers_path)})
                     + "\n")
    assert main(["bench", "grade", "--submission", str(jsonl), "--output-dir", str(tmp_path / "out"),
                 "--data-dir", str(data)]) == 0
    out = capsys.readouterr()
    assert "WARNING" in out.err and "medals decided by gome's copy of MLE-bench's medal rule" in out.err
    [path] = (tmp_path / "out").glob("*_grading_report.json")
    assert out.out.strip() == str(path)
    report = json.loads(path.read_text())
    assert report["total_gold_medals"] == 1 and report["competition_reports"][0]["score"] == 1.0
    assert grade_csv(competition.answers_path, competition).graded_by == code.label


def test_grade_jsonl_logs_the_grading_code(bench: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    require_mlebench()
    shutil.copytree(bench / "digit-images", tmp_path / "data" / "digit-images")
    _board(tmp_path / "data" / "digit-images" / "leaderboard.csv", [1.0, 0.5])
    jsonl = tmp_path / "submission.jsonl"
    jsonl.write_text('{"competition_id": "digit-images", "submission_path": null}\n')
    caplog.set_level("INFO")
    grade_jsonl(jsonl, tmp_path / "out", tmp_path / "data")
    assert "medals decided by MLE-bench's own grading code" in caplog.text


def test_gome_imports_mlebench_only_inside_the_functions_that_grade():
    """gome runs without MLE-bench: no module imports it at load time, and only the graders import it at all."""
    import ast

    package = Path(__file__).resolve().parents[2] / "gome_agent"
    at_load, anywhere = [], set()
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            if any(n == "mlebench" or n.startswith("mlebench.") for n in names):
                anywhere.add(str(path.relative_to(package)))
                if node in tree.body:
                    at_load.append(str(path.relative_to(package)))
    assert at_load == []
    assert anywhere == {"bench/grading.py", "mlebench/export.py"}
