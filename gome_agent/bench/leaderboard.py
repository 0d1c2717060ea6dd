"""Leaderboards for the offline benchmark, made by running reference solutions.

MLE-bench places a submission among the teams of a real Kaggle leaderboard. These
competitions never ran on Kaggle, so their teams are reference solutions of
deliberately spread quality: constant guesses, models on a few features, linear
models with strong and weak regularisation, shallow and deep trees, forests and
gradient boosting of different sizes, nearest neighbours, each trained on
different fractions of the training set with different seeds. Every one reads
only the public train/test files, writes a submission in the sample's format,
and is scored on the private answers by the same grader as any agent. The rows,
best first, form `leaderboard.csv` in MLE-bench's columns; `leaderboard_meta.json`
records how each row was made.
"""

from __future__ import annotations

import io
import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from joblib import Parallel, delayed
from pydantic import BaseModel
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB, MultinomialNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from threadpoolctl import threadpool_limits

from gome_agent.bench.competitions import Competition, CompetitionSpec
from gome_agent.bench.grading import (
    SCORE_DECIMALS,
    InvalidSubmission,
    check_leaderboard,
    read_answers,
    read_submission,
    score_frames,
)
from gome_agent.errors import TaskError

log = logging.getLogger(__name__)

LEADERBOARD_COLUMNS = ["scoreNullable", "teamId", "hasTeamName", "submissionDate", "score", "hasScore"]
_FIRST_TEAM_ID = 1001
_FIRST_SUBMISSION = datetime(2025, 1, 6, 9, 0, 0)
# Fractions of the training set in the first round; later rounds draw their own.
_FIRST_FRACTIONS = (1.0, 0.5, 0.2)
_MANY_CLASSES = 10

Params = dict[str, Any]


@dataclass(frozen=True)
class ReferenceSolution:
    """One team: a model family with its settings, trained on a fraction of train.csv with a seed."""

    family: str
    params: Params = field(default_factory=dict)
    train_fraction: float = 1.0
    seed: int = 0

    def describe(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.family}({settings}) on {self.train_fraction:.0%} of train, seed {self.seed}"


class LeaderboardRow(BaseModel):
    rank: int
    team_id: int
    family: str
    params: Params
    train_fraction: float
    seed: int
    score: float
    seconds: float


class LeaderboardMeta(BaseModel):
    """How `leaderboard.csv` was made (`leaderboard_meta.json`): one entry per row, in the same order."""

    competition_id: str
    metric: str
    is_lower_better: bool
    n_teams: int
    sklearn_version: str
    rows: list[LeaderboardRow]


# ---------------------------------------------------------------------------------------------
# The zoo of model settings.

_CLASSIFIER_ZOO: list[tuple[str, Params]] = [
    ("prior", {}),
    *[("few_features_logreg", {"features": k}) for k in (1, 3)],
    ("few_features_tree", {"features": 3, "max_depth": 4}),
    *[("logreg", {"C": c}) for c in (0.01, 0.1, 1.0, 10.0)],
    *[("knn", {"k": k}) for k in (1, 5, 25)],
    *[("tree", {"max_depth": d}) for d in (2, 4, 8, None)],
    ("random_forest", {"n_estimators": 30, "max_depth": 6}),
    ("random_forest", {"n_estimators": 100, "max_depth": None}),
    ("extra_trees", {"n_estimators": 100}),
    ("hist_gbm", {"max_iter": 40, "learning_rate": 0.1}),
    ("hist_gbm", {"max_iter": 100, "learning_rate": 0.05}),
    ("naive_bayes", {}),
]
_TEXT_ZOO: list[tuple[str, Params]] = [
    ("prior", {}),
    *[("tfidf_logreg", {"C": c, "vocabulary": v}) for c in (0.1, 1.0, 10.0) for v in (200, 5000)],
    *[("tfidf_naive_bayes", {"alpha": a}) for a in (0.1, 1.0)],
    *[("tfidf_knn", {"k": k}) for k in (5, 25)],
    *[("tfidf_tree", {"max_depth": d}) for d in (4, 16)],
    ("tfidf_random_forest", {"n_estimators": 60}),
]
_REGRESSOR_ZOO: list[tuple[str, Params]] = [
    ("mean", {}),
    ("median", {}),
    *[("few_features_ridge", {"features": k}) for k in (1, 3)],
    ("few_features_tree", {"features": 3, "max_depth": 4}),
    *[("ridge", {"alpha": a, "log_target": lt}) for a in (0.1, 10.0, 1000.0) for lt in (False, True)],
    *[("knn", {"k": k}) for k in (1, 5, 25)],
    *[("tree", {"max_depth": d}) for d in (2, 4, 8, None)],
    ("random_forest", {"n_estimators": 30, "max_depth": 6}),
    ("random_forest", {"n_estimators": 100, "max_depth": None}),
    ("extra_trees", {"n_estimators": 100}),
    *[("hist_gbm", {"max_iter": 40, "learning_rate": 0.1, "log_target": lt}) for lt in (False, True)],
    ("hist_gbm", {"max_iter": 100, "learning_rate": 0.05, "log_target": False}),
]


