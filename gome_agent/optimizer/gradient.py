"""The gradient: a structured diagnosis of the current best solution, and the choice of a direction.

The LLM returns observations, the limiting problem and up to k candidate
directions, each scored 1-10 on five criteria (as in the reference
implementation). The direction taken is the candidate with the best weighted
score, plus momentum (similar successes recorded anywhere in the run) minus a
penalty for repeating what this trace already tried without success.

A small model gets the compact form (prompts/function_gradient.j2, `parse_compact`): the limiting
problem and its directions as plain lines, best first, with no scores; the listed order stands in
for the weighted score (`LISTED_BASE`, `LISTED_STEP`), and momentum and the repeat penalty apply as
for the full form.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field

from gome_agent.optimizer.similarity import TextIndex, max_similarity

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
# A compact diagnosis's directions, best first: the first gets a middling weighted score, each next one
# a little less, so that momentum (up to `momentum_weight`, 2 points) and the repeat penalty (up to 3)
# can still reorder them.
LISTED_BASE, LISTED_STEP = 6.0, 0.5
MAX_CANDIDATES = 5


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
    scores: DirectionScores | None = None  # None in the compact form: its order ranks it

    def base(self, position: int) -> float:
        """Its own score before momentum and the repeat penalty: the weighted scores, or (compact form)
        one from its place in the list."""
        if self.scores is not None:
            return self.scores.weighted()
        return LISTED_BASE - LISTED_STEP * position


class Gradient(BaseModel):
    """The structured diagnosis returned by the `gradient` prompt."""

    observations: list[Annotated[str, Field(max_length=1500)]] = Field(default_factory=list, max_length=12)
    limiting_problem: str = Field(min_length=3, max_length=3000)
    candidates: list[Direction] = Field(min_length=1, max_length=MAX_CANDIDATES)


class RankedDirection(BaseModel):
    """How a candidate ranked: its own score, momentum and repetition penalty, and why."""

    hypothesis: str
    component: str
    base: float
    momentum: float
    repeat: float
    total: float
    notes: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Tried:
    """A step of the trace that did not improve: what it tried and how it ended."""

    step: int
    hypothesis: str
    status: Literal["rejected", "failed"]
    cause: str = ""  # for a failed step, why it failed (the exception, the contract problem)


@dataclass(frozen=True)
class InCode:
    """An accepted step of the trace: its change is in the current code."""

    step: int
    hypothesis: str


SIMILAR = 0.5  # TF-IDF cosine at which two hypotheses count as the same change
_RELATED = 0.1  # below this, a tried step has nothing to do with a candidate
# Words by which a direction says it repairs what went wrong rather than tries the idea afresh.
_FIX_WORDS = re.compile(
    r"\b(fix\w*|retry\w*|repair\w*|correct\w*|resolv\w*|handl\w*|avoid\w*|encod\w*|convert\w*|cast\w*|"
    r"drop\w*|exclud\w*|impute\w*|install\w*|replac\w*|without|instead)\b",
    re.IGNORECASE,
)
# Words by which it says what it repairs is a failure.
_FAILURE_WORDS = re.compile(r"\b(error\w*|fail\w*|bug\w*|crash\w*|exception\w*|broke\w*)\b", re.IGNORECASE)


def _fixes(direction: Direction, tried: Tried) -> bool:
    """Whether `direction` claims to repair the reason `tried` failed, in words of that reason."""
    if tried.status != "failed" or not tried.cause:
        return False
    text = f"{direction.hypothesis} {direction.reasoning}"
    names_it = bool(_FAILURE_WORDS.search(text)) or max_similarity(text, [tried.cause]) > 0.05
    return bool(_FIX_WORDS.search(text)) and names_it


def _repeat(direction: Direction, tried: list[Tried], sims: list[float]) -> tuple[float, list[str]]:
    """How much `direction` repeats a change that already did not work (0..1), and why; `sims[i]`
    is its similarity to `tried[i]`."""
    alike = sorted(((t, sim) for t, sim in zip(tried, sims, strict=True) if sim >= _RELATED), key=lambda x: -x[1])
    worst, notes = 0.0, []
    for t, sim in alike:
        same_reason = [u for u, _ in alike if u.status == "failed" and u.cause and u.cause == t.cause]
        if _fixes(direction, t) and len(same_reason) < 2:
            notes.append(f"not a repeat: fixes why step {t.step} failed ({t.cause[:120]})")
            continue
        if sim > worst:
            worst = sim
            why = "scored no better" if t.status == "rejected" else f"failed: {t.cause[:120] or 'see its lesson'}"
            again = f", as {len(same_reason)} similar steps did" if len(same_reason) >= 2 else ""
            notes.append(f"repeats step {t.step} ({why}{again}; similarity {sim:.2f})")
    return worst, notes


def select_direction(
    gradient: Gradient,
    *,
    support: list[float],
    tried: list[Tried],
    in_code: Sequence[InCode] = (),
    momentum_weight: float,
    repeat_penalty: float,
) -> tuple[Direction, list[RankedDirection]]:
    """The candidate to apply, and the ranking of all candidates with the reasons for each term.

    `support[i]` is candidate i's age-decayed similarity to recorded successes. Momentum is not
    given to a candidate that re-proposes what the current code already holds (`in_code`). The
    repeat penalty hits a candidate like a step in `tried`, unless that step failed and the
    candidate says how it repairs that failure (and no two similar steps already failed the same way).
    """
    index = TextIndex([t.hypothesis for t in tried]) if tried else None
    present = TextIndex([c.hypothesis for c in in_code]) if in_code else None
    ranking = []
    for cand, sup in zip(gradient.candidates, support, strict=True):
        base = cand.base(len(ranking))
        notes: list[str] = []
        bonus = momentum_weight * sup
        if present is not None and bonus:
            sims = present.query(cand.hypothesis)
            best = max(range(len(sims)), key=lambda i: sims[i])
            if sims[best] >= SIMILAR:
                notes.append(f"no momentum: the current code already has this (step {in_code[best].step}: "
                             f"{in_code[best].hypothesis[:80]})")
                bonus = 0.0
        if bonus:
            notes.append(f"momentum +{bonus:.2f}: like successes in the run's memory")
        rep, rep_notes = _repeat(cand, tried, index.query(cand.hypothesis) if index else [])
        penalty = repeat_penalty * rep
        notes += rep_notes
        ranking.append(
            RankedDirection(
                hypothesis=cand.hypothesis,
                component=cand.component,
                base=round(base, 4),
                momentum=round(bonus, 4),
                repeat=round(penalty, 4),
                total=round(base + bonus - penalty, 4),
                notes=notes,
            )
        )
    best = max(range(len(ranking)), key=lambda i: (ranking[i].total, -i))
    return gradient.candidates[best], ranking


def only_repeats(gradient: Gradient, tried: list[Tried]) -> bool:
    """Whether every candidate repeats a change in `tried` as the repeat penalty sees it (as alike as
    `SIMILAR`, and not a repair of why it failed)."""
    if not tried:
        return False
    index = TextIndex([t.hypothesis for t in tried])
    return all(_repeat(c, tried, index.query(c.hypothesis))[0] >= SIMILAR for c in gradient.candidates)


# The compact form ---------------------------------------------------------------------

_PROBLEM = re.compile(r"^[#*\s]*(?:the\s+)?(?:limiting\s+)?problem[*\s]*[:\-]\s*(?P<text>.+)$", re.IGNORECASE)
_LISTED = re.compile(r"^\s*(?:\d{1,2}\s*[.):]|[-*\u2022])\s+(?P<text>.+)$")
# An outcome a small model copied back with a line of the "changes tried before" list
# (`Basis.tried_changes`): "... - rejected (0.48297)", "...: failed: KeyError ...", once or chained.
_ECHOED_OUTCOME = re.compile(r"\s*[-:\u2013]\s*(?:rejected|accepted|failed|error)\s*(?:\(|:|$).*$", re.IGNORECASE)
_TAG = re.compile(r"^[\[(](?P<tag>[A-Za-z ]{2,24})[\])]\s*[:\-]?\s*")
# For an untagged direction, the component its words name (first match wins: "scale the features" is
# data); else "model".
_COMPONENT_WORDS = (
    ("ensemble", re.compile(r"\b(ensembl\w*|blend\w*|averag\w*|stack\w*|vot\w*)\b", re.IGNORECASE)),
    ("data", re.compile(r"\b(scal\w*|standardi\w*|normali\w*|encod\w*|imput\w*|outlier\w*|clip\w*)\b",
                        re.IGNORECASE)),
    ("features", re.compile(r"\b(feature\w*|interaction\w*|polynomial|ratio\w*)\b", re.IGNORECASE)),
)
HYPOTHESIS_CHARS = 300
NOT_STATED = "(the reply stated no problem)"


def _listed_component(text: str) -> tuple[str, Component]:
    """A listed direction's text without its `[component]` tag, and its component."""
    tagged = _TAG.match(text)
    if tagged is not None:
        component = _component(tagged.group("tag"))
        if component in COMPONENTS:
            return text[tagged.end():].strip(), component  # type: ignore[return-value]
    for name, words in _COMPONENT_WORDS:
        if words.search(text):
            return text, name  # type: ignore[return-value]
    return text, "model"


