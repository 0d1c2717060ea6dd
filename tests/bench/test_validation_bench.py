"""`gome bench validation`: the scripted changes do what their kind says, and a short real schedule
shows the old protocol accepting a leak that the new one rejects."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from gome_agent.bench.validation import (
    DRAFT_PLAN,
    SCENARIOS,
    Case,
    RunOutcome,
    ScheduledPolicy,
    StepOutcome,
    Difference,
    build_synthetic,
    compare_finals,
    paired_interval,
    run_case,
    schedules,
    solution,
    summarize,
    table,
)
from gome_agent.llm.types import Message


def _update_prompt(plan: dict[str, object]) -> list[Message]:
    return [Message(role="user", content=f"## The change to make\n```python\n{solution(plan)}```")]


def test_each_kind_changes_the_plan_as_documented():
    policy = ScheduledPolicy(["honest", "leak", "train-rows", "noise", "retune"], seed=3)
    honest = policy.change(DRAFT_PLAN, "honest")
    assert honest["features"] == [0, 1, 2, 3] and honest["report"] == "folds" and honest["model"] == "logistic"
    # The next honest change tries the next pair, also when the last one was rejected (made to the draft).
    assert policy.change(DRAFT_PLAN, "honest")["features"] == [0, 1, 4, 5]
    assert policy.change({**DRAFT_PLAN, "features": [0, 1, 2, 3]}, "honest")["features"] == [0, 1, 2, 3, 6, 7]
    assert policy.change(DRAFT_PLAN, "leak") == {**DRAFT_PLAN, "model": "tree", "report": "train"}
    assert policy.change(DRAFT_PLAN, "train-rows") == {**DRAFT_PLAN, "report": "train"}
    # noise: the same model (the same true quality), claimed on a shuffle of its own
    noise = policy.change(DRAFT_PLAN, "noise")
    assert noise == {**DRAFT_PLAN, "report": "own-folds", "split_seed": noise["split_seed"]}
    assert policy.change(noise, "noise")["split_seed"] != noise["split_seed"]
    retune = policy.change(DRAFT_PLAN, "retune")
    assert retune["report"] == "split" and retune["features"] == [0, 1] and retune["c"] != DRAFT_PLAN["c"]


def test_the_update_reply_edits_the_plan_line_of_the_best_and_tags_its_kind():
    policy = ScheduledPolicy(["leak", "honest"], seed=0)
    reply = policy(_update_prompt(DRAFT_PLAN), "scripted")
    assert reply.startswith("Change: [leak] ")
    assert f"<<<<<<< SEARCH\nPLAN = {json.dumps(DRAFT_PLAN)}\n=======\n" in reply
    assert '"model": "tree"' in reply
    assert policy(_update_prompt(DRAFT_PLAN), "scripted").startswith("Change: [honest] ")


def test_a_re_ask_of_an_unchanged_edit_gets_the_same_reply_and_keeps_the_schedule():
    # A leak on a best that already leaks changes nothing: gome re-asks, and the policy insists.
    policy = ScheduledPolicy(["leak", "honest"], seed=0)
    prompt = _update_prompt(DRAFT_PLAN)
    reply = policy(prompt, "scripted")
    reask = [*prompt, Message(role="assistant", content=reply),
             Message(role="user", content="That reply could not be applied: the reply's code is the current code "
                                          "unchanged; make the change it names. Reply again, correctly.")]
    assert policy(reask, "scripted") == reply
    assert policy(_update_prompt(DRAFT_PLAN), "scripted").startswith("Change: [honest] ")


def test_schedules_shuffle_each_scenario_per_seed_and_keep_its_kinds():
    cases = schedules([0, 1])
    assert len(cases) == 2 * len(SCENARIOS)
    for case in cases:
        assert sorted(case.schedule) == sorted(SCENARIOS[case.scenario])
    leak = [c.schedule for c in cases if c.scenario == "leak"]
    assert leak[0] != leak[1]
    assert schedules([0])[0].schedule == cases[0].schedule  # deterministic


def _outcome(protocol, seed, final, statuses):
    steps = [StepOutcome(step=i + 1, kind=kind, status=status, reported=None, measured=None, true=None,
                         threshold=None) for i, (kind, status) in enumerate(statuses)]
    return RunOutcome(scenario="leak", protocol=protocol, seed=seed, steps=steps, final_true=final)


def test_the_goals_fail_when_the_new_protocol_accepts_a_leak_or_ends_worse():
    old = _outcome("old", 0, 0.70, [("draft", "accepted"), ("leak", "accepted"), ("honest", "rejected")])
    good = _outcome("new", 0, 0.80, [("draft", "accepted"), ("leak", "failed"), ("honest", "accepted")])
    summary = summarize([old, good])
    assert summary["goals"] == {"no_leak_inflated_or_noise_step_accepted_under_new": True,
                                "new_final_true_quality_at_least_old_in_every_case": True,
                                "retune_new_final_never_significantly_below_old": True}
    rows = {r["protocol"]: r for r in summary["rows"]}
    assert rows["old"]["kind_accepted"] == 1 and rows["new"]["honest_accepted"] == 1
    assert "| leak | old | 0/1 | 1/1 | 0.7 | 0.7000 |" in table(summary)
    leaked = _outcome("new", 0, 0.80, [("draft", "accepted"), ("leak", "accepted")])
    assert not summarize([old, leaked])["goals"]["no_leak_inflated_or_noise_step_accepted_under_new"]
    noisy = _outcome("new", 0, 0.80, [("draft", "accepted"), ("noise", "accepted")])
    assert not summarize([old, noisy])["goals"]["no_leak_inflated_or_noise_step_accepted_under_new"]
    worse = _outcome("new", 0, 0.69, [("draft", "accepted"), ("leak", "failed")])
    assert not summarize([old, worse])["goals"]["new_final_true_quality_at_least_old_in_every_case"]


def test_a_retune_case_fails_its_goal_only_when_the_new_final_is_significantly_worse():
    old = _outcome("old", 1, 0.80, [("draft", "accepted"), ("retune", "accepted")])
    old.scenario = "retune"
    new = _outcome("new", 1, 0.79997, [("draft", "accepted"), ("retune", "rejected")])
    new.scenario = "retune"
    new.versus_old = Difference(value=-0.00003, low=-0.0001, high=0.00005)  # within what the rows resolve
    goals = summarize([old, new])["goals"]
    assert goals["retune_new_final_never_significantly_below_old"]
    assert goals["new_final_true_quality_at_least_old_in_every_case"]  # not a goal of the retune scenario
    new.versus_old = Difference(value=-0.01, low=-0.02, high=-0.001)
    assert not summarize([old, new])["goals"]["retune_new_final_never_significantly_below_old"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return build_synthetic(tmp_path_factory.mktemp("synthetic"), 0)


def test_a_leak_fools_the_old_protocol_and_not_the_new_one(tmp_path, synthetic):
    case = Case("leak", 0, ["leak", "honest"])
    old = run_case(case, "old", synthetic, tmp_path / "old")
    new = run_case(case, "new", synthetic, tmp_path / "new")
    assert [(s.kind, s.status) for s in old.steps] == [("draft", "accepted"), ("leak", "accepted"),
                                                       ("honest", "rejected")]
    assert old.steps[1].reported == 1.0  # the tree scored on the rows it memorised
    assert [(s.kind, s.status) for s in new.steps] == [("draft", "accepted"), ("leak", "failed"),
                                                       ("honest", "accepted")]
    # gome measured the draft itself, and the honest step beat the noise it recorded.
    assert new.steps[0].measured != new.steps[0].reported
    assert new.steps[2].threshold is not None and new.steps[2].measured - new.steps[0].measured > new.steps[2].threshold
    # The truth: the leak's tree is worse than the draft, the honest step better; the finals follow.
    assert old.steps[1].true < old.steps[0].true < new.steps[2].true
    assert old.final_true == pytest.approx(old.steps[1].true) and old.refit is None
    # The new protocol submits the honest step refitted on every labelled row, held-out ones included.
    assert new.refit == "submitted" and new.final_true > old.final_true
    assert new.final_true != new.steps[2].true and new.final_true == pytest.approx(new.steps[2].true, abs=0.02)
    # The finals compared row by row on the private test rows.
    difference = compare_finals(tmp_path / "new", tmp_path / "old", synthetic)
    assert difference.value == pytest.approx(new.final_true - old.final_true)
    assert 0 < difference.low < difference.value < difference.high


def test_a_noise_step_keeps_the_true_quality_and_only_the_old_protocol_believes_its_claim(tmp_path, synthetic):
    # Two noise steps: the same model claimed on two shuffles of its own, so one of the claims is likely
    # above the draft's; the predictions, and so the true quality, are the draft's in every step.
    case = Case("noise", 0, ["noise", "noise"])
    old = run_case(case, "old", synthetic, tmp_path / "old")
    new = run_case(case, "new", synthetic, tmp_path / "new")
    for outcome in (old, new):
        assert [s.kind for s in outcome.steps] == ["draft", "noise", "noise"]
        assert [s.true for s in outcome.steps] == [outcome.steps[0].true] * 3
    claims = [s.reported for s in old.steps]
    assert len(set(claims)) == 3  # three different claims of one model
    # The old protocol takes a claim above the best's; the new one measures no gain and takes none.
    best = claims[0]
    for step in old.steps[1:]:
        assert step.status == ("accepted" if step.reported > best else "rejected")
        best = max(best, step.reported)
    assert [s.status for s in new.steps[1:]] == ["rejected", "rejected"]
    assert [s.measured for s in new.steps[1:]] == [new.steps[0].measured] * 2
    assert compare_finals(tmp_path / "new", tmp_path / "old", synthetic).value == pytest.approx(0, abs=0.02)


def test_the_paired_interval_resolves_a_real_difference_and_not_a_hair():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 1500)
    signal = truth + rng.normal(0, 1.0, 1500)
    same = paired_interval(truth, signal, signal, draws=200)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)
    better = signal + 0.5 * truth  # more signal: a clearly higher AUC
    real = paired_interval(truth, better, signal, draws=200)
    assert real.value == pytest.approx(roc_auc_score(truth, better) - roc_auc_score(truth, signal))
    assert 0 < real.low < real.value < real.high
    hair = paired_interval(truth, signal + rng.normal(0, 1e-3, 1500), signal, draws=200)
    assert abs(hair.value) < 1e-3 and hair.low < 0 < hair.high  # a difference the rows cannot resolve


def test_the_table_lists_each_seeds_difference_with_its_interval():
    old = _outcome("old", 2, 0.811751, [("draft", "accepted"), ("noise", "accepted")])
    new = _outcome("new", 2, 0.811723, [("draft", "accepted"), ("noise", "rejected")])
    new.versus_old = Difference(value=-0.0000284, low=-0.000108, high=0.0000498)
    summary = summarize([old, new])
    assert summary["new_minus_old"] == [{"scenario": "leak", "seed": 2, "value": -0.0000284, "low": -0.000108,
                                         "high": 0.0000498}]
    assert "| leak | 2 | -0.00003 | [-0.00011, +0.00005] |" in table(summary)


def test_a_signal_that_interrupts_a_run_stops_the_benchmark(tmp_path, synthetic, monkeypatch):
    # Before: the coordinator stopped the run cleanly on SIGTERM and the benchmark went on to its next case.
    from gome_agent.bench import validation
    from gome_agent.run.coordinator import RunSummary
    monkeypatch.setattr(validation, "run", lambda config, llm: RunSummary(
        workdir=config.workdir, reason="stopped by signal SIGTERM", best_score=None, steps=0, submission=None,
        interrupted=True))
    with pytest.raises(KeyboardInterrupt, match="interrupted"):
        run_case(Case("leak", 0, ["leak"]), "new", synthetic, tmp_path / "new")


@pytest.mark.parametrize("corroborate, status", [(True, "accepted"), (False, "rejected")])
def test_a_small_honest_gain_is_taken_when_the_reported_folds_corroborate_it(tmp_path, monkeypatch, corroborate,
                                                                             status):
    # Seed 4's data: adding x4, x5 to x0-x3 gains about +0.003 AUC in truth, within the noise of gome's
    # 1,350 held-out rows alone; the solutions' out-of-fold scores on gome's folds show it too.
    from gome_agent.bench import validation
    new = validation.PROTOCOLS["new"]
    monkeypatch.setitem(validation.PROTOCOLS, "new", {**new, "optimizer": {**new["optimizer"],
                                                                           "corroborate": corroborate}})
    outcome = run_case(Case("noise", 4, ["honest", "honest"]), "new", build_synthetic(tmp_path / "c", 4),
                       tmp_path / "run")
    assert [s.status for s in outcome.steps] == ["accepted", "accepted", status]
    small = outcome.steps[2]
    assert 0 < small.measured - outcome.steps[1].measured < 0.005 and small.true > outcome.steps[1].true