def _zoo(spec: CompetitionSpec) -> list[tuple[str, Params]]:
    if spec.text_column is not None:
        return _TEXT_ZOO
    return _REGRESSOR_ZOO if spec.kind == "regression" else _CLASSIFIER_ZOO


def reference_solutions(spec: CompetitionSpec, size: int, n_classes: int = 2) -> list[ReferenceSolution]:
    """`size` teams: round after round of every zoo entry at a few training fractions, in a seeded order."""
    zoo = [(family, _scaled(family, params, n_classes)) for family, params in _zoo(spec)]
    solutions: list[ReferenceSolution] = []
    round_ = 0
    while True:
        fractions = _FIRST_FRACTIONS if round_ == 0 else _drawn_fractions(round_)
        candidates = [ReferenceSolution(family, params, fraction, round_)
                      for fraction in fractions for family, params in zoo]
        for i in np.random.default_rng(round_).permutation(len(candidates)):
            solutions.append(candidates[i])
            if len(solutions) == size:
                return solutions
        round_ += 1


def _scaled(family: str, params: Params, n_classes: int) -> Params:
    """Boosting fits one tree per class and round: with many classes, fewer rounds keep the cost in bounds."""
    if family != "hist_gbm" or n_classes <= _MANY_CLASSES:
        return params
    return {**params, "max_iter": max(5, params["max_iter"] * _MANY_CLASSES // n_classes)}


def _drawn_fractions(round_: int) -> tuple[float, ...]:
    rng = np.random.default_rng(10_000 + round_)
    return tuple(float(f) for f in np.round(rng.uniform(0.1, 0.95, size=len(_FIRST_FRACTIONS)), 2))


# ---------------------------------------------------------------------------------------------
# Running one solution.


@dataclass(frozen=True)
class PublicData:
    """The public files, split into what a solution trains and predicts on."""

    spec: CompetitionSpec
    x_train: pd.DataFrame
    y_train: pd.Series
    x_test: pd.DataFrame
    test_ids: pd.Series
    submission_columns: list[str]

    @property
    def numeric(self) -> list[str]:
        return [c for c in self.x_train.columns if pd.api.types.is_numeric_dtype(self.x_train[c])]

    @property
    def categorical(self) -> list[str]:
        numeric = set(self.numeric)
        return [c for c in self.x_train.columns if c not in numeric and c != self.spec.text_column]


def read_public(competition: Competition) -> PublicData:
    """What every reference solution starts from: the public files only."""
    spec = competition.spec
    train = pd.read_csv(competition.public_dir / "train.csv")
    test = pd.read_csv(competition.public_dir / "test.csv")
    sample = pd.read_csv(competition.sample_path, nrows=1)
    y = train.pop(spec.target)
    train = train.drop(columns=[spec.id_column])
    ids = test.pop(spec.id_column)
    return PublicData(spec, train, y, test[train.columns], ids, [str(c) for c in sample.columns])


def _subsample(data: PublicData, fraction: float, seed: int) -> np.ndarray:
    """Row positions of a subsample; classification keeps at least one example of every class."""
    rng = np.random.default_rng(seed)
    n = len(data.y_train)
    if fraction >= 1:
        return np.arange(n)
    if data.spec.kind == "regression":
        return np.sort(rng.choice(n, size=max(10, int(round(fraction * n))), replace=False))
    chosen = []
    for label in sorted(data.y_train.unique()):
        members = np.flatnonzero(data.y_train.to_numpy() == label)
        take = max(1, int(round(fraction * len(members))))
        chosen.append(rng.choice(members, size=take, replace=False))
    return np.sort(np.concatenate(chosen))


def _tabular_features(data: PublicData, columns: list[str] | None, scale: bool) -> ColumnTransformer:
    numeric = [c for c in data.numeric if columns is None or c in columns]
    categorical = [c for c in data.categorical if columns is None or c in columns]
    numeric_steps: list[Any] = [SimpleImputer(strategy="median")]
    if scale:
        numeric_steps.append(StandardScaler())
    return ColumnTransformer([
        ("numeric", make_pipeline(*numeric_steps), numeric),
        ("categorical", make_pipeline(
            SimpleImputer(strategy="constant", fill_value="missing"),
            OneHotEncoder(handle_unknown="ignore", min_frequency=10, sparse_output=False),
        ), categorical),
    ])


def _text_features(data: PublicData, vocabulary: int | None) -> ColumnTransformer:
    return ColumnTransformer([
        ("text", TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=vocabulary, sublinear_tf=True),
         data.spec.text_column),
    ])


def _few_columns(data: PublicData, count: int, seed: int) -> list[str]:
    names = list(data.x_train.columns)
    return [names[i] for i in np.random.default_rng(seed).choice(len(names), size=min(count, len(names)),
                                                                  replace=False)]


def _log_target(model: BaseEstimator, enabled: bool) -> BaseEstimator:
    if not enabled:
        return model
    # log1p keeps a price-like target's errors relative; clipping stops expm1 from overflowing.
    return TransformedTargetRegressor(regressor=model, func=np.log1p,
                                      inverse_func=lambda z: np.expm1(np.clip(z, -20, 30)))


def _pipeline(solution: ReferenceSolution, data: PublicData, n_rows: int) -> BaseEstimator:
    """The model of a solution with its preprocessing, ready to fit."""
    p, seed = solution.params, solution.seed
    regression = data.spec.kind == "regression"
    k = min(int(p.get("k", 1)), n_rows)
    match solution.family:
        case "prior":
            return DummyClassifier(strategy="prior")
        case "mean" | "median":
            return DummyRegressor(strategy=solution.family)
        case "few_features_logreg":
            return make_pipeline(_tabular_features(data, _few_columns(data, p["features"], seed), True),
                                 LogisticRegression(max_iter=300))
        case "few_features_ridge":
            return make_pipeline(_tabular_features(data, _few_columns(data, p["features"], seed), True), Ridge())
        case "few_features_tree":
            tree_class = DecisionTreeRegressor if regression else DecisionTreeClassifier
            return make_pipeline(_tabular_features(data, _few_columns(data, p["features"], seed), False),
                                 tree_class(max_depth=p["max_depth"], random_state=seed))
        case "logreg":
            return make_pipeline(_tabular_features(data, None, True), LogisticRegression(C=p["C"], max_iter=300))
        case "ridge":
            return make_pipeline(_tabular_features(data, None, True),
                                 _log_target(Ridge(alpha=p["alpha"]), p["log_target"]))
        case "knn":
            knn = KNeighborsRegressor(n_neighbors=k) if regression else KNeighborsClassifier(n_neighbors=k)
            return make_pipeline(_tabular_features(data, None, True), knn)
        case "tree":
            tree_class = DecisionTreeRegressor if regression else DecisionTreeClassifier
            return make_pipeline(_tabular_features(data, None, False),
                                 tree_class(max_depth=p["max_depth"], random_state=seed))
        case "random_forest":
            forest_class = RandomForestRegressor if regression else RandomForestClassifier
            return make_pipeline(_tabular_features(data, None, False),
                                 forest_class(n_estimators=p["n_estimators"], max_depth=p["max_depth"],
                                              max_features="sqrt", random_state=seed, n_jobs=1))
        case "extra_trees":
            extra_class = ExtraTreesRegressor if regression else ExtraTreesClassifier
            return make_pipeline(_tabular_features(data, None, False),
                                 extra_class(n_estimators=p["n_estimators"], max_features="sqrt",
                                             random_state=seed, n_jobs=1))
        case "hist_gbm":
            settings = {"max_iter": p["max_iter"], "learning_rate": p["learning_rate"], "max_leaf_nodes": 15,
                        "max_bins": 63, "early_stopping": False, "random_state": seed}
            if regression:
                return make_pipeline(_tabular_features(data, None, False),
                                     _log_target(HistGradientBoostingRegressor(**settings), p["log_target"]))
            return make_pipeline(_tabular_features(data, None, False), HistGradientBoostingClassifier(**settings))
        case "naive_bayes":
            return make_pipeline(_tabular_features(data, None, True), GaussianNB())
        case "tfidf_logreg":
            return make_pipeline(_text_features(data, p["vocabulary"]), LogisticRegression(C=p["C"], max_iter=500))
        case "tfidf_naive_bayes":
            return make_pipeline(_text_features(data, None), MultinomialNB(alpha=p["alpha"]))
        case "tfidf_knn":
            return make_pipeline(_text_features(data, None), KNeighborsClassifier(n_neighbors=k, metric="cosine"))
        case "tfidf_tree":
            return make_pipeline(_text_features(data, 5000),
                                 DecisionTreeClassifier(max_depth=p["max_depth"], random_state=seed))
        case "tfidf_random_forest":
            return make_pipeline(_text_features(data, 5000),
                                 RandomForestClassifier(n_estimators=p["n_estimators"], random_state=seed, n_jobs=1))
    raise ValueError(f"unknown reference solution family {solution.family!r}")


def _submission(model: Any, data: PublicData) -> pd.DataFrame:
    """Predictions for test.csv in the sample submission's format."""
    spec = data.spec
    submission = pd.DataFrame({spec.id_column: data.test_ids})
    if spec.kind == "regression":
        predicted = model.predict(data.x_test).astype(float)
        if spec.metric == "rmsle":
            predicted = np.clip(predicted, 0, None)  # negative prices cannot be scored
        submission[data.submission_columns[1]] = predicted
        return submission
    # Classes missing from a subsample get probability 0.
    classes = sorted(data.y_train.unique())
    fitted = list(model.classes_)
    proba = np.zeros((len(data.x_test), len(classes)))
    proba[:, [classes.index(c) for c in fitted]] = model.predict_proba(data.x_test)
    match spec.metric:
        case "roc_auc":
            submission[data.submission_columns[1]] = proba[:, classes.index(1)]
        case "log_loss":
            proba = proba / proba.sum(axis=1, keepdims=True)
            by_name = {str(c): proba[:, i] for i, c in enumerate(classes)}
            for column in data.submission_columns[1:]:
                submission[column] = by_name[column]
        case _:
            submission[data.submission_columns[1]] = np.asarray(classes)[proba.argmax(axis=1)]
    return submission


def run_solution(solution: ReferenceSolution, data: PublicData, answers: pd.DataFrame) -> tuple[float, float]:
    """Fit, predict and grade one solution: its rounded score and the seconds it took."""
    started = time.perf_counter()
    rows = _subsample(data, solution.train_fraction, solution.seed)
    model = _pipeline(solution, data, len(rows))
    # Two solutions run at once; nested threads would only contend for the same cores.
    with threadpool_limits(1), warnings.catch_warnings():
        # An unconverged linear model is a legitimate weak team, not an error.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(data.x_train.iloc[rows], data.y_train.iloc[rows])
        submission = _submission(model, data)
    text = submission.to_csv(index=False)
    try:
        score = score_frames(read_submission(io.StringIO(text)), answers, data.spec)
    except InvalidSubmission as exc:
        raise TaskError(f"{data.spec.id}: reference solution {solution.describe()} wrote an invalid submission: "
                        f"{exc.reason}") from exc
    if not math.isfinite(score):
        raise TaskError(f"{data.spec.id}: reference solution {solution.describe()} scored {score}")
    return round(score, SCORE_DECIMALS), time.perf_counter() - started


# ---------------------------------------------------------------------------------------------
# The leaderboard.


def build_leaderboard(competition: Competition, size: int | None = None, *, n_jobs: int = 2) -> LeaderboardMeta:
    """Run `size` reference solutions (default: the spec's size) and write the leaderboard files."""
    spec = competition.spec
    size = spec.leaderboard_size if size is None else size
    if size < 1:
        raise ValueError(f"{spec.id}: a leaderboard needs at least one team, not {size}")
    answers = read_answers(competition)
    data = read_public(competition)
    if data.submission_columns != list(answers.columns):
        raise TaskError(f"{competition.sample_path}: columns {data.submission_columns} differ from the answers' "
                        f"{list(answers.columns)}; rebuild the competition (gome bench prepare --force)")
    n_classes = 0 if spec.kind == "regression" else int(data.y_train.nunique())
    solutions = reference_solutions(spec, size, n_classes)
    started = time.perf_counter()
    if n_jobs == 1:
        results = [run_solution(s, data, answers) for s in solutions]
    else:
        results = Parallel(n_jobs=n_jobs, batch_size=4)(delayed(run_solution)(s, data, answers) for s in solutions)
    log.info("%s: %d reference solutions in %.1f s", spec.id, size, time.perf_counter() - started)

    # Best first; ties keep the order the teams were generated in.
    direction = 1 if spec.is_lower_better else -1
    order = sorted(range(size), key=lambda i: (direction * results[i][0], i))
    rows = [
        LeaderboardRow(rank=rank, team_id=_FIRST_TEAM_ID + i, family=solutions[i].family,
                       params=solutions[i].params, train_fraction=solutions[i].train_fraction,
                       seed=solutions[i].seed, score=results[i][0], seconds=round(results[i][1], 3))
        for rank, i in enumerate(order, start=1)
    ]
    board = pd.DataFrame({
        "scoreNullable": [r.score for r in rows],
        "teamId": [r.team_id for r in rows],
        "hasTeamName": True,
        "submissionDate": [(_FIRST_SUBMISSION + timedelta(hours=r.rank)).strftime("%Y-%m-%d %H:%M:%S")
                           for r in rows],
        "score": [r.score for r in rows],
        "hasScore": True,
    }, columns=LEADERBOARD_COLUMNS)
    if size > 1 and check_leaderboard(board["score"], competition.leaderboard_path) != spec.is_lower_better:
        raise TaskError(
            f"{spec.id}: the reference solutions all scored {rows[0].score}, so the leaderboard's direction "
            "cannot be told from its first and last rows"
        )
    meta = LeaderboardMeta(competition_id=spec.id, metric=spec.metric, is_lower_better=spec.is_lower_better,
                           n_teams=size, sklearn_version=sklearn.__version__, rows=rows)
    board.to_csv(competition.leaderboard_path, index=False)
    competition.leaderboard_meta_path.write_text(meta.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return meta
