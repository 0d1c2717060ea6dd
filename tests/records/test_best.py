"""Keeping the best submission in place: atomic, run-wide, safe when traces finish at once."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pandas as pd

from gome_agent.records.best import BestKeeper


def _attempt(root: Path, name: str, value: float) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    pd.DataFrame({"id": [1, 2], "target": [value, value]}).to_csv(folder / "submission.csv", index=False)
    (folder / "main.py").write_text(f"VALUE = {value}\n")
    return folder


def test_only_improvements_replace_the_best(tmp_path):
    keeper = BestKeeper(tmp_path, higher_is_better=False)
    assert keeper.current() is None
    assert keeper.offer(score=0.5, trace=0, step=1, attempt_dir=_attempt(tmp_path, "a", 0.5))
    assert not keeper.offer(score=0.6, trace=1, step=1, attempt_dir=_attempt(tmp_path, "b", 0.6))
    assert keeper.offer(score=0.4, trace=1, step=2, attempt_dir=_attempt(tmp_path, "c", 0.4))
    info = keeper.current()
    assert (info.trace, info.step, info.score, info.code_dir) == (1, 2, 0.4, "c")
    assert pd.read_csv(keeper.submission_path)["target"].tolist() == [0.4, 0.4]
    assert (keeper.code_dir / "main.py").read_text() == "VALUE = 0.4\n"
    # A forced offer (the final selection) wins even with a worse validation score.
    assert keeper.offer(score=0.45, trace=0, step=1, attempt_dir=tmp_path / "a", force=True, source="final_selection")
    assert keeper.current().source == "final_selection"
    assert keeper.offer(score=0.45, trace=0, step=1, attempt_dir=tmp_path / "a", force=True, source="refit")
    assert keeper.current().source == "refit"


def test_fallback_never_replaces_a_real_solution(tmp_path):
    keeper = BestKeeper(tmp_path, higher_is_better=True)
    fallback = _attempt(tmp_path, "fallback", 0.5) / "submission.csv"
    keeper.publish_fallback(fallback)
    assert keeper.current().source == "fallback"
    assert keeper.offer(score=0.1, trace=0, step=1, attempt_dir=_attempt(tmp_path, "real", 0.9))
    keeper.publish_fallback(fallback)
    assert keeper.current().source == "step"
    assert pd.read_csv(keeper.submission_path)["target"].tolist() == [0.9, 0.9]


def _offer_many(root: str, trace: int) -> None:
    keeper = BestKeeper(Path(root), higher_is_better=True)
    for i in range(40):
        value = round(trace * 0.001 + i * 0.01, 4)
        keeper.offer(score=value, trace=trace, step=i, attempt_dir=_attempt(Path(root) / f"t{trace}", f"s{i}", value))


def test_traces_finishing_at_the_same_instant_keep_the_true_best(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_offer_many, args=(str(tmp_path), t)) for t in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    keeper = BestKeeper(tmp_path, higher_is_better=True)
    best = keeper.current()
    assert best.score == max(round(t * 0.001 + 39 * 0.01, 4) for t in range(4))
    # The submission and code in place are the best's, whole (no mix of two writers).
    assert pd.read_csv(keeper.submission_path)["target"].tolist() == [best.score, best.score]
    assert (keeper.code_dir / "main.py").read_text() == f"VALUE = {best.score}\n"
    assert not list(keeper.submission_path.parent.glob(".*tmp"))
