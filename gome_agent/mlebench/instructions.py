"""MLE-bench's instructions, rewritten for gome's solution contract before they reach a prompt.

MLE-bench tells an agent that the data is in `/home/data/`, that the submission must be at
`/home/submission/submission.csv`, and that these points take priority over the description.
A gome solution runs in its own step folder instead: it reads `./input/` and writes
`./submission.csv`, and gome puts the best submission where MLE-bench grades it. Shown unchanged,
the instructions make drafts write to the wrong place; rewritten, the priority sentence stays true.
"""

from __future__ import annotations

import re
from pathlib import Path

_DESCRIPTION = "the competition description (at the end of this text)"
# (pattern, replacement), applied in order: whole sentences first, then the paths inside others.
_REWRITES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\s*Note, these instructions can be found again in `?[^`\s]*instructions\.txt`?\.?"), ""),
    (re.compile(r"- \*\*Submission checker\*\*:[^\n]*"),
     "- **Submission checker**: gome checks every `./submission.csv` with MLE-bench's validation server "
     "itself; a solution does not need to call it."),
    (re.compile(r"(?:you MUST produce a submission file at|submission file at) `?/home/submission/submission\.csv`?"),
     "you MUST produce a submission file at `./submission.csv` (in the folder your code runs in; gome puts the "
     "best one where MLE-bench grades it)"),
    (re.compile(r"We will only evaluate submissions found at this path; failure to submit a `?submission\.csv`? "
                r"at this path will result in a failed attempt\."),
     "Only `./submission.csv` counts; a solution without it fails."),
    (re.compile(r"are available in `?/home/data/description\.md`?\. Read this file"), f"are in {_DESCRIPTION}. Read it"),
    (re.compile(r"`?/home/data/description(_obfuscated)?\.md`?"), _DESCRIPTION),
    (re.compile(r"`?/home/submission/submission\.csv`?"), "`./submission.csv`"),
    (re.compile(r"`?/home/data/?`?"), "`./input/`"),
    (re.compile(r"`?/home/submission/?`?"), "`./`"),
]
_LEFTOVER = re.compile(r"/home/(?:data|submission|instructions|validate_submission)")


def adapt_instructions(text: str) -> str:
    """`text` with MLE-bench's container paths replaced by the contract's (`./input/`, `./submission.csv`)."""
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    # Whatever other path is left (a later MLE-bench version) is named once, not silently kept.
    return _LEFTOVER.sub("(a path of the MLE-bench container that solutions do not see)", text)


def write_adapted(source: Path, target: Path) -> Path:
    """The instructions in `source` adapted and written to `target` (the data folder stays untouched)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(adapt_instructions(source.read_text(encoding="utf-8", errors="replace")), encoding="utf-8")
    return target
