"""Momentum: the success memory shared by all traces of a run.

Every accepted step is appended to `memory/successes.jsonl` (process-safe).
A diagnosis sees the entries most relevant to the current problem, weighted as
in the reference method:

    weight = similarity * exp(-ln2 / half_life * age) + tanh(advantage)

where `age` counts run-wide steps since the entry was recorded (a step clock in
`memory/clock.json`, ticked by every trace) and `advantage` is how much better
the entry's score is than the asking trace's best, in units of 1% of that best,
signed by the metric's direction. The number shown is bounded (`top_k`), so
prompts stay the same size however long the run grows.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock
from pydantic import BaseModel, ValidationError

from gome_agent import jsonl
from gome_agent.optimizer.similarity import TextIndex


class MemoryEntry(BaseModel):
    """One accepted step: what was tried, what problem it addressed, what it gained."""

    id: str
    trace: int
    step: int
    clock: int
    ts: str
    hypothesis: str
    component: str
    problem: str
    score: float
    gain: float | None

    def text(self) -> str:
        return f"{self.hypothesis} {self.component} {self.problem}"


class Recall(BaseModel):
    """A retrieved entry with the parts of its weight."""

    entry: MemoryEntry
    age: int
    similarity: float
    decay: float
    advantage: float
    weight: float


class SuccessMemory:
    """Append-only shared memory of accepted steps, with a run-wide step clock."""

    def __init__(self, folder: Path, *, half_life_steps: float = 30.0) -> None:
        self.folder = folder
        self.path = folder / "successes.jsonl"
        self.clock_path = folder / "clock.json"
        self.gamma = math.log(2) / half_life_steps
        self._entries: list[MemoryEntry] = []
        self._offset = 0
        folder.mkdir(parents=True, exist_ok=True)

    # The step clock -------------------------------------------------------
    def tick(self) -> int:
        """Advance the run-wide step clock by one and return the new value."""
        with FileLock(str(self.clock_path) + ".lock"):
            value = self._read_clock() + 1
            tmp = self.clock_path.with_name(f".clock.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"steps": value}))
            os.replace(tmp, self.clock_path)
        return value

    def now(self) -> int:
        return self._read_clock()

    def _read_clock(self) -> int:
        try:
            return int(json.loads(self.clock_path.read_text())["steps"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return 0

    # Entries ----------------------------------------------------------------
    def record(
        self,
        *,
        trace: int,
        step: int,
        hypothesis: str,
        component: str,
        problem: str,
        score: float,
        gain: float | None,
    ) -> MemoryEntry:
        entry = MemoryEntry(
            id=uuid.uuid4().hex,
            trace=trace,
            step=step,
            clock=self.now(),
            ts=datetime.now(UTC).isoformat(timespec="seconds"),
            hypothesis=hypothesis,
            component=component,
            problem=problem,
            score=score,
            gain=gain,
        )
        jsonl.append(self.path, entry)
        return entry

    def entries(self) -> list[MemoryEntry]:
        """All entries, reading only what other processes appended since the last call."""
        if not self.path.exists():
            return list(self._entries)
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        end = chunk.rfind(b"\n")
        if end >= 0:
            for line in chunk[: end + 1].splitlines():
                self._parse_line(line)
            self._offset += end + 1
        return list(self._entries)

    def _parse_line(self, line: bytes) -> None:
        line = line.strip()
        if not line:
            return
        try:
            self._entries.append(MemoryEntry.model_validate_json(line))
        except ValidationError:
            # A line cut by a hard kill; the writer starts the next record on a new line.
            return

    # Retrieval --------------------------------------------------------------
    def recall(
        self,
        query: str,
        *,
        best_score: float | None,
        higher_is_better: bool,
        top_k: int,
        exclude_ids: set[str] | frozenset[str] = frozenset(),
    ) -> list[Recall]:
        """The `top_k` entries with the highest weight; the best-scoring entry is always among them."""
        pool = [e for e in self.entries() if e.id not in exclude_ids]
        if not pool or top_k <= 0:
            return []
        now = self.now()
        sims = TextIndex([e.text() for e in pool]).query(query)
        recalls = [self._weigh(e, s, now, best_score, higher_is_better) for e, s in zip(pool, sims, strict=True)]
        recalls.sort(key=lambda r: r.weight, reverse=True)
        chosen = recalls[:top_k]
        sign = 1.0 if higher_is_better else -1.0
        best = max(recalls, key=lambda r: sign * r.entry.score)
        if best not in chosen:
            chosen[-1] = best
        return chosen

    def _weigh(
        self, entry: MemoryEntry, similarity: float, now: int, best_score: float | None, higher_is_better: bool
    ) -> Recall:
        age = max(0, now - entry.clock)
        decay = math.exp(-self.gamma * age)
        advantage = 0.0
        if best_score is not None:
            sign = 1.0 if higher_is_better else -1.0
            scale = max(abs(best_score) * 0.01, 1e-12)
            advantage = sign * (entry.score - best_score) / scale
        weight = similarity * decay + math.tanh(advantage)
        return Recall(entry=entry, age=age, similarity=similarity, decay=decay, advantage=advantage, weight=weight)

    def ids_of(self, steps: set[tuple[int, int]]) -> set[str]:
        """The ids of the entries recorded for these (trace, step) pairs."""
        return {e.id for e in self.entries() if (e.trace, e.step) in steps}

    def support(self, texts: list[str], *, exclude_ids: set[str] | frozenset[str] = frozenset()) -> list[float]:
        """For each text, the strongest age-decayed similarity to any success (0..1), leaving out
        `exclude_ids` (the asking trace's own accepted steps, whose changes its code already has)."""
        pool = [e for e in self.entries() if e.id not in exclude_ids]
        if not pool:
            return [0.0] * len(texts)
        now = self.now()
        index = TextIndex([e.text() for e in pool])
        decays = [math.exp(-self.gamma * max(0, now - e.clock)) for e in pool]
        return [
            max(sim * decay for sim, decay in zip(index.query(text), decays, strict=True)) for text in texts
        ]
