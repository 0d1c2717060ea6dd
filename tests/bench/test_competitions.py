"""The offline benchmark's competitions: registry, prepared layout, determinism, preparing and loading."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest

from gome_agent.bench.competitions import (
    COMPETITIONS,
    Competition,
    CompetitionMeta,
    build_breast_cancer,
    get_spec,
)
from gome_agent.bench.prepare import load_competition, missing_files, prepare
from gome_agent.errors import ConfigError, TaskError
from gome_agent.task.sample import find_sample_submission, load_sample_submission
from gome_agent.task.submission import check_submission

IDS = list(COMPETITIONS)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    prepare(out, leaderboards=False)
    return out


def _competition(prepared: Path, cid: str) -> Competition:
    return Competition(get_spec(cid), prepared / cid)


def test_the_registry_covers_the_kinds_of_task_the_benchmark_promises():
    specs = list(COMPETITIONS.values())
    assert len(specs) >= 8
    metrics = {s.metric for s in specs}
    assert {"roc_auc", "log_loss", "accuracy", "macro_f1", "qwk", "rmse", "rmsle"} <= metrics
    assert any(s.is_lower_better for s in specs) and any(not s.is_lower_better for s in specs)
    kinds = {s.kind for s in specs}
    assert kinds == {"binary", "multiclass", "regression"}
    assert any(s.text_column for s in specs)  # text classification
    assert "digit-images" in COMPETITIONS  # image classification
    assert any("sktime" in s.packages for s in specs)  # time-series classification
    assert any(s.sample_name == "sampleSubmission.csv" for s in specs)
    assert any(s.id_column != "id" for s in specs)
    sizes = [s.leaderboard_size for s in specs]
    assert any(n < 100 for n in sizes) and any(100 <= n < 250 for n in sizes) and any(n >= 250 for n in sizes)


def test_prepare_is_deterministic(prepared: Path, tmp_path: Path):
    prepare(tmp_path, leaderboards=False)
    for cid in IDS:
        first, second = sorted((prepared / cid).rglob("*")), sorted((tmp_path / cid).rglob("*"))
        assert [p.relative_to(prepared) for p in first] == [p.relative_to(tmp_path) for p in second]
        for a, b in zip(first, second):
            if a.is_file():
                assert a.read_bytes() == b.read_bytes(), f"{a.relative_to(prepared)} differs between two builds"


@pytest.mark.parametrize("cid", IDS)
def test_the_sample_submission_defines_the_contract_the_answers_meet(prepared: Path, cid: str):
    competition = _competition(prepared, cid)
    spec = competition.spec
    found = find_sample_submission(competition.public_dir)
    assert found == competition.sample_path and found.name == spec.sample_name
    sample = load_sample_submission(found)
    assert sample.id_column == spec.id_column
    test = pd.read_csv(competition.public_dir / "test.csv", dtype=str)
    assert sample.ids == frozenset(test[spec.id_column]) and sample.n_rows == len(test)
    answers = pd.read_csv(competition.answers_path)
    assert list(answers.columns) == sample.columns
    # The answers themselves, in the submission format, break no rule of the sample.
    assert check_submission(competition.answers_path, sample) == []
    # The sample breaks none either; it is only refused for being the sample.
    assert check_submission(found, sample) == [f"{found.name} is the sample submission itself, not predictions"]


@pytest.mark.parametrize("cid", IDS)
def test_public_files_hide_the_target_and_ids_leak_nothing(prepared: Path, cid: str):
    competition = _competition(prepared, cid)
    spec = competition.spec
    train = pd.read_csv(competition.public_dir / "train.csv")
    test = pd.read_csv(competition.public_dir / "test.csv")
    answers = pd.read_csv(competition.answers_path)
    assert spec.target in train.columns
    assert spec.target not in test.columns and spec.answer_column not in test.columns
    assert list(test.columns) == [c for c in train.columns if c != spec.target]
    assert sorted(p.name for p in competition.public_dir.iterdir()) == sorted(spec.public_files)
    # Ids: unique over train and test, in file order, and drawn from one permutation (train and test interleave).
    ids = pd.concat([train[spec.id_column], test[spec.id_column]])
    assert ids.is_unique
    assert list(test[spec.id_column]) == sorted(test[spec.id_column]) == list(answers[spec.id_column])
    assert train[spec.id_column].min() < test[spec.id_column].max()
    assert test[spec.id_column].min() < train[spec.id_column].max()
    target = train[spec.target]
    codes = target if pd.api.types.is_numeric_dtype(target) else target.astype("category").cat.codes
    rho = train[spec.id_column].rank().corr(codes.rank())
    assert abs(rho) < 0.2, f"ids follow the target (rank correlation {rho:.2f})"


@pytest.mark.parametrize("cid", IDS)
def test_meta_and_description_say_how_the_competition_was_made(prepared: Path, cid: str):
    competition = _competition(prepared, cid)
    spec = competition.spec
    meta = CompetitionMeta.model_validate_json(competition.meta_path.read_text())
    train = pd.read_csv(competition.public_dir / "train.csv")
    test = pd.read_csv(competition.public_dir / "test.csv")
    assert (meta.competition_id, meta.metric, meta.is_lower_better) == (cid, spec.metric, spec.is_lower_better)
    assert (meta.n_train, meta.n_test, meta.n_rows) == (len(train), len(test), len(train) + len(test))
    assert meta.split_seed == spec.seed and meta.stratified == (spec.kind != "regression")
    assert meta.submission_columns == list(pd.read_csv(competition.sample_path, nrows=0).columns)
    assert all(meta.package_versions.values())
    text = competition.description_path.read_text()
    for section in ("## Overview", "## Evaluation", "## Submission File", "## Data"):
        assert section in text
    assert ("**Lower is better" in text) == spec.is_lower_better
    assert ("**Higher is better" in text) == (not spec.is_lower_better)
    assert spec.sample_name in text and f"{len(test):,} rows" in text
    # The example in the description is the sample's first rows.
    assert pd.read_csv(competition.sample_path, dtype=str).head(3).to_csv(index=False).strip() in text


def test_build_breast_cancer_keeps_its_layout(tmp_path: Path):
    public = build_breast_cancer(tmp_path)
    assert public == tmp_path / "public"
    assert sorted(p.name for p in public.iterdir()) == ["description.md", "sample_submission.csv", "test.csv",
                                                        "train.csv"]
    assert (public / "description.md").read_text().startswith("# Breast Cancer Diagnosis")
    answers = pd.read_csv(tmp_path / "private" / "answers.csv")
    assert list(answers.columns) == ["id", "target"] and len(answers) == 143


def test_get_spec_names_the_known_competitions():
    with pytest.raises(ConfigError, match="unknown benchmark competition 'nope'.*breast-cancer"):
        get_spec("nope")
    with pytest.raises(ConfigError, match="nope"):
        prepare(Path("/nonexistent"), only=["nope"])


def _with_board(prepared: Path, tmp_path: Path, cid: str) -> Path:
    shutil.copytree(prepared / cid, tmp_path / cid)
    pd.DataFrame({"score": [1.0, 0.5]}).to_csv(tmp_path / cid / "leaderboard.csv", index=False)
    return tmp_path


@pytest.mark.parametrize("relative", ["public/description.md", "public/sampleSubmission.csv", "private/answers.csv",
                                      "leaderboard.csv"])
def test_load_competition_names_the_missing_file(prepared: Path, tmp_path: Path, relative: str):
    data_dir = _with_board(prepared, tmp_path, "telco-churn")
    assert load_competition(data_dir, "telco-churn").root == data_dir / "telco-churn"
    (data_dir / "telco-churn" / relative).unlink()
    with pytest.raises(TaskError, match=f"{data_dir / 'telco-churn' / relative} is missing"):
        load_competition(data_dir, "telco-churn")


def test_load_competition_of_an_unprepared_competition(tmp_path: Path):
    with pytest.raises(TaskError, match=f"{tmp_path / 'digit-images'} does not exist.*--only digit-images"):
        load_competition(tmp_path, "digit-images")
    with pytest.raises(ConfigError, match="unknown benchmark competition"):
        load_competition(tmp_path, "digits")


def test_prepare_skips_complete_competitions_and_rebuilds_incomplete_ones(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    [root] = prepare(tmp_path, only=["penguin-body-mass"], leaderboards=False)
    competition = Competition(get_spec("penguin-body-mass"), root)
    assert missing_files(competition, leaderboards=False) == []
    assert missing_files(competition) == competition.leaderboard_files()
    answers = competition.answers_path.read_bytes()
    stamp = competition.answers_path.stat().st_mtime_ns

    prepare(tmp_path, only=["penguin-body-mass"], leaderboards=False)
    assert competition.answers_path.stat().st_mtime_ns == stamp
    assert "already prepared" in caplog.text

    competition.answers_path.unlink()
    (competition.public_dir / "stray.txt").write_text("left over")
    prepare(tmp_path, only=["penguin-body-mass"], leaderboards=False)
    assert "private/answers.csv missing, rebuilding" in caplog.text
    assert competition.answers_path.read_bytes() == answers
    assert not (competition.public_dir / "stray.txt").exists()

    stamp = competition.answers_path.stat().st_mtime_ns
    prepare(tmp_path, only=["penguin-body-mass"], leaderboards=False, force=True)
    assert competition.answers_path.stat().st_mtime_ns != stamp


def test_the_prepared_benchmark_is_small(prepared: Path):
    total = sum(p.stat().st_size for p in prepared.rglob("*") if p.is_file())
    assert total < 30 * 2**20
    meta = json.loads((prepared / "leaf-species" / "private" / "meta.json").read_text())
    assert len(meta["classes"]) == 32 and meta["submission_columns"][1:] == meta["classes"]
