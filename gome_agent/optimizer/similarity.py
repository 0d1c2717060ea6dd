"""Text similarity without an embedding API: TF-IDF cosine over word tokens.

The reference implementation needs an embedding endpoint for its momentum
sampler (a common failure point for its users); hypotheses and problem
statements are short technical texts, for which word overlap weighted by rarity
ranks relevance well enough, offline and in microseconds.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_TOKEN = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
_STOP = frozenset(
    "a an the and or of to in on for with by from into at as is are be was were this that these those "
    "it its use using used add adding make more less than then via per not no new current best model's "
    "should could would will can may we our".split()
)


def tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if len(t) > 1 and t not in _STOP]


class TextIndex:
    """Cosine similarity of a query against a fixed set of documents."""

    def __init__(self, documents: Sequence[str]) -> None:
        self._bags = [Counter(tokens(d)) for d in documents]
        df: Counter[str] = Counter()
        for bag in self._bags:
            df.update(bag.keys())
        n = len(self._bags)
        self._idf = {term: math.log((1 + n) / (1 + count)) + 1.0 for term, count in df.items()}
        self._vectors = [self._weigh(bag) for bag in self._bags]

    def _weigh(self, bag: Counter[str]) -> dict[str, float]:
        vec = {t: (1.0 + math.log(c)) * self._idf.get(t, 1.0) for t, c in bag.items()}
        norm = math.sqrt(sum(v * v for v in vec.values()))
        return {t: v / norm for t, v in vec.items()} if norm else {}

    def query(self, text: str) -> list[float]:
        """Similarity in [0, 1] of `text` to each document, in document order."""
        q = self._weigh(Counter(tokens(text)))
        if not q:
            return [0.0] * len(self._vectors)
        return [sum(w * doc.get(t, 0.0) for t, w in q.items()) for doc in self._vectors]


def max_similarity(text: str, others: Sequence[str]) -> float:
    """The highest similarity of `text` to any of `others` (0 when there are none)."""
    if not others:
        return 0.0
    return max(TextIndex(others).query(text))
