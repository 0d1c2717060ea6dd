from gome_agent import jsonl
from gome_agent.bench.scheduler import _intervals, _max_overlap, _union


def test_union_of_intervals():
    assert _union([(0, 2), (1, 3), (5, 6)]) == 4
    assert _union([(0, 10), (2, 3)]) == 10
    assert _union([]) == 0


def test_max_overlap():
    assert _max_overlap([(0, 2), (1, 3), (2.5, 4)]) == 2
    assert _max_overlap([(0, 1), (1, 2)]) == 1  # touching is not overlapping
    assert _max_overlap([(0, 5), (1, 4), (2, 3)]) == 3


def test_intervals_from_the_lease_log(tmp_path):
    log = tmp_path / "leases.jsonl"
    for event in (
        {"event": "acquire", "lease": "a", "t": 1.0, "gpu_index": 0},
        {"event": "acquire", "lease": "b", "t": 2.0, "gpu_index": None},
        {"event": "release", "lease": "a", "t": 4.0},
        {"event": "release", "lease": "b", "t": 3.0},
        {"event": "acquire", "lease": "c", "t": 5.0, "gpu_index": 0},
    ):
        jsonl.append(log, event)
    assert _intervals(log) == [(1.0, 4.0, True), (2.0, 3.0, False)]
