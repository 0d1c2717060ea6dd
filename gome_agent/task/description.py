"""The competition description as the prompts show it: bounded, with what decides a score kept whole.

Descriptions run from 3 to 150 thousand characters. When one must be cut, the sections that say how
submissions are scored and what they hold (evaluation, metric, submission; the benchmark's own
instructions) are kept whole, the sections that never help a solution (prizes, timeline,
citation, acknowledgements) go first, and the rest is kept in order while it fits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DESCRIPTION_CHARS = 8000
_KEEP = re.compile(r"evaluat|metric|scor|submission|instruction|notes|task|overview|description|data|file",
                   re.IGNORECASE)
_WHOLE = re.compile(r"evaluat|metric|scor|submission|instruction", re.IGNORECASE)
_DROP = re.compile(r"prize|timeline|citation|acknowledg|sponsor|about the host|kernels? requirement|leaderboard",
                   re.IGNORECASE)
# A markdown heading, or a line underlined with ---/=== (MLE-bench's "BENCHMARK INSTRUCTIONS\n------").
_HEADING = re.compile(r"^(#{1,6}\s*\S.*|[^\n]+\n[-=]{3,}[ \t]*)$", re.MULTILINE)


@dataclass
class _Section:
    heading: str
    text: str  # the whole section, heading included

    @property
    def rank(self) -> int:
        if _WHOLE.search(self.heading):
            return 0
        if _DROP.search(self.heading):
            return 3
        return 1 if _KEEP.search(self.heading) else 2


def _sections(text: str) -> list[_Section]:
    starts = [m.start() for m in _HEADING.finditer(text)]
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    out = []
    for begin, end in zip(starts, [*starts[1:], len(text)], strict=True):
        chunk = text[begin:end]
        heading = chunk.split("\n", 1)[0] if _HEADING.match(chunk) else ""
        out.append(_Section(heading=heading, text=chunk))
    return out


def _cut(body: str, room: int) -> str:
    keep = max(0, room - 60)
    return body[:keep].rstrip() + f"\n[... {len(body) - keep:,} characters of this section cut]\n"


def prompt_description(text: str, limit: int = DESCRIPTION_CHARS) -> str:
    """`text` if it fits in `limit` characters, else its sections by priority, in their own order,
    each cut one marked with what was left out."""
    text = text.strip()
    if len(text) <= limit:
        return text
    sections = _sections(text)
    kept: dict[int, str] = {}
    room = limit
    for i, section in enumerate(sections):
        if section.rank == 0:  # how a submission is scored and what it holds: whole (one huge one is cut)
            kept[i] = _cut(section.text, limit) if len(section.text) > limit else section.text.rstrip() + "\n"
            room -= len(kept[i])
    for rank in (1, 2):
        for i, section in enumerate(sections):
            if section.rank != rank or room <= 0:
                continue
            body = section.text.rstrip() + "\n"
            kept[i] = body if len(body) <= room else _cut(body, room)
            room -= len(kept[i])
    dropped = [s.heading.strip("# ").split("\n")[0] for i, s in enumerate(sections) if i not in kept and s.heading]
    out = "\n".join(kept[i].rstrip() for i in sorted(kept))
    if dropped:
        out += "\n\n[Sections left out to save space: " + "; ".join(dropped[:12]) + "]"
    return out
