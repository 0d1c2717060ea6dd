import csv
import io
import json
import math
import os
import time
import zipfile
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from gome_agent.errors import LLMOutputError, TaskError
from gome_agent.task import scan as task_module
from gome_agent.task.analysis import Task, TaskAnalysis, analyze_task, check_analysis
from gome_agent.task.sample import load_sample_submission
from gome_agent.task.scan import CompetitionScan, FileInfo, scan_competition
from tests.shared import shared

SPOOKY_DESCRIPTION = shared("mlebench", "competitions", "spooky-author-identification", "description.md")
AUTHORS = ["EAP", "HPL", "MWS"]


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def make_competition(root: Path, description: str = "# Spooky\nSubmissions are evaluated on multi-class log loss.\n"):
    """A small spooky-author-like competition in MLE-bench's prepared layout."""
    public = root / "spooky" / "prepared" / "public"
    public.mkdir(parents=True)
    (public / "description.md").write_text(description, encoding="utf-8")
    # Quoted text with line breaks: a plain line count would report 1,000 rows.
    write_csv(
        public / "train.csv",
        ["id", "text", "author"],
        [[f"id{i}", f"Sentence {i},\nsecond line " + "x" * 90, AUTHORS[i % 3]] for i in range(500)],
    )
    write_csv(public / "test.csv", ["id", "text"], [[f"t{i}", f"test sentence {i}"] for i in range(300)])
    write_csv(public / "sample_submission.csv", ["id", *AUTHORS], [[f"t{i}", 0.4, 0.3, 0.3] for i in range(300)])
    for i in range(300):
        (public / "images" / "batch").mkdir(parents=True, exist_ok=True)
        (public / "images" / f"{i}.jpg").write_bytes(b"\xff\xd8")
    for i in range(4):
        (public / "images" / "batch" / f"{i}.png").write_bytes(b"\x89PNG")
    with zipfile.ZipFile(public / "train.zip", "w") as archive:
        for i in range(25):
            archive.writestr(f"train/{i}.jpg", b"\xff\xd8")
    (public / "meta.json").write_text(json.dumps([{"author": a, "born": 1800 + i} for i, a in enumerate(AUTHORS)]))
    (public / "extra").mkdir()
    (public / "extra" / "notes.txt").write_text("first line\nsecond line\nthird line\nfourth line\n")
    return public


@pytest.fixture
def competition(tmp_path):
    return make_competition(tmp_path)


def by_path(scan: CompetitionScan) -> dict[str, FileInfo]:
    return {f.path: f for f in scan.files}


# ---------------------------------------------------------------- scanning


def test_scan_describes_each_kind_of_file(competition):
    scan = scan_competition(competition)
    files = by_path(scan)
    assert scan.competition_id == "spooky"
    assert scan.sample_path == competition / "sample_submission.csv"
    assert scan.description.startswith("# Spooky")

    train = files["train.csv"]
    assert train.kind == "table"
    assert train.rows == 500
    assert train.columns == ["id", "text", "author"]
    assert train.dtypes is not None and set(train.dtypes) == {"id", "text", "author"}
    preview = list(csv.reader(io.StringIO(train.preview)))
    assert preview[0] == ["id", "text", "author"]
    assert len(preview) == 4
    assert preview[1][0] == "id0" and preview[1][2] == "EAP"
    assert all(len(cell) <= task_module.CELL_CHARS for row in preview for cell in row)
    assert preview[1][1].endswith("...")

    assert files["test.csv"].rows == 300
    sample = files["sample_submission.csv"]
    assert sample.rows == 300 and sample.columns == ["id", *AUTHORS]
    assert "sample submission" in sample.note

    images = files["images"]
    assert images.kind == "directory"
    assert images.n_files == 304
    assert ".jpg 300" in images.note and ".png 4" in images.note and "1 subfolder" in images.note

    archive = files["train.zip"]
    assert archive.kind == "archive" and archive.n_files == 25
    assert "25 files (.jpg)" in archive.note

    meta = files["meta.json"]
    assert meta.kind == "json" and meta.rows == 3 and meta.columns == ["author", "born"]

    notes = files["extra/notes.txt"]  # a folder of one file is listed file by file
    assert notes.kind == "text" and notes.note == "4 lines"
    assert notes.preview == "first line\nsecond line\nthird line"

    assert files["description.md"].kind == "text"
    assert "extra" not in files


