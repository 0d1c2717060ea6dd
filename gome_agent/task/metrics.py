"""Known competition metrics and which way they improve.

The direction of the metric decides which solution is "best" for a whole run, so
it is never guessed: a name maps to a direction only when it clearly names a
known metric. Names are matched after normalisation, so "Root Mean Squared
Logarithmic Error", "mean column-wise RMSLE" and "mean-column-wise-rmsle" all
resolve to the same metric, while "score", "loss" or "AUC or RMSE" stay unknown.
"""

from __future__ import annotations

import re

# Canonical metric -> spellings (already in normalised form: lower case, words
# separated by single spaces, "'s" dropped, "the" dropped).
_HIGHER: dict[str, tuple[str, ...]] = {
    "accuracy": (
        "accuracy", "acc", "classification accuracy", "prediction accuracy", "sequence accuracy",
        "categorization accuracy", "exact match", "exact match accuracy", "top k accuracy",
    ),
    "balanced_accuracy": ("balanced accuracy", "balanced acc"),
    "roc_auc": (
        "auc", "roc auc", "auc roc", "auroc", "rocauc", "aucroc", "roc curve auc",
        "area under roc curve", "area under roc", "area under curve",
        "area under receiver operating characteristic curve",
        "area under receiver operating characteristic", "area under receiver operating curve",
        "receiver operating characteristic auc", "auc of roc curve", "normalized gini", "gini normalized",
    ),
    "pr_auc": (
        "pr auc", "auc pr", "auprc", "prauc", "average precision", "ap",
        "area under precision recall curve", "precision recall auc",
    ),
    "f1": ("f1", "f score", "f measure", "f1 measure", "dice f1"),
    "fbeta": ("fbeta", "f beta", "f2", "f0 5", "f05"),
    "precision": ("precision",),
    "recall": ("recall", "sensitivity", "true positive rate", "tpr"),
    "specificity": ("specificity", "true negative rate"),
    "mcc": ("mcc", "matthews correlation coefficient", "matthews correlation", "matthews corrcoef", "phi coefficient"),
    "kappa": (
        "kappa", "cohen kappa", "qwk", "quadratic weighted kappa", "quadratic kappa", "weighted kappa",
        "linear weighted kappa", "quadratic weighted cohen kappa",
    ),
    "r2": ("r2", "r 2", "r squared", "rsquared", "coefficient of determination"),
    "map": ("map", "mean average precision"),
    "mrr": ("mrr", "mean reciprocal rank"),
    "ndcg": ("ndcg", "normalized discounted cumulative gain", "discounted cumulative gain", "dcg"),
    "dice": ("dice", "dice coefficient", "sorensen dice", "sorensen dice coefficient", "dice similarity coefficient"),
    "iou": (
        "iou", "miou", "jaccard", "jaccard index", "jaccard similarity", "jaccard coefficient",
        "intersection over union",
    ),
    "bleu": ("bleu", "sacrebleu"),
    "spearman": ("spearman", "spearman correlation", "spearman rank correlation", "spearman rho",
                 "spearman correlation coefficient", "spearman rank correlation coefficient"),
    "pearson": ("pearson", "pearson correlation", "pearson r", "pearson correlation coefficient"),
}
_LOWER: dict[str, tuple[str, ...]] = {
    "rmse": (
        "rmse", "root mean squared error", "root mean square error", "root mean squared deviation",
        "root mean square deviation", "rmsd", "mcrmse",
    ),
    "mse": ("mse", "mean squared error", "mean square error", "l2 loss"),
    "mae": ("mae", "mean absolute error", "l1 loss"),
    "rmsle": (
        "rmsle", "root mean squared logarithmic error", "root mean square logarithmic error",
        "root mean squared log error", "root mean square log error",
    ),
    "msle": ("msle", "mean squared logarithmic error", "mean squared log error", "mean square logarithmic error"),
    "mape": ("mape", "mean absolute percentage error", "mean absolute percent error"),
    "smape": ("smape", "symmetric mean absolute percentage error", "symmetric mape"),
    "log_loss": (
        "log loss", "logloss", "logarithmic loss", "log likelihood loss", "cross entropy", "cross entropy loss",
        "crossentropy", "binary cross entropy", "bce", "categorical cross entropy", "negative log likelihood", "nll",
    ),
    "brier": ("brier", "brier loss"),
    "error_rate": ("error rate", "classification error", "classification error rate", "misclassification rate",
                   "zero one loss", "0 1 loss"),
    "wer": ("wer", "word error rate"),
    "cer": ("cer", "character error rate"),
    "median_absolute_error": ("median absolute error", "medae", "mdae"),
    "levenshtein": ("levenshtein", "levenshtein distance", "edit distance"),
    "pinball": ("pinball", "pinball loss", "quantile loss"),
}

