"""The task every prompt uses: the LLM's reading of a competition, checked against its sample
submission and the known metrics.

`analyze_task` asks the LLM what the competition wants, and `check_analysis` holds that answer
against the sample submission and the known metrics. A wrong or missing metric direction is an
error, not a guess: it decides which solution counts as best for the whole run. When the model's
replies are unusable (a small model looping in its JSON), the task is read from the files
(`analysis_from_files`) where they say enough: the sample's columns, the metric the description
names and its direction.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from gome_agent.errors import LLMOutputError, TaskError
from gome_agent.llm.types import Message
from gome_agent.task.description import prompt_description
from gome_agent.task.folds import FoldPlan, training_table
from gome_agent.task.holdout import HoldoutPlan, scoring_note
from gome_agent.task.metrics import (
    known_direction,
    known_metric,
    mentioned_metrics,
    normalize_metric_name,
    stated_direction,
)
from gome_agent.task.sample import SampleSubmission, load_sample_submission
from gome_agent.task.scaffold import ScaffoldPlan
from gome_agent.task.scan import CompetitionScan, text_table_separator
from gome_agent.task.scoring import with_described_variant

log = logging.getLogger(__name__)


class TaskAnalysis(BaseModel):
    """The LLM's reading of the competition (the JSON schema of the task_analysis prompt)."""

    model_config = ConfigDict(str_strip_whitespace=True)

    goal: str = Field(min_length=1, max_length=2000, description="what must be predicted, from which inputs")
    task_type: str = Field(
        min_length=1, max_length=120,
        description='e.g. "binary classification", "regression", "multiclass classification", "image segmentation"',
    )
    metric_name: str = Field(max_length=200, description="the evaluation metric as the description names it")
    higher_is_better: bool | None = Field(
        default=None,
        description="true if a higher metric value is better, false if lower is better, null if the description "
        "does not say and it is not implied by the metric",
    )
    direction_evidence: str = Field(
        max_length=1000, description="the sentence of the description that states the metric or its direction, "
        "or why the direction is implied",
    )
    id_column: str = Field(max_length=300, description="the id column of the sample submission")
    target_columns: list[Annotated[str, StringConstraints(max_length=300)]] = Field(
        max_length=5000, description="the prediction columns of the sample submission"
    )
    submission_format: str = Field(min_length=1, max_length=1500, description="one or two sentences")


