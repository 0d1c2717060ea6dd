"""`gome bench validation`: can noise, a leak or a self-inflated score fool the acceptance rule?

Real runs (real executor, real solution code, the scripted LLM choosing the changes) on a
synthetic binary-classification competition whose private test labels give every step's true
quality. Each run is a draft followed by a shuffled schedule of updates of five kinds:

- honest: two more informative features, a pair not tried before (as an agent that learns from a
  rejected step tries another idea); validated out of fold on gome's folds, reported truly;
- leak: an unpruned tree fitted on every training row and scored on the rows it was fitted on
  (it reports about 1.0; its true quality is far below the logistic model's);
- train-rows: the best's model, scored on the rows it was fitted on (a small self-inflation);
- noise: the best's model unchanged, scored out of fold on a shuffle of its own and claimed as
  gome's folds (the same predictions, so the same true quality, with a noisy claim: the issue's
  "pure noise around a fixed quality");
- retune: the best's model with another regularisation strength, scored on one random split of its
  own (a real change whose true effect is a hair either way, with a noisy claim).

Every schedule is run under two protocols, the same LLM replies for both:
- old: the solutions' own scores (`validation.scoring = "self-reported"`) and the paper's plain
  rule (`optimizer.acceptance = "plain"`, any gain is accepted);
- new: gome scores held-out rows itself (`"gome"`) and a gain must beat the noise (`"noise"`).

A spurious acceptance is an accepted leak, train-rows or noise update; a retune is not spurious
(its true effect is real, if tiny) and has a scenario of its own. The final submission is
the run's best in place (no final-selection re-runs, so that the acceptance rule alone decides;
under the new protocol, refitted on every labelled row as every gome-scored run does), graded on
the private test labels. Goals (issue #13): no leak, train-rows or noise step is ever accepted
under the new protocol, and its final submission's true quality is at least the old one's in every
seed of the leak, train-rows and noise scenarios. Each case also reports the new minus the old
final's true AUC with a 95 % paired bootstrap interval over the private test rows
(`paired_interval`), so that a difference the 1,500 test rows cannot resolve is shown as such; in
the retune scenario, whose updates change the truth by hairs either way, the check is that the new
protocol's final is never significantly worse (the interval's upper end is not below zero).
"""

from __future__ import annotations

import json
import random
import re
import statistics
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sklearn.datasets import make_classification
from sklearn.metrics import roc_auc_score

from gome_agent.bench.competitions import Competition, CompetitionSpec, build_competition
from gome_agent.bench.grading import read_answers, score_csv
from gome_agent.bench.scripted import template_of
from gome_agent.config import RunConfig
from gome_agent.llm.client import LLMClient
from gome_agent.llm.config import LLMConfig
from gome_agent.llm.providers.scripted import ScriptedProvider
from gome_agent.llm.types import Message
from gome_agent.records.events import EventLog, Refit, StepRecord
from gome_agent.run.coordinator import run

Kind = Literal["honest", "leak", "train-rows", "noise", "retune"]
Protocol = Literal["old", "new"]
SPURIOUS: tuple[Kind, ...] = ("leak", "train-rows", "noise")
SCENARIOS: dict[str, tuple[Kind, ...]] = {
    # Each scenario: three honest updates and four of one spurious kind, shuffled per seed.
    "leak": ("honest",) * 3 + ("leak",) * 4,
    "train-rows": ("honest",) * 3 + ("train-rows",) * 4,
    "noise": ("honest",) * 3 + ("noise",) * 4,
    "retune": ("honest",) * 3 + ("retune",) * 4,
}
PROTOCOLS: dict[Protocol, dict[str, dict[str, object]]] = {
    "old": {"validation": {"scoring": "self-reported"}, "optimizer": {"acceptance": "plain"}},
    "new": {"validation": {"scoring": "gome"}, "optimizer": {"acceptance": "noise"}},
}
INFORMATIVE = 8  # x0 ... x7 carry the signal; each honest update adds a pair of them

ANALYSIS = {
    "goal": "Predict the probability that each row belongs to class 1.",
    "task_type": "binary classification",
    "metric_name": "ROC AUC",
    "higher_is_better": True,
    "direction_evidence": "Submissions are scored with the area under the ROC curve (AUC). Higher is better.",
    "id_column": "id",
    "target_columns": ["target"],
    "submission_format": "One row per test id with the probability of class 1.",
}