_DIRECTION: dict[str, bool] = {**{k: True for k in _HIGHER}, **{k: False for k in _LOWER}}
_ALIASES: dict[str, str] = {
    alias: canonical
    for table in (_HIGHER, _LOWER)
    for canonical, aliases in table.items()
    for alias in aliases
}

# Words that qualify how a metric is aggregated without changing its direction.
_LEADING_QUALIFIERS = frozenset({
    "mean", "average", "averaged", "avg", "overall", "columnwise", "classwise", "macro", "micro", "weighted",
    "samples", "multiclass", "multilabel", "binary", "categorical", "normalized", "global", "per", "class",
    "column", "label", "sample", "total",
})
_TRAILING_QUALIFIERS = frozenset({
    "score", "metric", "macro", "micro", "weighted", "averaged", "average", "avg", "value", "coefficient",
})
_TRAILING_PHRASE = re.compile(
    r"( over( all)?( \d+| k| each| every)? (classes|class|columns|column|labels|label|targets|target|categories"
    r"|images|image|rows|samples|questions|folds)"
    r"| at (\d+|k)"
    r"| per (class|column|label|target|image|sample|row))$"
)
_TOP_K_ACCURACY = re.compile(r"^top (\d+|k) accuracy$")
_DIRECTION_NOTE = re.compile(r"^\s*(higher|lower|larger|smaller|greater|bigger) (is )?better\s*$")
_QUALIFIER_WORDS = _LEADING_QUALIFIERS | _TRAILING_QUALIFIERS | {"over", "all", "each", "every", "classes", "columns"}


def _clean(text: str) -> str:
    """Lower case, punctuation to spaces, common spelling variants unified."""
    text = text.lower().replace("²", "2").replace("@", " at ")
    text = re.sub(r"['’]s\b", "", text)
    text = re.sub(r"[^a-z0-9]+", " ", text)
    text = re.sub(r"\bmulti (class|label)\b", r"multi\1", text)
    text = re.sub(r"\b(column|class) wise\b", r"\1wise", text)
    text = re.sub(r"\bf (\d)\b", r"f\1", text)
    words = [w for w in text.split() if w != "the"]
    return " ".join(words)


def _canonical_part(text: str) -> str | None:
    """Canonical metric of one cleaned name, peeling aggregation qualifiers off either end.

    Trailing qualifiers go first so "mean average precision at 12" keeps its
    "mean"; every shorter span is visited at most once.
    """
    queue = [text]
    seen = {text}
    while queue:
        current = queue.pop(0)
        if current in _ALIASES:
            return _ALIASES[current]
        if _TOP_K_ACCURACY.match(current):
            return "accuracy"
        for shorter in _reductions(current):
            if shorter not in seen:
                seen.add(shorter)
                queue.append(shorter)
    return None


def _reductions(text: str) -> list[str]:
    words = text.split()
    found = []
    trailing = _TRAILING_PHRASE.search(text)
    if trailing and trailing.start() > 0:
        found.append(text[: trailing.start()])
    if len(words) > 1 and words[-1] in _TRAILING_QUALIFIERS:
        found.append(" ".join(words[:-1]))
    if len(words) > 1 and words[0] in _LEADING_QUALIFIERS:
        found.append(" ".join(words[1:]))
    return found


