import pytest
from pydantic import ValidationError

from gome_agent.optimizer.gradient import (
    NOT_STATED,
    Gradient,
    InCode,
    Tried,
    only_repeats,
    parse_compact,
    select_direction,
)


def _cand(hyp, component="model", **scores):
    base = {"alignment": 5, "impact": 5, "novelty": 5, "feasibility": 5, "risk_reward": 5}
    base.update(scores)
    return {"hypothesis": hyp, "reasoning": "because", "expected_impact": "+0.01", "component": component, "scores": base}


def _gradient(*cands):
    return Gradient.model_validate({"observations": ["o"], "limiting_problem": "the model underfits", "candidates": list(cands)})


def test_weighted_score_matches_reference_weights():
    g = _gradient(_cand("idea a", alignment=10, impact=10, novelty=10, feasibility=10, risk_reward=10), _cand("idea b"))
    assert g.candidates[0].scores.weighted() == pytest.approx(10.0)
    assert g.candidates[1].scores.weighted() == pytest.approx(5.0)
    assert _gradient(_cand("idea c", impact=10)).candidates[0].scores.weighted() == pytest.approx(7.0)


def test_highest_total_wins_without_momentum():
    g = _gradient(_cand("low impact idea", impact=3), _cand("high impact idea", impact=9))
    chosen, ranking = select_direction(g, support=[0, 0], tried=[], momentum_weight=2, repeat_penalty=3)
    assert chosen.hypothesis == "high impact idea"
    assert [r.total for r in ranking] == [pytest.approx(4.2), pytest.approx(6.6)]


def test_momentum_can_tip_the_choice():
    g = _gradient(_cand("plain idea", impact=6), _cand("idea like past successes", impact=5))
    chosen, ranking = select_direction(g, support=[0.0, 0.9], tried=[], momentum_weight=2, repeat_penalty=3)
    assert chosen.hypothesis == "idea like past successes"
    assert ranking[1].momentum == pytest.approx(1.8)


def test_repeating_a_rejected_idea_is_penalised():
    g = _gradient(_cand("switch to lightgbm gradient boosting", impact=7), _cand("add polynomial features", impact=6))
    chosen, ranking = select_direction(
        g, support=[0, 0], tried=[Tried(4, "switch to lightgbm gradient boosting", "rejected")], momentum_weight=2,
        repeat_penalty=3,
    )
    assert chosen.hypothesis == "add polynomial features"
    assert ranking[0].repeat == pytest.approx(3.0)


def test_ties_go_to_the_first_candidate():
    g = _gradient(_cand("first"), _cand("second"))
    chosen, _ = select_direction(g, support=[0, 0], tried=[], momentum_weight=0, repeat_penalty=0)
    assert chosen.hypothesis == "first"


def test_component_aliases_and_score_clamping():
    g = _gradient(_cand("idea x", component="FeatureEng", impact=11, novelty=0))
    assert g.candidates[0].component == "features"
    assert g.candidates[0].scores.impact == 10 and g.candidates[0].scores.novelty == 1


def test_invalid_gradients_are_rejected():
    with pytest.raises(ValidationError):
        _gradient()
    with pytest.raises(ValidationError):
        _gradient(_cand("x", component="astrology"))
    with pytest.raises(ValidationError):
        Gradient.model_validate({"observations": [], "candidates": [_cand("x")]})


DTYPE = "ValueError: could not convert string to float: 'w0119' (main.py line 12: `X = train.values.astype(float)`)"


def test_a_fix_of_a_failed_idea_is_not_penalised_as_a_repeat():
    fix = _cand("Retry LightGBM, fixing the dtype error by encoding the string id column")
    new = _cand("Switch to XGBoost")
    g = _gradient(new, fix)  # equal own scores; the unrelated idea comes first
    tried = [Tried(5, "Switch to LightGBM", "failed", DTYPE)]
    chosen, ranking = select_direction(g, support=[0, 0], tried=tried, momentum_weight=2, repeat_penalty=3)
    assert ranking[1].repeat == 0.0 and ranking[1].total >= ranking[0].total
    assert any("fixes why step 5 failed" in n for n in ranking[1].notes)


def test_a_failed_idea_proposed_again_without_a_fix_is_a_repeat():
    g = _gradient(_cand("Switch to LightGBM"), _cand("Add polynomial features"))
    tried = [Tried(5, "Switch to LightGBM", "failed", DTYPE)]
    chosen, ranking = select_direction(g, support=[0, 0], tried=tried, momentum_weight=2, repeat_penalty=3)
    assert chosen.hypothesis == "Add polynomial features"
    assert ranking[0].repeat == pytest.approx(3.0) and "repeats step 5 (failed: ValueError" in ranking[0].notes[0]


def test_a_fix_claim_counts_no_more_once_similar_steps_failed_the_same_way_twice():
    fix = _cand("Retry LightGBM, fixing the dtype error")
    tried = [Tried(5, "Switch to LightGBM", "failed", DTYPE), Tried(7, "Retry LightGBM with fixed dtypes", "failed", DTYPE)]
    _, ranking = select_direction(_gradient(fix), support=[0], tried=tried, momentum_weight=2, repeat_penalty=3)
    assert ranking[0].repeat > 0 and "as 2 similar steps did" in " ".join(ranking[0].notes)