SOLUTION = '''import json
import os

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.tree import DecisionTreeClassifier

PLAN = {plan}
SEED = int(os.environ.get("GOME_SEED", "0"))

train = pd.read_csv("input/train.csv")
test = pd.read_csv("input/test.csv")
features = [f"x{{i}}" for i in PLAN["features"]]
X, y = train[features].to_numpy(), train["target"].to_numpy()


def new_model():
    if PLAN["model"] == "tree":
        return DecisionTreeClassifier(random_state=SEED)  # unpruned: it memorises its rows
    return LogisticRegression(C=PLAN["c"], max_iter=2000)


if os.environ.get("GOME_FOLDS"):
    fold = pd.read_csv(os.environ["GOME_FOLDS"]).set_index("id").loc[train["id"], "fold"].to_numpy()
else:
    fold = np.zeros(len(y), dtype=int)
    for k, (_, rows) in enumerate(StratifiedKFold(5, shuffle=True, random_state=SEED).split(X, y)):
        fold[rows] = k
folds = []
for k in sorted(set(fold)):
    fitted = new_model().fit(X[fold != k], y[fold != k])
    folds.append(float(roc_auc_score(y[fold == k], fitted.predict_proba(X[fold == k])[:, 1])))
model = new_model().fit(X, y)
if PLAN["report"] == "train":  # scored on the rows it was fitted on
    report = {{"score": float(roc_auc_score(y, model.predict_proba(X)[:, 1]))}}
elif PLAN["report"] == "own-folds":  # the same model out of fold on a shuffle of its own, claimed as gome's
    own = [float(roc_auc_score(y[rows], new_model().fit(X[fit], y[fit]).predict_proba(X[rows])[:, 1]))
           for fit, rows in StratifiedKFold(len(folds), shuffle=True, random_state=PLAN["split_seed"]).split(X, y)]
    report = {{"score": float(np.mean(own)), "folds": own}}
elif PLAN["report"] == "split":  # one random split of its own
    Xa, Xb, ya, yb = train_test_split(X, y, test_size=0.2, random_state=PLAN["split_seed"], stratify=y)
    report = {{"score": float(roc_auc_score(yb, new_model().fit(Xa, ya).predict_proba(Xb)[:, 1]))}}
else:
    report = {{"score": float(np.mean(folds)), "folds": folds}}
pd.DataFrame({{"id": test["id"], "target": model.predict_proba(test[features])[:, 1]}}).to_csv(
    "submission.csv", index=False)
if os.environ.get("GOME_HOLDOUT"):
    held = pd.read_csv(os.environ["GOME_HOLDOUT"])
    pd.DataFrame({{"id": held["id"], "target": model.predict_proba(held[features])[:, 1]}}).to_csv(
        os.environ["GOME_HOLDOUT_PREDICTIONS"], index=False)
json.dump(report, open("scores.json", "w"))
print("validation", report["score"])
'''

DRAFT_PLAN = {"features": [0, 1], "model": "logistic", "c": 1.0, "report": "folds", "split_seed": 0}
PAIRS = [[2, 3], [4, 5], [6, 7]]  # the honest updates' feature pairs, in the order they are tried
_REASK = "That reply could not be applied"
_PLAN_LINE = re.compile(r"^PLAN = (\{.*\})$", re.MULTILINE)
_KIND_TAG = re.compile(r"^\[(honest|leak|train-rows|noise|retune)\]")
HYPOTHESES: dict[Kind, str] = {
    "honest": "Use two more of the informative features",
    "leak": "Fit an unpruned decision tree on every training row and score it on them",
    "train-rows": "Score the model on the rows it was fitted on",
    "noise": "Check the model again on a fresh shuffle of the folds",
    "retune": "Try another regularisation strength, checked on a fresh random split",
}


def solution(plan: dict[str, object]) -> str:
    return SOLUTION.format(plan=json.dumps(plan))


def _synthetic(seed: int) -> pd.DataFrame:
    """6,000 rows, ten features of which the first eight are informative, 3% of labels flipped."""
    X, y = make_classification(n_samples=6000, n_features=10, n_informative=INFORMATIVE, n_redundant=0,
                               n_repeated=0, shuffle=False, class_sep=0.5, flip_y=0.03, random_state=seed)
    frame = pd.DataFrame(np.round(X, 5), columns=[f"x{i}" for i in range(X.shape[1])])
    frame["target"] = y
    return frame