def test_files_text_shows_tables_and_stays_within_the_limit(competition):
    scan = scan_competition(competition)
    text = scan.files_text()
    assert len(text) <= 6000
    assert "- train.csv (table, " in text and "500 rows" in text
    assert "id,text,author" in text
    assert "- images/ (directory" in text and "304 files" in text
    for limit in (120, 400, 900, 2000):
        short = scan.files_text(max_chars=limit)
        assert len(short) <= limit
    small = scan.files_text(max_chars=400)
    assert "more entries" in small
    assert "id,text,author" not in small  # previews are the first thing to go


def test_wide_table_preview_is_cut_to_a_few_columns(tmp_path):
    public = tmp_path / "leaf"
    public.mkdir()
    (public / "description.md").write_text("Leaf.")
    species = [f"species_{i}" for i in range(99)]
    write_csv(public / "sample_submission.csv", ["id", *species], [[i, *[1 / 99] * 99] for i in range(5)])
    features = [f"margin{i}" for i in range(190)]
    write_csv(public / "train.csv", ["id", *features], [[i, *[0.1] * 190] for i in range(10)])
    train = by_path(scan_competition(public))["train.csv"]
    assert len(train.columns) == 191
    header = train.preview.splitlines()[0].split(",")
    assert header == ["id", *features[: task_module.PREVIEW_COLUMNS - 1]]
    assert "first 20 of 191 columns" in train.note
    text = scan_competition(public).files_text()
    assert "more (" in text and len(text) <= 6000


def test_a_cut_column_list_still_names_the_columns_only_the_training_table_has(tmp_path):
    public = tmp_path / "wide"
    public.mkdir()
    (public / "description.md").write_text("Wide.")
    features = [f"f{i}" for i in range(40)]
    write_csv(public / "sample_submission.csv", ["id", "label"], [[i, 0] for i in range(3)])
    write_csv(public / "train.csv", ["id", *features, "label"], [[i, *[0.5] * 40, 1] for i in range(5)])
    write_csv(public / "test.csv", ["id", *features], [[i, *[0.5] * 40] for i in range(3)])
    lines = {line.split(" (")[0].strip("- "): next_line
             for line, next_line in pairwise(scan_competition(public).files_text().splitlines())}
    assert lines["train.csv"].endswith("... and 12 more (11 float64, 1 int64); among them label (int64), "
                                       "which no other table has")
    assert "among them" not in lines["test.csv"] and lines["test.csv"].endswith("... and 11 more (11 float64)")


def test_a_broken_extra_csv_is_noted_not_fatal(competition):
    (competition / "broken.csv").write_bytes(b"a,b\n1,2\n\"never closed\n3,4\n")
    broken = by_path(scan_competition(competition))["broken.csv"]
    assert broken.kind == "table"
    assert broken.rows is None
    assert broken.note.startswith("unreadable CSV: ")


def test_json_lines_objects_encodings_and_odd_files(competition, monkeypatch):
    (competition / "events.jsonl").write_text("".join(json.dumps({"k": i, "v": f"x{i}"}) + "\n" for i in range(250)))
    (competition / "config.json").write_text(json.dumps({"classes": [1, 2], "version": 3}))
    (competition / "big.json").write_text(json.dumps([{"a": 1}] * 100))
    (competition / "latin.csv").write_bytes("name,city\nJos\xe9,M\xe1laga\n".encode("latin-1"))
    with zipfile.ZipFile(competition / "two.csv.zip", "w") as archive:
        archive.writestr("a.csv", "x\n1\n")
        archive.writestr("b.csv", "x\n2\n")
    (competition / "call.wav").write_bytes(b"RIFF")
    (competition / "weights.bin").write_bytes(b"\0" * 10)
    monkeypatch.setattr(task_module, "JSON_PARSE_BYTES", 500)
    files = by_path(scan_competition(competition))

    events = files["events.jsonl"]
    assert events.kind == "json" and events.rows == 250 and events.columns == ["k", "v"]
    assert files["config.json"].note == "JSON object with keys: classes, version"
    big = files["big.json"]
    assert big.rows is None and "not parsed" in big.note and big.preview.startswith('[{"a": 1}')
    latin = files["latin.csv"]
    assert latin.rows == 1 and "José" in latin.preview and "Latin-1" in latin.note
    assert files["two.csv.zip"].note.startswith("unreadable CSV: ")
    assert files["call.wav"].kind == "audio"
    assert files["weights.bin"].kind == "other"