class Task(BaseModel):
    """The checked task used by every prompt; saved as task.json in the run folder."""

    competition_id: str
    data_dir: Path
    goal: str
    task_type: str
    metric_name: str
    higher_is_better: bool
    direction_source: Literal["description", "known_metric", "user"]
    # Who read the task: the model (the task_analysis prompt), or gome from the files when the model's
    # replies could not be used (`analysis_from_files`).
    analysis_source: Literal["model", "files"] = "model"
    id_column: str
    target_columns: list[str]
    submission_format: str
    sample_path: Path
    description: str
    files_text: str
    # What the prompts show: the description bounded with its scoring sections whole, and a
    # profile of the tables (computed once per run; empty in runs made before they existed).
    prompt_description: str = ""
    data_profile: str = ""
    folds: FoldPlan | None = None  # the harness's validation folds (None in runs made before they existed)
    holdout: HoldoutPlan | None = None  # the rows gome scores itself (None: self-reported scores)
    scaffold: ScaffoldPlan | None = None  # the drafts' main.py skeleton (None in runs made before it existed)

    @property
    def scored_by_gome(self) -> bool:
        return self.holdout is not None and self.holdout.available

    def scoring_note(self) -> str:
        """Who measures the scores of this run, for every view of it."""
        return scoring_note(self.holdout)

    @model_validator(mode="after")
    def _bounded_description(self) -> Task:
        if not self.prompt_description:
            self.prompt_description = prompt_description(self.description)
        return self

    def is_better(self, new: float, old: float | None) -> bool:
        """Whether `new` strictly improves on `old` by the metric's direction (anything beats no score)."""
        if not math.isfinite(new):
            return False
        if old is None or not math.isfinite(old):
            return True
        return new > old if self.higher_is_better else new < old

    def direction_word(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


class _Structured(Protocol):
    value: Any


class _LLM(Protocol):
    def structured(self, messages: list[Any], schema: type[TaskAnalysis], *, role: str,
                   deadline: float | None = None) -> _Structured: ...


class _Prompts(Protocol):
    def messages(self, name: str, **context: Any) -> list[Any]: ...


def check_analysis(
    analysis: TaskAnalysis,
    scan: CompetitionScan,
    sample: SampleSubmission,
    *,
    higher_is_better: bool | None = None,
) -> Task:
    """Hold the LLM's analysis against the sample submission and known metrics; return the final task."""
    metric = analysis.metric_name.strip()
    if not metric:
        raise TaskError(
            f"the task analysis of {scan.competition_id} names no metric; the description's evaluation "
            "section must say how submissions are scored"
        )
    # A known metric named in a phrase is that metric, so gome can compute it (and hold out rows for it).
    if (named := known_metric(metric)) is not None and named != normalize_metric_name(metric):
        log.info("the task analysis names the metric %r: taking it as %s", metric, named)
        metric = named
    said = analysis.higher_is_better
    # A known metric the page never mentions, where the page names others: the analysis misread it (the 0.5B
    # model named accuracy for a page scored by ROC AUC, and optimized accuracy for a whole run).
    described = [hit.split(" (")[0] for hit in mentioned_metrics(scan.description)]
    if (named := known_metric(metric)) is not None and described and named not in described:
        log.warning("the task analysis names the metric %s, which the description never mentions; taking %s, "
                    "the metric the description names most", named, described[0])
        metric, said = described[0], None  # the direction it gave was for the other metric
    if (stated := with_described_variant(metric, scan.description)) != metric:
        log.info("the task analysis names the metric %r; the description says %s", metric, stated)
        metric = stated
    id_column, targets = _check_columns(analysis, scan, sample)
    direction, source = _decide_direction(metric, said, higher_is_better, written=stated_direction(scan.description))
    return Task(
        competition_id=scan.competition_id,
        data_dir=scan.data_dir,
        goal=analysis.goal,
        task_type=analysis.task_type,
        metric_name=metric,
        higher_is_better=direction,
        direction_source=source,
        id_column=id_column,
        target_columns=targets,
        submission_format=analysis.submission_format,
        sample_path=scan.sample_path,
        description=scan.description,
        files_text=scan.files_text(),
    )


def _check_columns(analysis: TaskAnalysis, scan: CompetitionScan, sample: SampleSubmission) -> tuple[str, list[str]]:
    name = sample.path.name
    columns = sample.columns
    id_column = analysis.id_column.strip()
    if id_column not in columns:
        raise TaskError(
            f"the task analysis names id column {id_column!r}, which is not a column of {name} "
            f"(its first column is {columns[0]!r}; columns: {columns})"
        )
    if id_column != sample.id_column:
        try:
            load_sample_submission(sample.path, id_column=id_column)
        except TaskError as exc:
            raise TaskError(f"the task analysis names {id_column!r} as the id column, but {exc}") from exc
    wanted = [c.strip() for c in analysis.target_columns]
    unknown = [c for c in wanted if c not in columns]
    if unknown:
        raise TaskError(
            f"the task analysis names target columns {unknown} that are not columns of {name} (columns: {columns})"
        )
    if id_column in wanted:
        raise TaskError(f"the task analysis lists the id column {id_column!r} among the target columns of {name}")
    # A sample may repeat input columns next to the prediction (detecting-insults keeps Date);
    # such columns are copied from the test file, not predicted.
    copied = _test_input_columns(scan)
    missing = [c for c in columns if c != id_column and c not in wanted and c not in copied]
    if missing:
        raise TaskError(
            f"the task analysis leaves columns {missing} of {name} out of the target columns "
            f"(it names {wanted}); every prediction column of the sample submission must be a target"
        )
    return id_column, [c for c in columns if c in wanted]


def _test_input_columns(scan: CompetitionScan) -> set[str]:
    sample_rel = scan.sample_path.relative_to(scan.data_dir).as_posix()
    return {
        column
        for info in scan.files
        if info.columns and info.path != sample_rel and "test" in Path(info.path).name.lower()
        for column in info.columns
    }


def _decide_direction(
    metric: str, stated: bool | None, user: bool | None, *, written: bool | None = None
) -> tuple[bool, Literal["description", "known_metric", "user"]]:
    """`stated`: the analysis's reading of the description; `written`: the direction the
    description spells out ("higher is better"), found without the model."""
    if user is not None:
        return user, "user"
    known = known_direction(metric)
    if known is not None and stated is not None and known != stated:
        if written == known:
            # The description's own words and the metric agree; the model misread the page.
            log.warning("the task analysis says %s for %r, but the description says %s in so many words "
                        "and the metric agrees: using %s", _word(stated), metric, _word(known), _word(known))
            return known, "description"
        raise TaskError(
            f"the task analysis says {_word(stated)} for metric {metric!r}, but {metric!r} is a known metric "
            f"where {_word(known)}; if the description really says otherwise, pass --higher-is-better or "
            "--lower-is-better to set the direction"
        )
    if stated is not None:
        return stated, "description"
    if known is not None:
        return known, "known_metric"
    raise TaskError(
        f"the description states no direction for metric {metric!r} and it is not a known metric; "
        "pass --higher-is-better or --lower-is-better"
    )


def _word(higher: bool) -> str:
    return "higher is better" if higher else "lower is better"


def analyze_task(
    llm: _LLM,
    prompts: _Prompts,
    scan: CompetitionScan,
    *,
    higher_is_better: bool | None = None,
    deadline: float | None = None,
) -> Task:
    """Ask the LLM what the competition wants (prompt "task_analysis") and check its answer.

    An answer that fails the checks (a direction contradicting a known metric, columns
    that are not the sample's) is sent back once with the exact reason; a second
    failure is the error.
    """
    sample = scan.sample_submission()
    messages = prompts.messages(
        "task_analysis",
        description=scan.description,
        files=scan.files_text(),
        sample_submission=sample.describe(),
        competition_id=scan.competition_id,
        metric_hints=mentioned_metrics(scan.description),
    )
    try:
        result = llm.structured(messages, TaskAnalysis, role="task", deadline=deadline)
    except LLMOutputError as exc:
        return _from_files(scan, sample, exc, higher_is_better)
    try:
        return check_analysis(result.value, scan, sample, higher_is_better=higher_is_better)
    except TaskError as exc:
        retry = [
            *messages,
            Message(role="assistant", content=result.value.model_dump_json()),
            Message(role="user", content=f"That analysis is wrong: {exc}. Read the description and the sample "
                                         "submission again and reply with the corrected JSON object only."),
        ]
        try:
            second = llm.structured(retry, TaskAnalysis, role="task", deadline=deadline).value
        except LLMOutputError as unusable:
            return _from_files(scan, sample, unusable, higher_is_better)
        try:
            return check_analysis(second, scan, sample, higher_is_better=higher_is_better)
        except TaskError as again:
            # The prediction columns are the sample's own: a model that names others twice (the 0.5B
            # model named leaf-species' 19 shape features instead of its 32 species) gets them from
            # the sample, which is what the check holds them against. Any other error stands.
            derived = prediction_columns(scan, sample, second.id_column.strip())
            if derived is None or "target columns" not in str(again):
                raise
            log.warning("the task analysis named the target columns wrongly twice (%s); using the sample "
                        "submission's prediction columns %s", again, derived)
            fixed = second.model_copy(update={"target_columns": derived})
            return check_analysis(fixed, scan, sample, higher_is_better=higher_is_better)


def prediction_columns(scan: CompetitionScan, sample: SampleSubmission, id_column: str) -> list[str] | None:
    """The columns of the sample submission a solution predicts: all but the id and the columns it
    copies from the test table; None when `id_column` is not the sample's."""
    if id_column not in sample.columns:
        return None
    copied = _test_input_columns(scan)
    return [c for c in sample.columns if c != id_column and c not in copied] or None


def _from_files(scan: CompetitionScan, sample: SampleSubmission, error: LLMOutputError,
                higher_is_better: bool | None) -> Task:
    """The task read from the files after the model's analysis could not be used; `error` stands when
    the files do not say enough."""
    analysis = analysis_from_files(scan, sample)
    if analysis is None:
        raise error
    log.warning("the task analysis reply could not be used (%s); reading the task from the files instead: "
                "metric %s, id %r, predictions %s, %s", error, analysis.metric_name, analysis.id_column,
                analysis.target_columns, analysis.task_type)
    task = check_analysis(analysis, scan, sample, higher_is_better=higher_is_better)
    return task.model_copy(update={"analysis_source": "files"})


def analysis_from_files(scan: CompetitionScan, sample: SampleSubmission) -> TaskAnalysis | None:
    """What the files alone say of the task, as an analysis; None when they do not say enough.

    The id and prediction columns are the sample submission's; the metric is the known metric the
    description names most (`mentioned_metrics`), its direction what the description states or the
    metric implies; the task type follows the training table's label (two values: binary, up to 100
    whole values: multiclass, otherwise regression)."""
    predictions = prediction_columns(scan, sample, sample.id_column)
    metrics = mentioned_metrics(scan.description, limit=1)
    if predictions is None or not metrics:
        return None
    metric = metrics[0].split(" (")[0]
    return TaskAnalysis(
        goal=f"predict {', '.join(predictions[:5])}{' ...' if len(predictions) > 5 else ''} for every "
             f"{sample.id_column} of the test data, as the description says",
        task_type=_task_type(scan, sample.id_column, predictions),
        # The direction the description states; none stated, `check_analysis` takes the metric's own.
        metric_name=metric, higher_is_better=stated_direction(scan.description),
        direction_evidence="read from the description by gome (the model's analysis could not be used)",
        id_column=sample.id_column, target_columns=predictions,
        submission_format=f"a CSV file with the columns {', '.join(sample.columns[:6])}"
                          f"{' ...' if len(sample.columns) > 6 else ''}, one row per test {sample.id_column}, "
                          f"like {sample.path.name}",
    )


def _task_type(scan: CompetitionScan, id_column: str, predictions: list[str]) -> str:
    if len(predictions) > 1:
        # One column per class, as leaf-species' sample has: class probabilities.
        return "multiclass classification"
    found = training_table(scan, id_column, predictions)
    if found is None:
        return "prediction"
    info, labels = found
    try:
        label = pd.read_csv(scan.data_dir / info.path, sep=text_table_separator(info.path),
                            usecols=[labels[0]])[labels[0]].dropna()
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return "prediction"
    values = label.nunique()
    if values == 2:
        return "binary classification"
    whole = not pd.api.types.is_float_dtype(label) or bool((label == label.round()).all())
    return "multiclass classification" if whole and values <= 100 else "regression"