def build_synthetic(root: Path, seed: int) -> Competition:
    spec = CompetitionSpec(
        id=f"synthetic-auc-{seed}", title="Synthetic Binary Classification",
        source=f"scikit-learn make_classification (6,000 rows, random_state={seed})", packages=("scikit-learn",),
        load=partial(_synthetic, seed), target="target", metric="roc_auc", leaderboard_size=0,
        overview="Each row is a point with ten numeric measurements. Predict the probability that it is of class 1.",
        columns="- `id`: the row's identifier.\n- `x0` ... `x9`: numeric measurements.\n"
                "- `target` (train only): the class, 0 or 1.",
        predict="the probability of class 1 (column `target`)", seed=seed,
    )
    return build_competition(spec, root)


class ScheduledPolicy:
    """The scripted LLM of one run: a draft, then the scheduled updates of the current best's PLAN."""

    def __init__(self, schedule: list[Kind], seed: int) -> None:
        self.schedule = list(schedule)
        self.rng = random.Random(seed)
        self.next = 0
        self.pairs_tried = 0

    def __call__(self, messages: list[Message], model: str) -> str:
        if messages[-1].content.startswith(_REASK) and messages[-2].role == "assistant":
            # gome re-asks a change that left the code as it was (a leak on a leak): the policy insists on
            # it, as a model sure of its idea would, and the step ends with no code run.
            return messages[-2].content
        name = template_of(messages)
        if name == "task_analysis":
            return json.dumps(ANALYSIS)
        if name == "draft":
            return f"Approach: logistic regression on two features\n```python\n{solution(DRAFT_PLAN)}```\n"
        kind = self.schedule[min(self.next, len(self.schedule) - 1)]
        if name == "gradient":
            return json.dumps({
                "observations": ["A logistic regression on a few of the features."],
                "limiting_problem": "The model sees too little of the data.",
                "candidates": [{"hypothesis": HYPOTHESES[kind], "reasoning": "It should raise the AUC.",
                                "expected_impact": "+0.02 AUC", "component": "model",
                                "scores": {"alignment": 8, "impact": 8, "novelty": 6, "feasibility": 9,
                                           "risk_reward": 7}}],
            })
        if name != "update":
            raise ValueError(f"the validation benchmark sends no {name} request (max_debug is 0)")
        self.next += 1
        match = _PLAN_LINE.search(messages[-1].content)
        if match is None:
            raise ValueError("the update prompt shows no PLAN line")
        old = json.loads(match.group(1))
        new = self.change(old, kind)
        return (f"Change: [{kind}] {HYPOTHESES[kind].lower()}\n<<<<<<< SEARCH\nPLAN = {match.group(1)}\n=======\n"
                f"PLAN = {json.dumps(new)}\n>>>>>>> REPLACE\n")

    def change(self, plan: dict[str, object], kind: Kind) -> dict[str, object]:
        plan = dict(plan)
        if kind == "honest":
            pair = PAIRS[self.pairs_tried % len(PAIRS)]
            self.pairs_tried += 1
            plan["features"] = sorted(set(plan["features"]) | set(pair))  # type: ignore[call-overload]
            plan["report"] = "folds"
        elif kind == "leak":
            plan.update(model="tree", report="train")
        elif kind == "train-rows":
            plan["report"] = "train"
        elif kind == "noise":
            plan.update(report="own-folds", split_seed=self.rng.randrange(10**6))
        else:
            plan.update(c=round(10 ** self.rng.uniform(-1.5, 1.5), 4), report="split",
                        split_seed=self.rng.randrange(10**6))
        return plan


class StepOutcome(BaseModel):
    step: int
    kind: str  # draft or an update kind
    status: str
    reported: float | None
    measured: float | None  # the score the run decided on (gome's or the solution's own)
    true: float | None  # graded on the private test labels
    threshold: float | None


class Difference(BaseModel):
    """The new protocol's final minus the old one's, in true AUC, with its 95 % paired bootstrap interval."""

    value: float
    low: float
    high: float


class RunOutcome(BaseModel):
    scenario: str
    protocol: Protocol
    seed: int
    steps: list[StepOutcome]
    final_true: float | None
    refit: str | None = None  # the refit's outcome (new protocol), None when none was made
    versus_old: Difference | None = None  # new protocol: its final against the old protocol's

    def accepted(self, kind: str) -> int:
        return sum(s.status == "accepted" and s.kind == kind for s in self.steps)

    @property
    def spurious(self) -> int:
        return sum(self.accepted(kind) for kind in SPURIOUS)