def test_momentum_does_not_reward_what_the_code_already_has():
    g = _gradient(_cand("Switch to LightGBM gradient boosting"), _cand("Add target encoding of city"))
    _, ranking = select_direction(g, support=[0.9, 0.9], tried=[], momentum_weight=2, repeat_penalty=3,
                                  in_code=[InCode(4, "Switch to LightGBM gradient boosting")])
    assert ranking[0].momentum == 0.0 and "already has this (step 4" in ranking[0].notes[0]
    assert ranking[1].momentum == pytest.approx(1.8)


# The compact form: a small model's plain lines -----------------------------------------

LOOPING = """Problem: the random forest uses default settings and underfits
1. [model] use HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05)
2. [Feature Engineering] add the ratio of bill length to bill depth
3. scale the features with StandardScaler
3. scale the features with StandardScaler
4. [model] increase n_estimators to 500
"""


def test_a_compact_reply_becomes_a_gradient_ranked_by_its_order():
    g = parse_compact(LOOPING, k=3)
    assert g.limiting_problem == "the random forest uses default settings and underfits"
    assert [(c.hypothesis, c.component) for c in g.candidates] == [
        ("use HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05)", "model"),
        ("add the ratio of bill length to bill depth", "features"),  # the tag's alias
        ("scale the features with StandardScaler", "data"),  # untagged: the words name the component
    ]
    assert all(c.scores is None for c in g.candidates)
    direction, ranking = select_direction(g, support=[0.0] * 3, tried=[], momentum_weight=2.0, repeat_penalty=3.0)
    assert direction is g.candidates[0] and [r.base for r in ranking] == [6.0, 5.5, 5.0]
    # A direction already tried and rejected drops below the next one.
    tried = [Tried(4, "use HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05)", "rejected")]
    direction, ranking = select_direction(g, support=[0.0] * 3, tried=tried, momentum_weight=2.0, repeat_penalty=3.0)
    assert direction is g.candidates[1] and ranking[0].repeat == 3.0


def test_a_compact_reply_without_a_problem_line_or_with_markdown_still_parses():
    g = parse_compact("The model is too simple.\n\n- **[ensemble]** blend the forest with a ridge model\n", k=3)
    assert g.limiting_problem == "The model is too simple."
    assert [(c.hypothesis, c.component) for c in g.candidates] == [("blend the forest with a ridge model", "ensemble")]
    g = parse_compact("1) [model] tune max_depth to 8\n", k=3)
    assert g.limiting_problem == NOT_STATED and g.candidates[0].hypothesis == "tune max_depth to 8"


@pytest.mark.parametrize("reply", ["", "The model is limited by its features. I would add more features.",
                                   "```python\ndef fit_predict(X, y, X_new):\n    return y\n```"])
def test_a_compact_reply_without_directions_is_refused_with_the_reason(reply):
    with pytest.raises(ValueError, match="lists no direction"):
        parse_compact(reply, k=3)


def test_an_outcome_copied_back_from_the_tried_list_is_not_part_of_the_direction():
    # The 0.5B model's fourth diagnosis on osu-leaf-outlines (2026-12-06), outcomes once and chained.
    g = parse_compact("Problem: no gain\n"
                      "1. [model] use more and deeper trees in the forest - rejected (0.48297): rejected (0.565539)\n"
                      "2. [model] use HistGradientBoostingClassifier(max_iter=300): rejected (0.48297)\n"
                      "3. [data] drop the rows whose parse failed: KeyError on 'id' - failed: KeyError\n"
                      "4. [data] fix the error: failed rows are dropped\n", k=4)
    assert [c.hypothesis for c in g.candidates] == [
        "use more and deeper trees in the forest", "use HistGradientBoostingClassifier(max_iter=300)",
        "drop the rows whose parse failed: KeyError on 'id'", "fix the error: failed rows are dropped"]


def test_only_repeats_says_whether_every_candidate_repeats_a_change_that_did_not_work():
    g = parse_compact("Problem: no gain\n1. use more and deeper trees in the forest\n"
                      "2. use HistGradientBoostingClassifier(max_iter=300)\n", k=3)
    trees = Tried(3, "use more and deeper trees in the forest, or ExtraTrees", "rejected")
    boosted = Tried(2, "use HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05)", "rejected")
    assert only_repeats(g, [trees, boosted])
    assert not only_repeats(g, [trees]) and not only_repeats(g, [])
    # A direction that says how it repairs a failure is no repeat of it.
    failed = Tried(4, "use HistGradientBoostingClassifier(max_iter=300)", "failed", "ValueError: Input contains NaN")
    fixing = parse_compact("1. use more and deeper trees in the forest\n"
                           "2. fix the NaN error: impute before HistGradientBoostingClassifier(max_iter=300)\n", k=3)
    assert not only_repeats(fixing, [trees, failed])
