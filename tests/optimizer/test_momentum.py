import math
import multiprocessing as mp

import pytest

from gome_agent.optimizer.momentum import SuccessMemory


def _add(memory, trace, step, hypothesis, score, problem="underfitting", component="model", gain=0.01):
    return memory.record(trace=trace, step=step, hypothesis=hypothesis, component=component,
                         problem=problem, score=score, gain=gain)


def test_clock_counts_steps_and_entries_remember_it(tmp_path):
    memory = SuccessMemory(tmp_path / "memory")
    assert memory.now() == 0
    assert [memory.tick() for _ in range(3)] == [1, 2, 3]
    entry = _add(memory, 0, 3, "gradient boosted trees", 0.8)
    assert entry.clock == 3
    assert SuccessMemory(tmp_path / "memory").entries()[0].hypothesis == "gradient boosted trees"


def test_decay_halves_every_half_life(tmp_path):
    memory = SuccessMemory(tmp_path / "m", half_life_steps=10)
    _add(memory, 1, 1, "gradient boosted trees on raw features", 0.8)
    for _ in range(10):
        memory.tick()
    [recall] = memory.recall("gradient boosted trees on raw features model underfitting",
                             best_score=None, higher_is_better=True, top_k=1)
    assert recall.age == 10
    assert recall.decay == pytest.approx(0.5)
    assert recall.weight == pytest.approx(recall.similarity * 0.5)


def test_recall_prefers_relevant_recent_and_better_entries(tmp_path):
    memory = SuccessMemory(tmp_path / "m", half_life_steps=30)
    _add(memory, 1, 1, "add tf-idf character n-grams to the text features", 0.80, problem="text signal unused", component="features")
    for _ in range(60):
        memory.tick()
    _add(memory, 2, 2, "tune the learning rate of the boosted trees", 0.80, problem="underfitting trees")
    _add(memory, 1, 3, "add word n-gram tf-idf features of the text", 0.80, problem="text signal unused", component="features")
    recalls = memory.recall("text features n-grams tf-idf", best_score=0.80, higher_is_better=True, top_k=2)
    hyps = [r.entry.hypothesis for r in recalls]
    assert hyps[0] == "add word n-gram tf-idf features of the text"  # relevant and recent
    assert recalls[0].weight > recalls[1].weight


def test_score_advantage_by_direction(tmp_path):
    memory = SuccessMemory(tmp_path / "m")
    better = _add(memory, 1, 1, "idea one", 0.30)  # lower RMSE is better
    worse = _add(memory, 2, 1, "idea two", 0.50)
    recalls = {r.entry.id: r for r in memory.recall("unrelated words", best_score=0.40, higher_is_better=False, top_k=2)}
    assert recalls[better.id].advantage > 0
    assert recalls[worse.id].advantage < 0
    assert recalls[better.id].weight == pytest.approx(math.tanh(recalls[better.id].advantage), abs=1e-9)


def test_best_scoring_entry_is_always_recalled(tmp_path):
    memory = SuccessMemory(tmp_path / "m")
    for i in range(5):
        _add(memory, 0, i, f"feature engineering variant {i}", 0.70 + i * 1e-6, problem="weak features", component="features")
    top = _add(memory, 1, 9, "something unrelated entirely", 0.95, problem="other")
    recalls = memory.recall("feature engineering variant", best_score=None, higher_is_better=True, top_k=2)
    assert top.id in {r.entry.id for r in recalls}
    assert len(recalls) == 2


def test_recall_is_bounded_and_excludes(tmp_path):
    memory = SuccessMemory(tmp_path / "m")
    entries = [_add(memory, 0, i, f"hypothesis {i}", 0.5) for i in range(30)]
    assert len(memory.recall("hypothesis", best_score=0.5, higher_is_better=True, top_k=4)) == 4
    left = memory.recall("hypothesis", best_score=0.5, higher_is_better=True, top_k=50,
                         exclude_ids={e.id for e in entries[:29]})
    assert [r.entry.id for r in left] == [entries[29].id]
    assert memory.recall("x", best_score=None, higher_is_better=True, top_k=0) == []


def test_support_is_decayed_similarity(tmp_path):
    memory = SuccessMemory(tmp_path / "m", half_life_steps=5)
    assert memory.support(["anything"]) == [0.0]
    _add(memory, 0, 1, "five fold stratified averaging", 0.8, problem="noisy split", component="ensemble")
    fresh = memory.support(["five fold stratified averaging ensemble", "bigger neural network"])
    assert fresh[0] > 0.5 and fresh[1] == 0.0
    for _ in range(5):
        memory.tick()
    assert memory.support(["five fold stratified averaging ensemble"])[0] == pytest.approx(fresh[0] / 2)


def test_broken_line_is_skipped_and_later_entries_survive(tmp_path):
    memory = SuccessMemory(tmp_path / "m")
    _add(memory, 0, 1, "first", 0.5)
    with open(memory.path, "a") as f:
        f.write('{"id": "cut-short", "trace": 0, "hyp')  # a writer killed mid-line
    _add(memory, 0, 2, "second", 0.6)
    fresh = SuccessMemory(tmp_path / "m")
    assert [e.hypothesis for e in fresh.entries()] == ["first", "second"]


def test_incremental_reads_see_other_writers(tmp_path):
    reader = SuccessMemory(tmp_path / "m")
    writer = SuccessMemory(tmp_path / "m")
    assert reader.entries() == []
    _add(writer, 1, 1, "from another process", 0.5)
    assert [e.hypothesis for e in reader.entries()] == ["from another process"]
    _add(writer, 1, 2, "and another", 0.6)
    assert len(reader.entries()) == 2


def _append_many(folder, trace, n):
    memory = SuccessMemory(folder)
    for i in range(n):
        memory.tick()
        _add(memory, trace, i, f"trace {trace} idea {i} " + "x" * 300, 0.5 + i * 1e-4)


def test_concurrent_appends_from_processes_lose_nothing(tmp_path):
    folder = tmp_path / "m"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(folder, t, 150)) for t in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    memory = SuccessMemory(folder)
    entries = memory.entries()
    assert len(entries) == 600
    assert {(e.trace, e.step) for e in entries} == {(t, i) for t in range(4) for i in range(150)}
    assert memory.now() == 600