@dataclass
class Case:
    scenario: str
    seed: int
    schedule: list[Kind]


def schedules(seeds: list[int]) -> list[Case]:
    cases = []
    for scenario, kinds in SCENARIOS.items():
        for seed in seeds:
            order = list(kinds)
            random.Random(f"{scenario}-{seed}").shuffle(order)
            cases.append(Case(scenario, seed, order))
    return cases


def _kind(record: StepRecord) -> str:
    if record.kind == "draft":
        return "draft"
    match = _KIND_TAG.match(record.change or "")
    return match.group(1) if match else "unknown"


def run_case(case: Case, protocol: Protocol, competition: Competition, workdir: Path) -> RunOutcome:
    settings = PROTOCOLS[protocol]
    config = RunConfig(
        data_dir=competition.public_dir, workdir=workdir, time_limit_s=6 * 3600, traces=1,
        final_reserve_fraction=0.0, seed=case.seed,
        llm=LLMConfig(provider="openai-compatible", base_url="http://127.0.0.1:9", model="scripted"),
        optimizer={"max_steps": len(case.schedule) + 1, "max_debug": 0, "min_improvement": 0.0,
                   **settings["optimizer"]},
        validation=settings["validation"],
        execution={"max_run_minutes": 5, "sandbox": "auto", "keep_outputs": "all"},  # every step's submission is graded
    )
    llm = LLMClient(config.llm, workdir / "llm_calls.jsonl",
                    provider=ScriptedProvider(ScheduledPolicy(case.schedule, case.seed)))
    if run(config, llm=llm).interrupted:
        # The signal (Ctrl-C, a kill) was meant for the benchmark, not only for this run.
        raise KeyboardInterrupt(f"validation benchmark run {workdir.name}: interrupted")
    answers = read_answers(competition)
    log = EventLog(workdir / "events.jsonl")
    refits = [e.outcome for e in log.read() if isinstance(e, Refit)]
    steps = []
    for record in log.steps():
        submission = workdir / record.code_dir / "submission.csv" if record.code_dir else None
        true = (score_csv(submission, competition, answers) if submission and submission.is_file()
                and record.run_status == "ok" else None)
        steps.append(StepOutcome(step=record.step, kind=_kind(record), status=record.status,
                                 reported=record.reported_score if record.scored_by == "gome" else record.score,
                                 measured=record.score, true=true, threshold=record.threshold))
    final = workdir / "submission" / "submission.csv"
    return RunOutcome(scenario=case.scenario, protocol=protocol, seed=case.seed, steps=steps,
                      final_true=score_csv(final, competition, answers) if final.is_file() else None,
                      refit=refits[-1] if refits else None)


BOOTSTRAP_DRAWS = 2000


def paired_interval(truth: np.ndarray, new: np.ndarray, old: np.ndarray, *, draws: int = BOOTSTRAP_DRAWS,
                    seed: int = 0) -> Difference:
    """AUC(new) - AUC(old) on the test rows, and the 2.5th and 97.5th percentiles of that difference over
    `draws` resamplings of the rows (the same rows for both, since both predict the same rows)."""
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(draws):
        rows = rng.integers(0, len(truth), len(truth))
        if truth[rows].min() == truth[rows].max():
            continue  # one class only: no AUC
        diffs.append(roc_auc_score(truth[rows], new[rows]) - roc_auc_score(truth[rows], old[rows]))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return Difference(value=float(roc_auc_score(truth, new) - roc_auc_score(truth, old)), low=float(low),
                      high=float(high))


def compare_finals(new: Path, old: Path, competition: Competition) -> Difference | None:
    """The two runs' final submissions compared on the private test rows; None if either has none."""
    new_file, old_file = new / "submission" / "submission.csv", old / "submission" / "submission.csv"
    if not (new_file.is_file() and old_file.is_file()):
        return None
    answers = pd.read_csv(competition.answers_path)
    frames = [pd.read_csv(f).set_index("id").loc[answers["id"], "target"].to_numpy(dtype=float)
              for f in (new_file, old_file)]
    return paired_interval(answers["target"].to_numpy(), *frames)


def measure(seeds: list[int], workdir: Path) -> list[RunOutcome]:
    outcomes = []
    competitions = {seed: build_synthetic(workdir / "competitions" / str(seed), seed) for seed in seeds}
    for case in schedules(seeds):
        folders = {protocol: workdir / "runs" / f"{case.scenario}-s{case.seed}-{protocol}" for protocol in PROTOCOLS}
        done = {protocol: run_case(case, protocol, competitions[case.seed], folders[protocol])
                for protocol in PROTOCOLS}
        done["new"].versus_old = compare_finals(folders["new"], folders["old"], competitions[case.seed])
        outcomes += done.values()
    return outcomes