def test_big_csv_rows_are_counted_without_pandas_for_the_whole_file(tmp_path):
    public = tmp_path / "taxi"
    public.mkdir()
    (public / "description.md").write_text("Taxi.")
    write_csv(public / "sample_submission.csv", ["key", "fare_amount"], [["k1", 11.35]])
    with open(public / "labels.csv", "w") as handle:
        handle.write("key,fare_amount\n")
        handle.writelines(f"k{i},{i % 50}.5\n" for i in range(30_000))
    with zipfile.ZipFile(public / "en_train.csv.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("en_train.csv", "id,before,after\n" + "".join(f'{i},"a ""b""","c"\n' for i in range(1000)))
    files = by_path(scan_competition(public))
    assert files["labels.csv"].rows == 30_000
    zipped = files["en_train.csv.zip"]
    assert zipped.kind == "table" and zipped.rows == 1000 and zipped.columns == ["id", "before", "after"]


def test_quoted_line_breaks_are_counted_across_read_chunks(competition, monkeypatch):
    monkeypatch.setattr(task_module, "_CHUNK", 7)
    assert by_path(scan_competition(competition))["train.csv"].rows == 500


def test_rows_past_the_count_limit_are_estimated(tmp_path, monkeypatch):
    public = tmp_path / "taxi"
    public.mkdir()
    (public / "description.md").write_text("Taxi.")
    write_csv(public / "sample_submission.csv", ["key", "fare_amount"], [["k1", 11.35]])
    write_csv(public / "labels.csv", ["key", "fare_amount"], [[f"k{i:05d}", "10.5"] for i in range(20_000)])
    monkeypatch.setattr(task_module, "_CHUNK", 4096)
    monkeypatch.setattr(task_module, "_COUNT_LIMIT", {**task_module._COUNT_LIMIT, "": 64 * 1024})
    labels = by_path(scan_competition(public))["labels.csv"]
    assert labels.rows == pytest.approx(20_000, rel=0.01)
    assert labels.note.startswith("row count estimated from the first 64.0 KB")


def test_a_hundred_thousand_files_are_summarised_quickly(tmp_path, monkeypatch):
    public = tmp_path / "images"
    public.mkdir()
    (public / "description.md").write_text("Images.")
    write_csv(public / "sample_submission.csv", ["id", "label"], [["a", 0.5]])
    for folder in range(10):
        sub = public / "train" / f"part{folder}"
        sub.mkdir(parents=True)
        first = sub / "0.jpg"
        first.write_bytes(b"")
        # Hard links are real files but skip inode creation, which keeps the test fast on slow disks.
        for i in range(1, 10_000):
            os.link(first, sub / f"{i}.jpg")
    started = time.monotonic()
    scan = scan_competition(public)
    assert time.monotonic() - started < 10
    train = by_path(scan)["train"]
    assert train.n_files == 100_000
    assert train.note == "100,000 files (.jpg) in 10 subfolders"
    assert len(scan.files) == 3

    monkeypatch.setattr(task_module, "DIR_COUNT_CAP", 50_000)
    capped = by_path(scan_competition(public))["train"]
    assert capped.n_files == 50_000
    assert capped.note.startswith("more than 50,000 files")


def test_loose_top_level_files_beyond_max_entries_are_summarised(tmp_path):
    public = tmp_path / "whale"
    public.mkdir()
    (public / "description.md").write_text("Whales.")
    write_csv(public / "sampleSubmission.csv", ["clip", "probability"], [["a.aiff", 0]])
    write_csv(public / "train.csv", ["clip", "label"], [["a.aiff", 1]])
    for i in range(200):
        (public / f"clip{i:03d}.aiff").write_bytes(b"FORM")
    scan = scan_competition(public, max_entries=10)
    paths = [f.path for f in scan.files]
    assert len(paths) == 10
    assert {"description.md", "sampleSubmission.csv", "train.csv"} <= set(paths)
    assert scan.unlisted == "193 more files (.aiff, 772 B) at the top level, not listed"
    assert scan.files_text().endswith(scan.unlisted)


@pytest.mark.parametrize(
    ("layout", "expected"),
    [("spooky/prepared/public", "spooky"), ("spooky/public", "spooky"), ("spooky", "spooky")],
)
def test_competition_id_comes_from_the_folder(tmp_path, layout, expected):
    public = tmp_path / layout
    public.mkdir(parents=True)
    (public / "description.md").write_text("Spooky.")
    write_csv(public / "sample_submission.csv", ["id", "EAP"], [["a", 0.4]])
    assert scan_competition(public).competition_id == expected
    assert scan_competition(public, competition_id="given-id").competition_id == "given-id"


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(TaskError, match="does not exist"):
        scan_competition(tmp_path / "nowhere")


def test_missing_description_is_an_error_naming_the_file(competition):
    (competition / "description.md").unlink()
    (competition / "description.txt").write_text("Spooky.")
    with pytest.raises(TaskError, match=r"description\.md does not exist.*MLE-bench.*description\.txt"):
        scan_competition(competition)


def test_empty_description_is_an_error(competition):
    (competition / "description.md").write_text(" \n\n")
    with pytest.raises(TaskError, match=r"description\.md is empty"):
        scan_competition(competition)


def test_missing_sample_submission_is_an_error(competition):
    (competition / "sample_submission.csv").unlink()
    with pytest.raises(TaskError, match="no sample submission"):
        scan_competition(competition)


def test_unreadable_sample_submission_is_an_error_naming_it(competition):
    (competition / "sample_submission.csv").write_text("id\nt0\nt1\n")
    with pytest.raises(TaskError, match=r"sample_submission\.csv has 1 column"):
        scan_competition(competition)


def test_sample_led_by_its_prediction_column_uses_the_first_unique_column_as_id(tmp_path):
    public = tmp_path / "insults"
    public.mkdir()
    (public / "description.md").write_text("Insults.")
    rows = [[0, "20120618192155Z", f'"comment {i}"'] for i in range(5)]
    write_csv(public / "sample_submission_null.csv", ["Insult", "Date", "Comment"], rows)
    scan = scan_competition(public)
    assert scan.sample_submission().id_column == "Comment"


# ---------------------------------------------------------------- analysis


def analysis(**changes) -> TaskAnalysis:
    fields = dict(
        goal="Predict the author of each sentence.",
        task_type="multiclass classification",
        metric_name="multi-class logarithmic loss",
        higher_is_better=False,
        direction_evidence="Submissions are evaluated using multi-class logarithmic loss.",
        id_column="id",
        target_columns=AUTHORS,
        submission_format="A CSV with id and one probability column per author.",
    )
    fields.update(changes)
    return TaskAnalysis(**fields)


def check(scan: CompetitionScan, result: TaskAnalysis, **kwargs) -> Task:
    return check_analysis(result, scan, scan.sample_submission(), **kwargs)


def test_a_good_analysis_becomes_the_task(competition):
    scan = scan_competition(competition)
    task = check(scan, analysis(target_columns=["MWS", "EAP", "HPL"]))
    assert task.competition_id == "spooky"
    assert task.metric_name == "multi-class logarithmic loss"
    assert task.higher_is_better is False
    assert task.direction_source == "description"
    assert task.id_column == "id"
    assert task.target_columns == AUTHORS  # in the sample's order
    assert task.sample_path == competition / "sample_submission.csv"
    assert task.description == scan.description
    assert task.files_text == scan.files_text()
    assert Task.model_validate_json(task.model_dump_json()) == task


def test_missing_direction_of_a_known_metric_uses_the_known_direction(competition):
    task = check(scan_competition(competition), analysis(higher_is_better=None, metric_name="Multi Class Log Loss"))
    assert task.higher_is_better is False
    assert task.direction_source == "known_metric"


def test_missing_direction_of_an_unknown_metric_is_an_error(competition):
    expected = r"no direction for metric 'spookiness'.*--higher-is-better or --lower-is-better"
    with pytest.raises(TaskError, match=expected):
        check(scan_competition(competition), analysis(higher_is_better=None, metric_name="spookiness"))


def test_unknown_metric_with_a_stated_direction_is_accepted(competition):
    task = check(scan_competition(competition), analysis(higher_is_better=True, metric_name="spookiness"))
    assert task.higher_is_better is True
    assert task.direction_source == "description"


def test_a_direction_contradicting_a_known_metric_is_an_error(tmp_path):
    public = make_competition(tmp_path, "# Prices\n## Evaluation\nSubmissions are scored by the RMSE.\n")
    with pytest.raises(TaskError) as error:
        check(scan_competition(public), analysis(metric_name="RMSE", higher_is_better=True))
    message = str(error.value)
    assert "'RMSE'" in message
    assert "higher is better" in message and "lower is better" in message
    assert "--higher-is-better" in message and "--lower-is-better" in message


def test_a_misread_direction_is_corrected_when_the_page_says_it_and_the_metric_agrees(tmp_path):
    public = make_competition(tmp_path, "# Cancer\n## Evaluation\nScored by ROC AUC. **Higher is better.**\n")
    task = check(scan_competition(public), analysis(metric_name="ROC AUC", higher_is_better=False))
    assert task.higher_is_better is True and task.direction_source == "description"


@pytest.mark.parametrize("description", [
    "# Cancer\nScored by ROC AUC.\n",
    "# Cancer\nScored by ROC AUC. Lower is better.\n",
    "# Cancer\nScored by ROC AUC: higher is better for AUC, lower is better for the loss you train with.\n",
])
def test_a_misread_direction_is_an_error_unless_the_page_says_the_metric_direction_alone(tmp_path, description):
    public = make_competition(tmp_path, description)
    with pytest.raises(TaskError, match="known metric where higher is better"):
        check(scan_competition(public), analysis(metric_name="ROC AUC", higher_is_better=False))


@pytest.mark.parametrize("user", [True, False])
def test_the_user_direction_wins(competition, user):
    task = check(scan_competition(competition), analysis(metric_name="RMSE", higher_is_better=True),
                 higher_is_better=user)
    assert task.higher_is_better is user
    assert task.direction_source == "user"


def test_a_metric_named_without_its_variant_takes_the_one_the_page_states(tmp_path, caplog):
    # As the 0.5B model read osu-leaf-outlines' page: plain "f1", which over six classes gome cannot score.
    caplog.set_level("INFO")
    public = make_competition(tmp_path, "# Leaves\n## Evaluation\nSubmissions are scored with the macro-averaged "
                                        "F1 score over the classes.\n")
    task = check(scan_competition(public), analysis(metric_name="f1", higher_is_better=True))
    assert task.metric_name == "macro f1" and "names the metric 'f1'; the description says macro f1" in caplog.text
    # A variant the analysis named stays; a page naming two variants, or none, adds none.
    assert check(scan_competition(public), analysis(metric_name="F1 (micro)", higher_is_better=True)).metric_name \
        == "F1 (micro)"
    both = make_competition(tmp_path / "both", "# Leaves\nScored by F1; we report micro and macro averages.\n")
    assert check(scan_competition(both), analysis(metric_name="f1", higher_is_better=True)).metric_name == "f1"


def test_a_known_metric_the_page_never_mentions_is_replaced_by_the_one_it_names(tmp_path, caplog):
    # As the 0.5B model read breast-cancer's page: accuracy, lower is better; the page scores by ROC AUC.
    public = make_competition(tmp_path, "# Cancer\n## Evaluation\nSubmissions are scored with the area under the "
                                        "ROC curve (AUC) between the predicted probability and the target.\n")
    for said in ("accuracy", "Accuracy of the predictions"):
        task = check(scan_competition(public), analysis(metric_name=said, higher_is_better=False))
        assert (task.metric_name, task.higher_is_better, task.direction_source) == ("roc_auc", True, "known_metric")
    assert "names the metric accuracy, which the description never mentions; taking roc_auc" in caplog.text
    # A metric the page mentions stays, and so does one the page names none beside.
    assert check(scan_competition(public), analysis(metric_name="ROC AUC", higher_is_better=True)).metric_name \
        == "ROC AUC"
    silent = make_competition(tmp_path / "silent", "# Cancer\nPredict the target.\n")
    assert check(scan_competition(silent), analysis(metric_name="accuracy", higher_is_better=True)).metric_name \
        == "accuracy"


def test_an_empty_metric_name_is_an_error(competition):
    with pytest.raises(TaskError, match="names no metric"):
        check(scan_competition(competition), analysis(metric_name="  "))


def test_a_wrong_id_column_is_an_error_naming_both(competition):
    with pytest.raises(TaskError, match=r"id column 'ID'.*first column is 'id'"):
        check(scan_competition(competition), analysis(id_column="ID"))


def test_an_id_column_whose_values_repeat_is_an_error(competition):
    with pytest.raises(TaskError, match=r"'EAP' as the id column.*repeats"):
        check(scan_competition(competition), analysis(id_column="EAP", target_columns=["HPL", "MWS", "id"]))


def test_target_columns_not_in_the_sample_are_an_error(competition):
    with pytest.raises(TaskError, match=r"\['author'\] that are not columns of sample_submission\.csv"):
        check(scan_competition(competition), analysis(target_columns=["author"]))


def test_sample_columns_left_out_of_the_targets_are_an_error(competition):
    with pytest.raises(TaskError, match=r"leaves columns \['HPL', 'MWS'\] of sample_submission\.csv out"):
        check(scan_competition(competition), analysis(target_columns=["EAP"]))


def test_the_id_column_cannot_be_a_target(competition):
    with pytest.raises(TaskError, match="id column 'id' among the target columns"):
        check(scan_competition(competition), analysis(target_columns=[*AUTHORS, "id"]))


def insults(tmp_path: Path, test_columns: list[str]) -> Path:
    public = tmp_path / "insults"
    public.mkdir()
    (public / "description.md").write_text("Insults. Evaluated with AUC.")
    write_csv(public / "sample_submission_null.csv", ["Insult", "Date", "Comment"],
              [[0, "20120618192155Z", f"comment {i}"] for i in range(5)])
    write_csv(public / "test.csv", test_columns, [["20120618192155Z", f"comment {i}"] for i in range(5)])
    return public


def test_sample_columns_copied_from_the_test_input_need_not_be_targets(tmp_path):
    scan = scan_competition(insults(tmp_path, ["Date", "Comment"]))
    task = check(scan, analysis(metric_name="AUC", higher_is_better=True, id_column="Comment",
                                target_columns=["Insult"]))
    assert task.id_column == "Comment" and task.target_columns == ["Insult"]


def test_sample_columns_not_in_the_test_input_must_be_targets(tmp_path):
    scan = scan_competition(insults(tmp_path, ["When", "Comment"]))
    with pytest.raises(TaskError, match=r"leaves columns \['Date'\]"):
        check(scan, analysis(metric_name="AUC", higher_is_better=True, id_column="Comment",
                             target_columns=["Insult"]))


def test_analysis_strings_are_bounded():
    with pytest.raises(ValidationError):
        analysis(goal="x" * 5000)
    with pytest.raises(ValidationError):
        analysis(goal="")


class StubPrompts:
    def __init__(self):
        self.calls = []

    def messages(self, name, **context):
        self.calls.append((name, context))
        return [{"role": "user", "content": f"analyse {context['competition_id']}"}]


class StubLLM:
    def __init__(self, value):
        self.value = value
        self.calls = []

    def structured(self, messages, schema, *, role, deadline=None, tags=None):
        self.calls.append({"messages": messages, "schema": schema, "role": role, "deadline": deadline})
        return SimpleNamespace(value=self.value)


@pytest.mark.skipif(not SPOOKY_DESCRIPTION.is_file(), reason="MLE-bench competition files not present")
def test_analyze_task_asks_with_description_files_and_sample(tmp_path):
    description = SPOOKY_DESCRIPTION.read_text(encoding="utf-8")
    scan = scan_competition(make_competition(tmp_path, description))
    prompts, llm = StubPrompts(), StubLLM(analysis())
    task = analyze_task(llm, prompts, scan, deadline=1234.5)

    [(name, context)] = prompts.calls
    assert name == "task_analysis"
    assert context["description"] == description
    assert "multi-class logarithmic loss" in context["description"]
    assert context["files"] == scan.files_text()
    assert "id,EAP,HPL,MWS" in context["sample_submission"]
    assert context["competition_id"] == "spooky"
    [call] = llm.calls
    assert call["schema"] is TaskAnalysis and call["role"] == "task" and call["deadline"] == 1234.5
    assert call["messages"] == [{"role": "user", "content": "analyse spooky"}]
    assert task.higher_is_better is False and task.target_columns == AUTHORS


def test_analyze_task_applies_the_checks_and_the_user_direction(competition):
    scan = scan_competition(competition)
    with pytest.raises(TaskError, match="known metric"):
        analyze_task(StubLLM(analysis(metric_name="log loss", higher_is_better=True)), StubPrompts(), scan)
    task = analyze_task(StubLLM(analysis(metric_name="log loss", higher_is_better=True)), StubPrompts(), scan,
                        higher_is_better=True)
    assert task.direction_source == "user" and task.higher_is_better is True


class UnusableLLM:
    """A model whose task analysis JSON never validates, not even after the repair re-ask."""

    calls = 0

    def structured(self, messages, schema, *, role, deadline=None, tags=None):
        self.calls += 1
        raise LLMOutputError("the task reply is still unusable after the repair re-ask (TaskAnalysis): looped")


def test_an_unusable_analysis_is_read_from_the_files_when_they_say_enough(competition):
    task = analyze_task(UnusableLLM(), StubPrompts(), scan_competition(competition))
    # The sample's columns, the metric the description names and its known direction, the label's type.
    assert task.analysis_source == "files" and task.metric_name == "log_loss" and task.higher_is_better is False
    assert task.direction_source == "known_metric" and task.id_column == "id" and task.target_columns == AUTHORS
    assert task.task_type == "multiclass classification" and "EAP, HPL, MWS" in task.goal


@pytest.mark.parametrize(("labels", "task_type"), [
    (["0", "1"], "binary classification"), (["a", "b", "c"], "multiclass classification"),
    ([str(i) for i in range(7)], "multiclass classification"), ([f"{i / 7:.3f}" for i in range(7)], "regression"),
])
def test_the_task_type_read_from_the_files_follows_the_label(tmp_path, labels, task_type):
    public = tmp_path / "c"
    public.mkdir()
    (public / "description.md").write_text("# C\nScored with RMSE; lower is better.\n")
    write_csv(public / "train.csv", ["id", "x", "y"], [[i, i * 2, labels[i % len(labels)]] for i in range(60)])
    write_csv(public / "test.csv", ["id", "x"], [[100 + i, i] for i in range(10)])
    write_csv(public / "sample_submission.csv", ["id", "y"], [[100 + i, 0] for i in range(10)])
    task = analyze_task(UnusableLLM(), StubPrompts(), scan_competition(public))
    assert task.task_type == task_type and task.target_columns == ["y"] and task.higher_is_better is False
    assert task.direction_source == "description" and task.metric_name == "rmse"


def test_an_unusable_analysis_stands_when_the_files_name_no_metric(competition):
    (competition / "description.md").write_text("# Spooky\nPredict the author of each sentence.\n")
    llm = UnusableLLM()
    with pytest.raises(LLMOutputError, match="still unusable after the repair re-ask"):
        analyze_task(llm, StubPrompts(), scan_competition(competition))
    assert llm.calls == 1


# ---------------------------------------------------------------- Task


def make_task(higher: bool) -> Task:
    return Task(
        competition_id="c", data_dir=Path("/data"), goal="g", task_type="regression", metric_name="m",
        higher_is_better=higher, direction_source="description", id_column="id", target_columns=["y"],
        submission_format="f", sample_path=Path("/data/sample_submission.csv"), description="d", files_text="",
    )


def test_is_better_when_higher_is_better():
    task = make_task(True)
    assert task.is_better(0.8, 0.7)
    assert not task.is_better(0.7, 0.8)
    assert not task.is_better(0.8, 0.8)
    assert task.is_better(-5.0, None)
    assert task.direction_word() == "higher is better"


def test_is_better_when_lower_is_better():
    task = make_task(False)
    assert task.is_better(0.7, 0.8)
    assert not task.is_better(0.8, 0.7)
    assert not task.is_better(0.7, 0.7)
    assert task.is_better(1e9, None)
    assert task.direction_word() == "lower is better"


def test_a_non_finite_score_is_never_better():
    for higher in (True, False):
        task = make_task(higher)
        assert not task.is_better(math.nan, None)
        assert not task.is_better(math.inf, 1.0)
        assert not task.is_better(-math.inf, 1.0)
        assert task.is_better(1.0, math.nan)


def test_sample_describe_is_what_the_prompt_gets(competition):
    scan = scan_competition(competition)
    assert scan.sample_submission().describe() == load_sample_submission(scan.sample_path).describe()


class SequenceLLM(StubLLM):
    def __init__(self, *values):
        super().__init__(None)
        self.values = list(values)

    def structured(self, messages, schema, *, role, deadline=None, tags=None):
        self.value = self.values.pop(0)
        return super().structured(messages, schema, role=role, deadline=deadline, tags=tags)


def test_a_wrong_analysis_is_sent_back_once_with_the_reason(competition):
    scan = scan_competition(competition)
    llm = SequenceLLM(analysis(metric_name="log loss", higher_is_better=True),
                      analysis(metric_name="log loss", higher_is_better=False))
    task = analyze_task(llm, StubPrompts(), scan)
    assert task.higher_is_better is False and len(llm.calls) == 2
    assert "known metric where lower is better" in llm.calls[1]["messages"][-1].content
    twice_wrong = SequenceLLM(*[analysis(metric_name="log loss", higher_is_better=True)] * 2)
    with pytest.raises(TaskError, match="known metric"):
        analyze_task(twice_wrong, StubPrompts(), scan)
    assert len(twice_wrong.calls) == 2


def test_target_columns_named_wrongly_twice_are_the_sample_submissions(competition):
    # The 0.5B model named leaf-species' feature columns as targets twice; the sample says what is predicted.
    scan = scan_competition(competition)
    llm = SequenceLLM(*[analysis(target_columns=["author", "text"])] * 2)
    task = analyze_task(llm, StubPrompts(), scan)
    assert task.target_columns == AUTHORS and len(llm.calls) == 2
    assert "['author', 'text'] that are not columns of sample_submission.csv" in llm.calls[1]["messages"][-1].content
    # Other errors of the second answer still stop the run: a wrong id column leaves nothing to derive from.
    wrong_id = SequenceLLM(*[analysis(id_column="row", target_columns=["author"])] * 2)
    with pytest.raises(TaskError, match="id column 'row'"):
        analyze_task(wrong_id, StubPrompts(), scan)


@pytest.mark.skipif(not SPOOKY_DESCRIPTION.is_file(), reason="MLE-bench competition files not present")
def test_analysis_gets_the_metrics_the_description_names(tmp_path):
    scan = scan_competition(make_competition(tmp_path, SPOOKY_DESCRIPTION.read_text(encoding="utf-8")))
    prompts = StubPrompts()
    analyze_task(StubLLM(analysis()), prompts, scan)
    assert prompts.calls[0][1]["metric_hints"][0] == "log_loss (lower is better)"


def test_a_known_metric_named_in_a_phrase_becomes_that_metric(competition):
    task = check(scan_competition(competition), analysis(metric_name="the multi-class log loss of the authors",
                                                         higher_is_better=None))
    assert task.metric_name == "log_loss" and task.higher_is_better is False and task.direction_source == "known_metric"
