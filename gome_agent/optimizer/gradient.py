"""The gradient: a structured diagnosis of the current best solution, and the choice of a direction.

The LLM returns observations, the limiting problem and up to k candidate
directions, each scored 1-10 on five criteria (as in the reference
implementation). The direction taken is the candidate with the best weighted
score, plus momentum (similar successes recorded anywhere in the run) minus a
penalty for repeating what this trace already tried without success.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field

from gome_agent.optimizer.similarity import TextIndex

COMPONENTS = ("data", "features", "model", "ensemble", "workflow")
Component = Literal["data", "features", "model", "ensemble", "workflow"]

_COMPONENT_ALIASES = {
    "dataloadspec": "data",
    "data loading": "data",
    "preprocessing": "data",
    "featureeng": "features",
    "feature engineering": "features",
    "feature": "features",
    "models": "model",
    "training": "model",
    "architecture": "model",
    "ensembling": "ensemble",
    "blend": "ensemble",
    "blending": "ensemble",
    "pipeline": "workflow",
    "validation": "workflow",
    "efficiency": "workflow",
    "postprocessing": "workflow",
}

# The reference implementation's ranking weights.
WEIGHTS = {"alignment": 0.2, "impact": 0.4, "novelty": 0.2, "feasibility": 0.1, "risk_reward": 0.1}


def _component(value: object) -> object:
    if isinstance(value, str):
        key = value.strip().lower()
        return _COMPONENT_ALIASES.get(key, key)
    return value


def _clamp_score(value: object) -> object:
    # Models sometimes answer 0 or 11; the scale matters, not the exact edge.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return min(10, max(1, round(value)))
    return value


Score = Annotated[int, BeforeValidator(_clamp_score), Field(ge=1, le=10)]


class DirectionScores(BaseModel):
    alignment: Score
    impact: Score
    novelty: Score
    feasibility: Score
    risk_reward: Score

    def weighted(self) -> float:
        return sum(getattr(self, name) * w for name, w in WEIGHTS.items())


class Direction(BaseModel):
    """One direction: a single, testable code change."""

    hypothesis: str = Field(min_length=3, max_length=1500)
    reasoning: str = Field(max_length=3000)
    expected_impact: str = Field(max_length=600)
    component: Annotated[Component, BeforeValidator(_component)]
    scores: DirectionScores


class Gradient(BaseModel):
    """The structured diagnosis returned by the `gradient` prompt."""

    observations: list[Annotated[str, Field(max_length=1500)]] = Field(default_factory=list, max_length=12)
    limiting_problem: str = Field(min_length=3, max_length=3000)
    candidates: list[Direction] = Field(min_length=1, max_length=5)


class RankedDirection(BaseModel):
    """How a candidate ranked: its own score, momentum and repetition penalty."""

    hypothesis: str
    component: str
    base: float
    momentum: float
    repeat: float
    total: float


def select_direction(
    gradient: Gradient,
    *,
    support: list[float],
    tried: list[str],
    momentum_weight: float,
    repeat_penalty: float,
) -> tuple[Direction, list[RankedDirection]]:
    """The candidate to apply, and the ranking of all candidates.

    `support[i]` is candidate i's age-decayed similarity to recorded successes;
    `tried` holds hypotheses this trace already ran without being accepted.
    """
    repeats = [0.0] * len(gradient.candidates)
    if tried:
        index = TextIndex(tried)
        repeats = [max(index.query(c.hypothesis)) for c in gradient.candidates]
    ranking = []
    for cand, sup, rep in zip(gradient.candidates, support, repeats, strict=True):
        base = cand.scores.weighted()
        bonus = momentum_weight * sup
        penalty = repeat_penalty * rep
        ranking.append(
            RankedDirection(
                hypothesis=cand.hypothesis,
                component=cand.component,
                base=round(base, 4),
                momentum=round(bonus, 4),
                repeat=round(penalty, 4),
                total=round(base + bonus - penalty, 4),
            )
        )
    best = max(range(len(ranking)), key=lambda i: (ranking[i].total, -i))
    return gradient.candidates[best], ranking