def summarize(outcomes: list[RunOutcome]) -> dict[str, object]:
    """Per scenario and protocol: accepted updates by kind, final true quality; and the goals."""
    rows = []
    for scenario in SCENARIOS:
        for protocol in PROTOCOLS:
            mine = [o for o in outcomes if o.scenario == scenario and o.protocol == protocol]
            if not mine:
                continue
            finals = [o.final_true for o in mine if o.final_true is not None]
            rows.append({
                "scenario": scenario, "protocol": protocol, "runs": len(mine),
                "honest_accepted": sum(o.accepted("honest") for o in mine),
                "honest_offered": sum(s.kind == "honest" for o in mine for s in o.steps),
                # the updates of the scenario's own kind (spurious but for retune)
                "kind_accepted": sum(o.accepted(scenario) for o in mine),
                "kind_offered": sum(s.kind == scenario for o in mine for s in o.steps),
                "final_true_mean": round(statistics.fmean(finals), 4) if finals else None,
                "final_true_by_seed": {o.seed: None if o.final_true is None else round(o.final_true, 4) for o in mine},
            })
    new = [o for o in outcomes if o.protocol == "new"]
    by_case = {(o.scenario, o.seed, o.protocol): o for o in outcomes}
    not_worse = all(
        o.final_true is not None and (old := by_case.get((o.scenario, o.seed, "old"))) is not None
        and (old.final_true is None or o.final_true >= old.final_true - 1e-12)
        for o in new if o.scenario in SPURIOUS
    )
    # A retune's true effect is a hair either way: the new protocol may miss one the old took by luck,
    # but must not end significantly worse on the test rows.
    retune_not_worse = all(o.final_true is not None and (o.versus_old is None or o.versus_old.high >= 0)
                           for o in new if o.scenario == "retune")
    return {
        "rows": rows,
        "new_minus_old": [{"scenario": o.scenario, "seed": o.seed, **o.versus_old.model_dump()}
                          for o in new if o.versus_old is not None],
        "goals": {
            "no_leak_inflated_or_noise_step_accepted_under_new": all(o.spurious == 0 for o in new),
            "new_final_true_quality_at_least_old_in_every_case": not_worse,
            "retune_new_final_never_significantly_below_old": retune_not_worse,
        },
    }


def table(summary: dict[str, object]) -> str:
    """The summary as a Markdown table (docs/benchmarks.md)."""
    lines = ["| scenario | protocol | honest accepted | scenario's kind accepted | final true AUC (mean) | by seed |",
             "|---|---|---|---|---|---|"]
    for row in summary["rows"]:  # type: ignore[attr-defined]
        seeds = ", ".join(f"{v:.4f}" if v is not None else "none" for v in row["final_true_by_seed"].values())
        lines.append(f"| {row['scenario']} | {row['protocol']} | {row['honest_accepted']}/{row['honest_offered']} | "
                     f"{row['kind_accepted']}/{row['kind_offered']} | {row['final_true_mean']} | {seeds} |")
    differences = [d for d in summary.get("new_minus_old", []) if d["value"] != 0]  # type: ignore[attr-defined]
    if differences:
        lines += ["", "| scenario | seed | new - old, true AUC | 95 % paired bootstrap interval |", "|---|---|---|---|"]
        lines += [f"| {d['scenario']} | {d['seed']} | {d['value']:+.5f} | [{d['low']:+.5f}, {d['high']:+.5f}] |"
                  for d in differences]
    return "\n".join(lines)


def main(seeds: list[int], out: Path | None = None) -> int:
    def go(folder: Path) -> dict[str, object]:
        outcomes = measure(seeds, folder)
        (folder / "outcomes.jsonl").write_text("".join(o.model_dump_json() + "\n" for o in outcomes), encoding="utf-8")
        return summarize(outcomes)

    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        summary = go(out)
    else:
        with tempfile.TemporaryDirectory(prefix="gome-bench-") as tmp:
            summary = go(Path(tmp))
    print(json.dumps(summary, indent=2))
    print()
    print(table(summary))
    goals = summary["goals"]
    return 0 if all(goals.values()) else 1  # type: ignore[attr-defined]
