"""The smoke run's data: a small deterministic sample of the tables the solutions read.

Before a step's full run its code runs on this sample with a short time limit
(strategies/evaluation.py), so a shape or column error costs seconds, not a full run. The sample is
a copy of the full run's view of the data (gome's `validation/input/` when it holds rows out, else
the competition folder): each CSV/TSV table cut to at most `rows` rows, everything else linked as it
is. Rows are chosen by the seed, so every step of the run sees the same sample:

- the test rows: `rows` of the ids in the sample submission, in every table keyed by them (the
  sample submission included, so a submission built from it has the sampled ids);
- the training rows: `rows` ids of the training table (at least two rows of each class of the label
  where that fits), in every table keyed by them, and the harness's folds restricted to them;
- any other table with the id column (gome's held-out rows): `rows` of its ids, and the held-out
  sample restricted to them; a table without the id column is kept whole when it is small (a lookup
  table that the others join), else cut to `rows` rows.

It is written once per run under `validation/smoke/` by the first trace that needs it (a file lock
keeps the others waiting), with `plan.json`, which also lists the columns of every table for the
static checks (execution/static_check.py), whether or not smoke runs are on.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock
from pydantic import BaseModel

from gome_agent import jsonl
from gome_agent.task.folds import FOLDS_FILE, folds_problem
from gome_agent.task.holdout import PREDICTIONS_FILE
from gome_agent.task.holdout import SAMPLE_FILE as HOLDOUT_SAMPLE
from gome_agent.task.sample import SampleSubmission, load_sample_submission
from gome_agent.task.scan import text_table_separator
from gome_agent.task.submission import check_submission, read_score

SMOKE_DIR = "smoke"  # under the run's validation/ folder
INPUT_DIR = "input"  # the sampled view, what a smoke run sees as ./input
PLAN_FILE = "plan.json"
SAMPLE_FILE = "sample_submission.csv"  # the sample submission of the sampled test ids, to check against
READ_ROWS = 100_000  # rows of a table read to sample from
WHOLE_ROWS = 5_000  # a table without the id column and at most this long is kept whole
WALK_CAP = 200_000  # files looked at in the view before its tables count as unknown
# Files a solution may read as a table whose columns gome does not read (a CSV/TSV, even compressed, is read).
_UNREAD_TABLES = {
    ".txt", ".dat", ".data", ".parquet", ".pq", ".feather", ".arrow", ".json", ".jsonl", ".ndjson", ".xlsx", ".xls",
    ".h5", ".hdf", ".hdf5", ".pkl", ".pickle", ".zip", ".gz", ".bz2", ".xz", ".tar", ".tgz", ".7z", ".rar", ".db",
    ".sqlite",
}
_READ_ERRORS = (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError)


class SmokePlan(BaseModel):
    """What the smoke runs of a run see (saved as plan.json), and the columns of every table."""

    rows: int
    sampled: bool  # whether the sampled view was written (smoke runs on)
    available: bool
    reason: str
    # Columns of each CSV/TSV table of the full view, by path; None when some file that a solution
    # could read as a table was not read (its columns are unknown).
    tables: dict[str, list[str]] | None = None
    cut: list[str] = []  # the tables cut to a sample
    test_ids: int = 0  # sampled test ids (0: the sample submission is whole)
    holdout: bool = False  # whether holdout_sample.csv holds the sampled held-out ids
    folds: bool = False  # whether folds.csv holds the folds of the sampled training ids


def _hidden(path: Path, hidden: list[Path]) -> bool:
    if not hidden:
        return False
    real = path.resolve()
    return any(real == h or real.is_relative_to(h) for h in hidden)


def list_tables(view: Path, hidden: list[Path]) -> tuple[list[str], str | None]:
    """The CSV/TSV tables of the view (relative paths, links followed), and the first file that a
    solution could read as a table but whose columns are not read here (None: there is none)."""
    tables: list[str] = []
    unread: str | None = None
    seen = 0
    for folder, dirs, files in os.walk(view, followlinks=True):
        base = Path(folder)
        dirs[:] = sorted(d for d in dirs if not _hidden(base / d, hidden))
        for name in sorted(files):
            seen += 1
            if seen > WALK_CAP:
                return tables, unread or f"more than {WALK_CAP:,} files"
            path = base / name
            rel = path.relative_to(view).as_posix()
            if _hidden(path, hidden):
                continue
            if text_table_separator(name) is not None:
                tables.append(rel)
            elif unread is None and Path(name.lower()).suffix in _UNREAD_TABLES:
                unread = rel
    return tables, unread


def _read(path: Path, nrows: int | None) -> tuple[pd.DataFrame, str] | None:
    """A table as text (values exactly as written) and its encoding; None when it cannot be read."""
    for encoding in ("utf-8", "latin-1"):
        try:
            frame = pd.read_csv(path, sep=text_table_separator(path.name), dtype=str, keep_default_na=False,
                                nrows=nrows, encoding=encoding)
            return frame, encoding
        except UnicodeDecodeError:
            continue
        except _READ_ERRORS:
            return None
    return None


def table_columns(view: Path, tables: list[str]) -> dict[str, list[str]] | None:
    """The header of each table, as pandas reads it (None when one cannot be read)."""
    columns = {}
    for rel in tables:
        read = _read(view / rel, nrows=0)
        if read is None:
            return None
        columns[rel] = [str(c) for c in read[0].columns]
    return columns


def _choose(count: int, rows: int, rng: np.random.Generator, labels: np.ndarray | None) -> np.ndarray:
    """Positions of `rows` of `count` items in their order (all of them when there are no more),
    with two of each label first where the labels are few enough to be classes."""
    if count <= rows:
        return np.arange(count)
    order = rng.permutation(count)
    chosen: list[int] = []
    if labels is not None and len(set(labels.tolist())) <= rows // 2:
        taken: Counter[str] = Counter()
        for i in order:
            if taken[labels[i]] < 2:
                chosen.append(int(i))
                taken[labels[i]] += 1
    chosen = chosen[:rows]
    picked = set(chosen)
    chosen += [int(i) for i in order if int(i) not in picked][: rows - len(chosen)]
    return np.sort(np.array(chosen))


class _Sampler:
    """Chooses the rows of each table of the view (see the module's docstring)."""

    def __init__(self, view: Path, tables: list[str], *, sample: SampleSubmission, sample_rel: str, id_column: str,
                 label: str | None, train_table: str | None, holdout_file: str | None, rows: int, seed: int) -> None:
        self.view, self.id_column, self.label, self.rows = view, id_column, label, rows
        self.rng = np.random.default_rng(seed)
        self.sample, self.sample_rel, self.holdout_file = sample, sample_rel, holdout_file
        self.frames: dict[str, tuple[pd.DataFrame, str, bool]] = {}  # frame, encoding, whether read in full
        for rel in tables:
            read = _read(view / rel, None if rel == sample_rel else READ_ROWS + 1)
            if read is not None:
                frame, encoding = read
                whole = rel == sample_rel or len(frame) <= READ_ROWS
                self.frames[rel] = (frame.iloc[:READ_ROWS], encoding, whole)
        keyed = [rel for rel, (f, _, _) in self.frames.items() if id_column in f.columns and rel != sample_rel]
        # The test rows are cut only where the sample submission can be cut with them.
        self.test = [rel for rel in keyed if self._is_test(rel, train_table)] if sample_rel in self.frames else []
        train = [rel for rel in keyed if rel not in self.test and rel != holdout_file]
        self.train = train_table if train_table in train else next(iter(sorted(train, key=_train_first)), None)

    def _is_test(self, rel: str, train_table: str | None) -> bool:
        if rel in (train_table, self.holdout_file) or "train" in rel.lower():
            return False
        ids = self.frames[rel][0][self.id_column]
        return len(ids) > 0 and bool(ids.isin(self.sample.ids).all())

    def _ids(self, rel: str, labels: str | None = None, among: frozenset[str] | None = None) -> set[str]:
        frame = self.frames[rel][0].drop_duplicates(self.id_column)
        if among is not None:
            frame = frame[frame[self.id_column].isin(among)]
        label = frame[labels].to_numpy() if labels in frame.columns else None
        positions = _choose(len(frame), self.rows, self.rng, label)
        return set(frame[self.id_column].iloc[positions])

    def cuts(self) -> tuple[dict[str, pd.DataFrame], set[str] | None, set[str] | None]:
        """The tables to write cut (by path), the sampled test ids and the sampled training ids."""
        test_ids = self._ids(self.test[0], among=self.sample.ids) if self.test else None
        train_ids = self._ids(self.train, labels=self.label) if self.train else None
        cut: dict[str, pd.DataFrame] = {}
        for rel, (frame, _, whole) in self.frames.items():
            if rel == self.sample_rel:
                kept = frame[frame[self.id_column].isin(test_ids)] if test_ids else frame
            elif self.id_column in frame.columns:
                ids = frame[self.id_column]
                group = test_ids if rel in self.test else train_ids if train_ids and ids.isin(train_ids).any() else None
                kept = frame[ids.isin(group if group is not None else self._ids(rel, labels=self.label))]
            elif whole and len(frame) <= WHOLE_ROWS:
                kept = frame
            else:
                label = frame[self.label].to_numpy() if self.label in frame.columns else None
                kept = frame.iloc[_choose(len(frame), self.rows, self.rng, label)]
            if len(kept) < len(frame) or not whole:
                cut[rel] = kept
        return cut, test_ids, train_ids

    def encoding(self, rel: str) -> str:
        return self.frames[rel][1]


def _train_first(rel: str) -> tuple[int, str]:
    return (0 if "train" in rel.lower() else 1, rel)


def _write_view(source: Path, target: Path, cut: dict[str, pd.DataFrame], sampler: _Sampler, prefix: str = "") -> None:
    """`target` shows `source` through links, except the cut tables (written) and the folders holding them."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir()):
        rel = prefix + entry.name
        if rel in cut:
            cut[rel].to_csv(target / entry.name, sep=text_table_separator(entry.name) or ",", index=False,
                            encoding=sampler.encoding(rel))
        elif any(c.startswith(rel + "/") for c in cut):
            _write_view(entry, target / entry.name, cut, sampler, rel + "/")
        else:
            os.symlink(entry.resolve(), target / entry.name)


def _restrict(source: Path, target: Path, id_column: str, ids: set[str]) -> bool:
    """Copy the rows of `source` (a CSV keyed by `id_column`) whose ids are in `ids`; False when it is missing."""
    read = _read(source, None)
    if read is None or id_column not in read[0].columns:
        return False
    frame = read[0]
    kept = frame[frame[id_column].isin(ids)]
    if kept.empty:
        return False
    kept.to_csv(target, index=False)
    return True


def prepare_smoke(view: Path, out: Path, *, sample: SampleSubmission, sample_rel: str, id_column: str,
                  label: str | None, train_table: str | None, holdout_file: str | None, validation_dir: Path,
                  rows: int, seed: int, hidden: list[Path], sampled: bool) -> tuple[SmokePlan, bool]:
    """The run's smoke plan, written under `out` by the first caller (the others wait and read it).
    Returns the plan and whether this call made it. `view`: the full run's input folder;
    `sampled`: write the sampled view (smoke runs on), else only the tables' columns."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out.parent / f"{out.name}.lock")):
        existing = load_plan(out)
        if existing is not None and existing.rows == rows and existing.sampled == sampled:
            return existing, False
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        tables, unread = list_tables(view, hidden)
        columns = table_columns(view, tables) if unread is None else None
        if columns is not None:
            columns.update(_own_files(validation_dir, sample))
        plan = SmokePlan(rows=rows, sampled=sampled, available=False, tables=columns,
                         reason="smoke runs are off (execution.smoke.enabled)")
        if sampled:
            plan = _sample(view, out, plan, tables, sample=sample, sample_rel=sample_rel, id_column=id_column,
                           label=label, train_table=train_table, holdout_file=holdout_file,
                           validation_dir=validation_dir, seed=seed)
        jsonl.write_json(out / PLAN_FILE, plan)
        return plan, True


def _own_files(validation_dir: Path, sample: SampleSubmission) -> dict[str, list[str]]:
    """The tables of a solution's own folder: the folds it is given, the predictions it writes."""
    files = {"submission.csv": sample.columns, PREDICTIONS_FILE: sample.columns}
    folds = _read(validation_dir / FOLDS_FILE, nrows=0) if (validation_dir / FOLDS_FILE).is_file() else None
    if folds is not None:
        files[FOLDS_FILE] = [str(c) for c in folds[0].columns]
    return files


def _sample(view: Path, out: Path, plan: SmokePlan, tables: list[str], *, sample: SampleSubmission, sample_rel: str,
            id_column: str, label: str | None, train_table: str | None, holdout_file: str | None,
            validation_dir: Path, seed: int) -> SmokePlan:
    rows = plan.rows
    if not [t for t in tables if t != sample_rel]:
        return plan.model_copy(update={"reason": "no smoke runs: the data has no CSV or TSV table to sample"})
    sampler = _Sampler(view, tables, sample=sample, sample_rel=sample_rel, id_column=id_column, label=label,
                       train_table=train_table, holdout_file=holdout_file, rows=rows, seed=seed)
    cut, test_ids, train_ids = sampler.cuts()
    if not cut:
        return plan.model_copy(update={"reason": f"no smoke runs: every table has at most {rows} rows (or "
                                                 f"{WHOLE_ROWS:,} for a table without the id column), so a "
                                                 "smoke run would be the full run"})
    _write_view(view, out / INPUT_DIR, cut, sampler)
    if test_ids:
        shutil.copyfile(out / INPUT_DIR / sample_rel, out / SAMPLE_FILE)
    holdout = False
    if holdout_file is not None and (validation_dir / HOLDOUT_SAMPLE).is_file():
        held = _read(out / INPUT_DIR / holdout_file, None)
        holdout = held is not None and _restrict(validation_dir / HOLDOUT_SAMPLE, out / HOLDOUT_SAMPLE, id_column,
                                                 set(held[0][id_column]))
    folds = (validation_dir / FOLDS_FILE).is_file()
    if folds and (train_ids is None or not _restrict(validation_dir / FOLDS_FILE, out / FOLDS_FILE, id_column,
                                                     train_ids)):
        shutil.copyfile(validation_dir / FOLDS_FILE, out / FOLDS_FILE)  # whole: a join on the ids still holds
    names = ", ".join(sorted(cut)[:6]) + (f" and {len(cut) - 6} more" if len(cut) > 6 else "")
    return plan.model_copy(update={
        "available": True, "cut": sorted(cut), "test_ids": len(test_ids or ()), "holdout": holdout, "folds": folds,
        "reason": f"smoke runs on at most {rows} rows of {names}"
                  + ("" if test_ids else " (the test rows are not in a table keyed by the sample's ids: all kept)"),
    })


def load_plan(out: Path) -> SmokePlan | None:
    try:
        return SmokePlan.model_validate_json((out / PLAN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class SmokeCheck:
    """The checks of a smoke run's outputs: the full run's, against the sampled ids."""

    def __init__(self, out: Path, plan: SmokePlan, *, sample: SampleSubmission, id_column: str) -> None:
        self.out, self.plan = out, plan
        self.sample = load_sample_submission(out / SAMPLE_FILE, id_column) if plan.test_ids else sample
        self.held = load_sample_submission(out / HOLDOUT_SAMPLE, id_column) if plan.holdout else None

    @property
    def input_dir(self) -> Path:
        return self.out / INPUT_DIR

    def prepare(self, attempt_dir: Path) -> None:
        """Give a smoke run's folder the folds of the sampled training rows."""
        if self.plan.folds:
            shutil.copyfile(self.out / FOLDS_FILE, attempt_dir / FOLDS_FILE)

    def problems(self, attempt_dir: Path, *, needs_score: bool) -> list[str]:
        """How the outputs of a finished smoke run break the contract (empty: the full run may go)."""
        problems = check_submission(attempt_dir / "submission.csv", self.sample)
        if self.held is not None:
            held = check_submission(attempt_dir / PREDICTIONS_FILE, self.held)
            problems += [f"{PREDICTIONS_FILE}: {p}" for p in held]
        if needs_score:
            score, problem = read_score(attempt_dir / "scores.json")
            if score is None and problem is not None and not _not_finite(attempt_dir / "scores.json"):
                problems.append(problem)  # a NaN from a handful of rows is not the code's fault
        if self.plan.folds:
            changed = folds_problem(self.out, attempt_dir)
            problems += [changed] if changed else []
        return problems


def _not_finite(path: Path) -> bool:
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("score")
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(value, float) and not math.isfinite(value)