def _parts(name: str) -> list[str]:
    """A name and its parenthesised or "or"-joined alternatives, each cleaned."""
    pieces = re.split(r"[()\[\]]", name)
    parts: list[str] = []
    for piece in pieces:
        for sub in re.split(r"\bor\b", _clean(piece)):
            words = sub.split()
            # "(macro)", "(averaged over classes)" or "(lower is better)" qualify the metric;
            # they are no alternative name.
            if words and not all(w in _QUALIFIER_WORDS for w in words) and not _DIRECTION_NOTE.match(sub):
                parts.append(" ".join(words))
    return parts


def normalize_metric_name(name: str) -> str:
    """The canonical name of a known metric ("rmse", "roc_auc", "log_loss", ...).

    For a name that does not clearly name one known metric (unknown, ambiguous,
    or alternatives that disagree in direction) it returns the cleaned text,
    which is never one of the canonical names.
    """
    parts = _parts(name)
    canon = [_canonical_part(p) for p in parts]
    if canon and all(c is not None for c in canon):
        directions = {_DIRECTION[c] for c in canon if c is not None}
        if len(directions) == 1:
            return canon[0]  # type: ignore[return-value]
    return " ".join(parts)


def known_metric(name: str) -> str | None:
    """The canonical name of the known metric that `name` names, also inside a longer phrase ("AUC of
    the ROC curve between churn and a constant guess" -> "roc_auc", as a small model wrote it); None
    when it names none, or several that disagree in direction."""
    metric = normalize_metric_name(name)
    if metric in _DIRECTION:
        return metric
    named = [hit.split(" (")[0] for hit in mentioned_metrics(name)]
    return named[0] if named and len({_DIRECTION[m] for m in named}) == 1 else None


def known_direction(metric_name: str) -> bool | None:
    """True when higher is better, False when lower is better, None when unknown or ambiguous."""
    return _DIRECTION.get(normalize_metric_name(metric_name))


# Spellings too generic to count as a mention in running text ("map", "ap", "precision", ...).
_AMBIGUOUS_IN_TEXT = frozenset({"map", "ap", "acc", "dcg", "cer", "bce", "nll", "tpr", "precision", "recall",
                                "sensitivity", "specificity", "dice", "kappa", "pearson", "spearman", "f score",
                                "levenshtein", "brier", "pinball", "jaccard", "iou", "f2", "f05", "r 2"})


def mentioned_metrics(text: str, limit: int = 4) -> list[str]:
    """Known metrics a description names, most mentioned first, as "roc_auc (higher is better)".

    A hint for the task analysis (small models miss the metric in a long page); the
    analysis still has to agree with the description and the sample submission.
    """
    words = f" {_clean(text)} "
    counts: dict[str, int] = {}
    for alias, canonical in _ALIASES.items():
        if alias in _AMBIGUOUS_IN_TEXT or len(alias) < 2:
            continue
        hits = words.count(f" {alias} ")
        if hits:
            counts[canonical] = counts.get(canonical, 0) + hits * len(alias.split())
    ranked = sorted(counts, key=lambda c: -counts[c])[:limit]
    return [f"{c} ({'higher' if _DIRECTION[c] else 'lower'} is better)" for c in ranked]


_STATED = {
    True: re.compile(r"\b(?:higher|larger|greater|bigger)\b[\w\s,()-]{0,30}?\b(?:is|are)\s+better\b"),
    False: re.compile(r"\b(?:lower|smaller)\b[\w\s,()-]{0,30}?\b(?:is|are)\s+better\b"),
}


def stated_direction(text: str) -> bool | None:
    """The direction a description states in so many words ("higher is better", "lower scores are
    better"): True or False when it states exactly one, None when it states none or both."""
    plain = text.lower().replace("*", "").replace("_", " ")
    found = {higher for higher, pattern in _STATED.items() if pattern.search(plain)}
    return found.pop() if len(found) == 1 else None
