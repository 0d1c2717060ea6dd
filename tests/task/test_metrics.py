import pytest
import yaml

from gome_agent.task.metrics import known_direction, mentioned_metrics, normalize_metric_name, stated_direction
from tests.shared import shared

COMPETITIONS = shared("mlebench", "competitions")
needs_competitions = pytest.mark.skipif(not COMPETITIONS.is_dir(), reason="MLE-bench competition files not present")

# The metric of each MLE-bench Lite competition (mlebench-contract.md §9.5) and its direction.
LITE_METRICS = {
    "aerial-cactus-identification": ("ROC AUC", True),
    "aptos2019-blindness-detection": ("quadratic weighted kappa", True),
    "denoising-dirty-documents": ("RMSE", False),
    "detecting-insults-in-social-commentary": ("ROC AUC", True),
    "dog-breed-identification": ("multiclass log-loss", False),
    "dogs-vs-cats-redux-kernels-edition": ("log-loss", False),
    "histopathologic-cancer-detection": ("ROC AUC", True),
    "jigsaw-toxic-comment-classification-challenge": ("mean column-wise ROC AUC", True),
    "leaf-classification": ("multiclass log-loss", False),
    "mlsp-2013-birds": ("ROC AUC", True),
    "new-york-city-taxi-fare-prediction": ("RMSE", False),
    "nomad2018-predict-transparent-conductors": ("mean column-wise RMSLE", False),
    "plant-pathology-2020-fgvc7": ("mean column-wise ROC AUC", True),
    "random-acts-of-pizza": ("ROC AUC", True),
    "ranzcr-clip-catheter-line-classification": ("mean ROC AUC over 9 classes", True),
    "siim-isic-melanoma-classification": ("ROC AUC", True),
    "spooky-author-identification": ("multiclass log-loss", False),
    "tabular-playground-series-dec-2021": ("accuracy", True),
    "tabular-playground-series-may-2022": ("ROC AUC", True),
    "text-normalization-challenge-english-language": ("accuracy", True),
    "text-normalization-challenge-russian-language": ("accuracy", True),
    "the-icml-2013-whale-challenge-right-whale-redux": ("ROC AUC", True),
}

# How the descriptions themselves name the metric (each phrase occurs in that description.md).
DESCRIPTION_PHRASES = [
    ("aerial-cactus-identification", "area under the ROC curve", True),
    ("aptos2019-blindness-detection", "quadratic weighted kappa", True),
    ("denoising-dirty-documents", "root mean squared error", False),
    ("detecting-insults-in-social-commentary", "Area under the Receiver Operating Curve (AUC)", True),
    ("dog-breed-identification", "Multi Class Log Loss", False),
    ("dogs-vs-cats-redux-kernels-edition", "log loss", False),
    ("jigsaw-toxic-comment-classification-challenge", "mean column-wise ROC AUC", True),
    ("leaf-classification", "multi-class logarithmic loss", False),
    ("new-york-city-taxi-fare-prediction", "root mean-squared error", False),
    ("nomad2018-predict-transparent-conductors", "root mean squared logarithmic error", False),
    ("spooky-author-identification", "multi-class logarithmic loss", False),
    ("tabular-playground-series-dec-2021", "multi-class classification accuracy", True),
    ("text-normalization-challenge-english-language", "prediction accuracy", True),
]


@pytest.mark.parametrize("competition", sorted(LITE_METRICS))
def test_every_lite_metric_has_its_direction(competition):
    name, higher = LITE_METRICS[competition]
    assert known_direction(name) is higher


def test_the_lite_table_covers_all_22_competitions():
    assert len(LITE_METRICS) == 22


@needs_competitions
@pytest.mark.parametrize("competition", sorted(LITE_METRICS))
def test_grader_names_of_lite_competitions_have_the_right_direction(competition):
    config = yaml.safe_load((COMPETITIONS / competition / "config.yaml").read_text())
    assert known_direction(config["grader"]["name"]) is LITE_METRICS[competition][1], config["grader"]["name"]


