import pytest

from gome_agent.config import StageConfig
from gome_agent.optimizer.budget import Budget, format_duration


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_stages_follow_the_fraction_used():
    clock = Clock()
    budget = Budget(1000, clock=clock)
    stages = StageConfig(draft_end=0.1, final_start=0.7)
    assert budget.stage(stages) == "draft"
    clock.t += 100
    assert budget.stage(stages) == "improve"
    clock.t += 599
    assert budget.stage(stages) == "improve"
    clock.t += 1
    assert budget.stage(stages) == "final"


def test_run_timeout_derives_from_what_is_left():
    clock = Clock()
    budget = Budget(3600, clock=clock, reserve_s=600)
    assert budget.run_timeout(1800) == 1800
    clock.t += 2000
    assert budget.remaining() == pytest.approx(1000)
    assert budget.run_timeout(1800) == pytest.approx(1000)
    assert budget.run_timeout(1800, margin_s=100) == pytest.approx(900)
    clock.t += 5000
    assert budget.run_timeout(1800) == 0
    assert budget.remaining_total() == 0


def test_resumed_budget_counts_time_already_spent():
    clock = Clock()
    budget = Budget(3600, clock=clock, spent_before_s=3000)
    assert budget.remaining() == pytest.approx(600)
    assert budget.fraction_used() == pytest.approx(3000 / 3600)
    assert budget.deadline == pytest.approx(clock.t + 600)


def test_format_duration():
    assert format_duration(45) == "45s"
    assert format_duration(200) == "3m20s"
    assert format_duration(7500) == "2h05m"
