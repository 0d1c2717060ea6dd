"""Noise-aware acceptance end to end: a gain inside the fold scores' noise is rejected, and the
paper's plain rule (an ablation setting) accepts it."""

from __future__ import annotations

import pytest

from gome_agent.bench.competitions import build_breast_cancer
from tests.scripted_agent import Script, analysis_reply, edit, full, gradient
from tests.strategies.test_trace import make_config, start, steps_of

FOLDED = '''import json
import pandas as pd

test = pd.read_csv("input/test.csv")
pd.DataFrame({"id": test["id"], "target": 0.25}).to_csv("submission.csv", index=False)
FOLDS = [0.80, 0.90, 0.70, 0.85, 0.75]
json.dump({"score": sum(FOLDS) / len(FOLDS), "folds": FOLDS}, open("scores.json", "w"))
'''
NOISY_GAIN = "FOLDS = [0.81, 0.88, 0.72, 0.86, 0.76]"  # +0.006 on average, per-fold differences spread 0.015


@pytest.fixture(scope="module")
def competition(tmp_path_factory):
    return build_breast_cancer(tmp_path_factory.mktemp("comp"))


@pytest.mark.parametrize("acceptance, status", [("noise", "rejected"), ("plain", "accepted")])
def test_a_gain_within_the_noise_is_rejected_unless_the_plain_rule_is_asked_for(
        tmp_path, competition, fake_llm, monkeypatch, acceptance, status):
    script = (
        Script()
        .add("task_analysis", analysis_reply())
        .add("draft", full(FOLDED, "constant with folds"))
        .add("gradient", gradient("Tune the folds"))
        .add("update", edit("FOLDS = [0.80, 0.90, 0.70, 0.85, 0.75]", NOISY_GAIN, "a tiny change"))
    )
    fake_llm.set_responder(script)
    config = make_config(tmp_path, competition, fake_llm, max_steps=2, acceptance=acceptance,
                         scoring="self-reported")  # the solution's own fold scores are the test
    start(config, monkeypatch)
    first, second = steps_of(config)
    assert first.status == "accepted" and first.fold_scores == [0.80, 0.90, 0.70, 0.85, 0.75]
    assert second.status == status and second.gain == pytest.approx(0.006)
    if acceptance == "noise":
        assert second.noise == pytest.approx(0.00678, abs=1e-4) and second.threshold == pytest.approx(second.noise)
        assert "the gain +0.006 is within the noise (threshold 0.00678" in second.lesson
    else:
        assert second.noise is None and second.threshold == 0.0