@needs_competitions
@pytest.mark.parametrize(("competition", "phrase", "higher"), DESCRIPTION_PHRASES)
def test_metric_phrases_of_real_descriptions(competition, phrase, higher):
    description = (COMPETITIONS / competition / "description.md").read_text(encoding="utf-8")
    assert phrase.lower() in description.lower()
    assert known_direction(phrase) is higher


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("Root Mean Squared Logarithmic Error", "rmsle"),
        ("mean column-wise root mean squared logarithmic error", "rmsle"),
        ("mean-column-wise-rmsle", "rmsle"),
        ("multi-class logarithmic loss", "log_loss"),
        ("Multi Class Log Loss", "log_loss"),
        ("binary cross-entropy", "log_loss"),
        ("area under the ROC curve", "roc_auc"),
        ("AUC-ROC", "roc_auc"),
        ("auc-roc", "roc_auc"),
        ("AUROC", "roc_auc"),
        ("column-wise ROC AUC", "roc_auc"),
        ("quadratic weighted kappa", "kappa"),
        ("Cohen's kappa", "kappa"),
        ("root mean-squared error or RMSE", "rmse"),
        ("Root Mean Squared Error (RMSE)", "rmse"),
        ("RMSE (lower is better)", "rmse"),
        ("mean absolute error", "mae"),
        ("Median Absolute Error", "median_absolute_error"),
        ("F1-score (macro)", "f1"),
        ("micro-averaged F1 score", "f1"),
        ("F-beta", "fbeta"),
        ("F2 score", "fbeta"),
        ("MAP@5", "map"),
        ("mean average precision @ 12", "map"),
        ("NDCG@10", "ndcg"),
        ("R²", "r2"),
        ("R-squared", "r2"),
        ("mean IoU over classes", "iou"),
        ("Jaccard index", "iou"),
        ("Dice coefficient", "dice"),
        ("Brier score", "brier"),
        ("word error rate", "wer"),
        ("mean Levenshtein distance", "levenshtein"),
        ("Spearman's rank correlation coefficient", "spearman"),
        ("Pearson correlation", "pearson"),
        ("Matthews correlation coefficient", "mcc"),
        ("average precision", "pr_auc"),
        ("balanced accuracy", "balanced_accuracy"),
        ("top-3 accuracy", "accuracy"),
        ("SMAPE", "smape"),
        ("mean absolute percentage error", "mape"),
    ],
)
def test_names_normalize_to_their_canonical_metric(name, canonical):
    assert normalize_metric_name(name) == canonical


@pytest.mark.parametrize(
    "name",
    ["accuracy", "balanced accuracy", "ROC AUC", "PR-AUC", "average precision", "macro F1", "weighted F1", "F-beta",
     "precision", "recall", "MCC", "quadratic weighted kappa", "R2", "MAP@K", "mean average precision", "NDCG",
     "Dice", "IoU", "Jaccard", "BLEU", "Spearman correlation", "Pearson correlation"],
)
def test_higher_is_better_metrics(name):
    assert known_direction(name) is True


@pytest.mark.parametrize(
    "name",
    ["RMSE", "MSE", "MAE", "RMSLE", "MSLE", "MAPE", "SMAPE", "log loss", "logarithmic loss", "multiclass log loss",
     "cross-entropy", "binary cross-entropy", "Brier score", "error rate", "word error rate",
     "median absolute error", "mean column-wise RMSLE", "Levenshtein distance"],
)
def test_lower_is_better_metrics(name):
    assert known_direction(name) is False


@pytest.mark.parametrize(
    "name",
    ["", "score", "loss", "error", "mean", "custom metric", "competition metric", "AUC or RMSE",
     "log", "correlation", "distance", "weighted score", "(macro)", "RMSE (ROC AUC)", "ROC curve"],
)
def test_ambiguous_or_unknown_names_have_no_direction(name):
    assert known_direction(name) is None


def test_unknown_names_come_back_cleaned_not_canonical():
    assert normalize_metric_name("  Custom-Metric!! ") == "custom metric"
    assert known_direction(normalize_metric_name("Custom-Metric")) is None


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("Submissions are evaluated on the area under the ROC curve.", "roc_auc (higher is better)"),
        ("Submissions are scored on the root mean squared logarithmic error (RMSLE).", "rmsle (lower is better)"),
        ("We use multi-class logarithmic loss. Log loss penalizes confident errors.", "log_loss (lower is better)"),
        ("Scored by the quadratic weighted kappa between ratings.", "kappa (higher is better)"),
    ],
)
def test_mentioned_metrics_finds_the_evaluation_metric(text, first):
    assert mentioned_metrics(text)[0] == first


def test_mentioned_metrics_ignores_generic_words():
    assert mentioned_metrics("Improve the precision of the map and recall the data.") == []


@pytest.mark.parametrize(("text", "expected"), [
    ("Submissions are scored by AUC. **Higher is better.**", True),
    ("RMSE: lower values are better.", False),
    ("A larger score is better", True),
    ("Smaller is better; 0 is perfect.", False),
    ("Submissions are evaluated on log loss.", None),
    ("Higher is better for accuracy, lower is better for the loss.", None),
    ("higher_is_better: true", True),
])
def test_stated_direction_reads_only_plain_statements(text, expected):
    assert stated_direction(text) is expected


@pytest.mark.parametrize(("name", "metric"), [
    ("AUC of the ROC curve between churn and a constant guess.", "roc_auc"),  # the 0.5B model's wording
    ("ROC_auc score", "roc_auc"), ("root mean squared log error (RMSLE)", "rmsle"), ("multi-class log loss", "log_loss"),
    ("accuracy of the predictions", "accuracy"), ("a weighted blend of expert ratings", None), ("RMSE or AUC", None),
])
def test_a_known_metric_is_found_inside_a_phrase(name, metric):
    from gome_agent.task.metrics import known_metric

    assert known_metric(name) == metric
