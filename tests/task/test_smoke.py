"""The smoke runs' data: a deterministic sample of each table that keeps the tables' joins, the test
ids of the sample submission, every class, the folds and the held-out rows consistent; the tables'
columns for the static checks; and the checks of a smoke run's outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gome_agent.task.sample import load_sample_submission
from gome_agent.task.smoke import SAMPLE_FILE, SmokeCheck, SmokePlan, prepare_smoke


def world(base: Path) -> tuple[Path, Path]:
    """A competition view like gome's holdout view (the held-out rows' features as holdout.csv) and its
    validation folder (folds, the held-out sample)."""
    view, validation = base / "input", base / "validation"
    view.mkdir(parents=True)
    validation.mkdir()
    rng = np.random.default_rng(1)
    train_ids = [f"t{i}" for i in range(1000)]
    labels = ["common"] * 900 + ["other"] * 97 + ["rare"] * 3
    pd.DataFrame({"id": train_ids, "x": rng.normal(size=1000), "store": rng.integers(0, 10, 1000),
                  "label": labels}).to_csv(view / "train.csv", index=False)
    pd.DataFrame({"id": train_ids[::-1], "extra": range(1000)}).to_csv(view / "train_extra.csv", index=False)
    test_ids = [f"s{i}" for i in range(500)]
    pd.DataFrame({"id": test_ids, "x": rng.normal(size=500), "store": 1}).to_csv(view / "test.csv", index=False)
    pd.DataFrame({"id": test_ids, "label": "common"}).to_csv(view / "sample_submission.csv", index=False)
    pd.DataFrame({"store": range(10), "city": list("abcdefghij")}).to_csv(view / "stores.csv", index=False)
    pd.DataFrame({"a": range(6000), "b": 1}).to_csv(view / "log.tsv", sep="\t", index=False)
    held = [f"h{i}" for i in range(300)]
    pd.DataFrame({"id": held, "x": 0.5, "store": 2}).to_csv(view / "holdout.csv", index=False)
    (view / "images").mkdir()
    (view / "images" / "a.png").write_bytes(b"\x89PNG")
    (view / "description.md").write_text("# A competition\n")
    pd.DataFrame({"id": train_ids, "fold": np.arange(1000) % 5}).to_csv(validation / "folds.csv", index=False)
    pd.DataFrame({"id": held, "label": "common"}).to_csv(validation / "holdout_sample.csv", index=False)
    return view, validation


def prepare(view: Path, validation: Path, *, rows: int = 200, seed: int = 0, hidden: list[Path] | None = None,
            sampled: bool = True, out: Path | None = None) -> tuple[SmokePlan, bool]:
    return prepare_smoke(view, out or validation / "smoke", sample=load_sample_submission(view / "sample_submission.csv"),
                         sample_rel="sample_submission.csv", id_column="id", label="label", train_table="train.csv",
                         holdout_file="holdout.csv", validation_dir=validation, rows=rows, seed=seed,
                         hidden=hidden or [], sampled=sampled)


def read(path: Path, **kwargs) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, **kwargs)


def test_every_table_is_cut_consistently_and_the_rest_is_linked(tmp_path):
    view, validation = world(tmp_path)
    plan, made = prepare(view, validation)
    assert made and plan.available and plan.sampled
    assert plan.cut == ["holdout.csv", "log.tsv", "sample_submission.csv", "test.csv", "train.csv", "train_extra.csv"]
    assert (plan.test_ids, plan.holdout, plan.folds) == (200, True, True)
    smoke = validation / "smoke"
    seen = smoke / "input"
    train, extra = read(seen / "train.csv"), read(seen / "train_extra.csv")
    # The training rows: 200, every class (the rare one twice), the same ids in the table joined to it.
    assert len(train) == 200 and set(train["id"]) == set(extra["id"])
    assert train["label"].value_counts()["rare"] >= 2 and set(train["label"]) == {"common", "other", "rare"}
    assert list(train.columns) == ["id", "x", "store", "label"]
    # The test rows: 200 ids, the same in the test table, the sample submission and the one checked against.
    test, sample = read(seen / "test.csv"), read(seen / "sample_submission.csv")
    assert len(test) == 200 and list(test["id"]) == list(sample["id"])
    assert (smoke / SAMPLE_FILE).read_bytes() == (seen / "sample_submission.csv").read_bytes()
    # The held-out rows and the folds follow the rows kept.
    held = read(seen / "holdout.csv")
    assert len(held) == 200 and list(read(smoke / "holdout_sample.csv")["id"]) == list(held["id"])
    assert set(read(smoke / "folds.csv")["id"]) == set(train["id"])
    # A long table without the id column is cut; a small one (joined by the others) and images are linked.
    assert len(read(seen / "log.tsv", sep="\t")) == 200
    for name in ("stores.csv", "images", "description.md"):
        assert (seen / name).is_symlink() and (seen / name).resolve() == (view / name).resolve()
    # The columns of every table, and of the files a solution reads or writes in its own folder.
    assert plan.tables is not None
    assert plan.tables["train.csv"] == ["id", "x", "store", "label"] and plan.tables["log.tsv"] == ["a", "b"]
    assert plan.tables["folds.csv"] == ["id", "fold"] and plan.tables["submission.csv"] == ["id", "label"]


def test_the_sample_is_made_once_per_run_and_the_same_for_the_same_seed(tmp_path):
    view, validation = world(tmp_path)
    first, _ = prepare(view, validation)
    stamp = (validation / "smoke" / "input" / "train.csv").stat().st_mtime_ns
    again, made = prepare(view, validation)
    assert not made and again == first
    assert (validation / "smoke" / "input" / "train.csv").stat().st_mtime_ns == stamp
    prepare(view, validation, out=tmp_path / "other")
    for name in ("train.csv", "test.csv", "holdout.csv"):
        assert (tmp_path / "other" / "input" / name).read_bytes() == (validation / "smoke" / "input" / name).read_bytes()
    prepare(view, validation, out=tmp_path / "seed1", seed=1)
    assert (tmp_path / "seed1" / "input" / "train.csv").read_bytes() != (
        validation / "smoke" / "input" / "train.csv").read_bytes()
    # Other settings (after a resume) make it again.
    bigger, made = prepare(view, validation, rows=300)
    assert made and len(read(validation / "smoke" / "input" / "train.csv")) == 300 and bigger.rows == 300


def test_without_smoke_runs_only_the_columns_are_listed(tmp_path):
    view, validation = world(tmp_path)
    plan, _ = prepare(view, validation, sampled=False)
    assert not plan.available and plan.tables is not None and not (validation / "smoke" / "input").exists()


def test_columns_are_unknown_when_a_file_could_be_a_table_gome_does_not_read(tmp_path):
    view, validation = world(tmp_path)
    (view / "extra.parquet").write_bytes(b"PAR1")
    plan, _ = prepare(view, validation)
    assert plan.tables is None and plan.available


def test_hidden_files_are_neither_read_nor_cut(tmp_path):
    view, validation = world(tmp_path)
    secret = tmp_path / "private"
    secret.mkdir()
    pd.DataFrame({"id": range(1000), "answer": 1}).to_csv(secret / "answers.csv", index=False)
    os.symlink(secret, view / "private")
    plan, _ = prepare(view, validation, hidden=[secret])
    assert plan.tables is not None and "private/answers.csv" not in plan.tables
    assert "private/answers.csv" not in plan.cut and (validation / "smoke" / "input" / "private").is_symlink()


def test_a_task_with_nothing_to_sample_says_why(tmp_path):
    view, validation = world(tmp_path)
    plan, _ = prepare(view, validation, rows=100_000)
    assert not plan.available and plan.reason.startswith("no smoke runs: every table has at most 100000 rows")
    images = tmp_path / "images-only"
    images.mkdir()
    pd.DataFrame({"id": ["a.png"], "label": "x"}).to_csv(images / "sample_submission.csv", index=False)
    plan, _ = prepare(images, validation, out=tmp_path / "smoke-images")
    assert not plan.available and plan.reason == "no smoke runs: the data has no CSV or TSV table to sample"


def test_the_outputs_of_a_smoke_run_are_checked_against_the_sampled_ids(tmp_path):
    view, validation = world(tmp_path)
    plan, _ = prepare(view, validation)
    check = SmokeCheck(validation / "smoke", plan, sample=load_sample_submission(view / "sample_submission.csv"),
                       id_column="id")
    run = tmp_path / "a0-smoke"
    run.mkdir()
    check.prepare(run)
    assert (run / "folds.csv").read_bytes() == (validation / "smoke" / "folds.csv").read_bytes()
    test, held = read(check.input_dir / "test.csv"), read(check.input_dir / "holdout.csv")
    pd.DataFrame({"id": test["id"], "label": "other"}).to_csv(run / "submission.csv", index=False)
    pd.DataFrame({"id": held["id"], "label": "other"}).to_csv(run / "holdout_predictions.csv", index=False)
    assert check.problems(run, needs_score=False) == []
    # A solution that scores itself must write its score, but a NaN from a handful of rows is no error.
    assert check.problems(run, needs_score=True) == [
        f'no score file: {run / "scores.json"} does not exist (write {{"score": <validation score>}} to it)']
    (run / "scores.json").write_text(json.dumps({"score": float("nan")}))
    assert check.problems(run, needs_score=True) == []
    # Predictions of every test id (the full data's) are not those of the sample.
    pd.DataFrame({"id": [f"s{i}" for i in range(500)], "label": "other"}).to_csv(run / "submission.csv", index=False)
    (run / "folds.csv").write_text("id,fold\n")
    problems = check.problems(run, needs_score=False)
    assert problems[0] == "wrong row count: got 500, expected 200 (one row per id of the sample submission)"
    assert problems[1].startswith("300 id(s) in column 'id' are not in the sample submission")
    assert problems[-1] == "the solution changed ./folds.csv; validate on it as given, never write it"


@pytest.mark.parametrize("rows", [10, 50])
def test_every_class_is_kept_when_the_sample_is_small(tmp_path, rows):
    view, validation = world(tmp_path)
    prepare(view, validation, rows=rows)
    train = read(validation / "smoke" / "input" / "train.csv")
    assert len(train) == rows and set(train["label"]) == {"common", "other", "rare"}