def parse_compact(text: str, k: int) -> Gradient:
    """A compact diagnosis (prompts/function_gradient.j2) as a Gradient: a `Problem:` line (else the first
    line that is not a direction) and up to `k` listed directions, best first, without an outcome copied
    from the prompt's list of tried changes, repeats dropped (a small model that loops lists the same
    line again). Raises ValueError saying what the reply lacks."""
    problem, directions, seen = "", [], set()
    for raw in text.splitlines():
        line = raw.replace("**", "").strip().strip("`").strip()  # markdown bold around tags and labels
        if not line:
            continue
        stated = _PROBLEM.match(line)
        listed = _LISTED.match(line)
        if stated is not None and not problem:
            problem = stated.group("text").strip()
        elif listed is not None:
            body, component = _listed_component(listed.group("text").strip())
            body = _ECHOED_OUTCOME.sub("", body).strip()
            key = re.sub(r"\W+", " ", body.lower()).strip()
            if len(key) >= 3 and key not in seen and key != re.sub(r"\W+", " ", problem.lower()).strip():
                seen.add(key)
                directions.append(Direction(hypothesis=body[:HYPOTHESIS_CHARS], reasoning="", expected_impact="",
                                            component=component))
        elif not problem and not directions and len(line) >= 3 and not line.lower().startswith("python"):
            problem = line
    if not directions:
        raise ValueError("the reply lists no direction: write each change on its own numbered line, "
                         "such as `1. [model] use HistGradientBoostingClassifier(max_iter=300)`")
    if len(problem) < 3:
        problem = NOT_STATED
    return Gradient(observations=[], limiting_problem=problem[:HYPOTHESIS_CHARS], candidates=directions[:k])
