"""The tree-search baseline (`--strategy tree`), in the style of AIDE's greedy search.

It shares everything with Gome (task reader, LLM layer, prompts for drafting,
improving and debugging, executor, scheduler, budget, records) except the
search itself, so that a comparison measures the search:

- every step adds one node to a tree and runs it once (no debug loop inside a step);
- the first `num_drafts` nodes are independent drafts;
- then, with probability `debug_prob`, a buggy leaf no deeper than
  `max_debug_depth` debug steps is picked and a fix of it becomes a child node;
- otherwise the node with the best scalar validation score is improved (a child
  node with one change, from the feedback straight to code: no structured
  diagnosis, no success memory), or a new draft is made while no node works.

A node is "accepted" when it becomes the tree's best, "rejected" when it works
but scores lower, "failed" when it is buggy.
"""

from __future__ import annotations

import random

from gome_agent.records import StepRecord
from gome_agent.trace import Evaluation, Meter, Trace, _read_tail, _tail


class TreeSearch(Trace):
    """Greedy tree search over scalar validation scores, on the Gome trace machinery."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.tree = self.cfg.tree
        self.rng = random.Random(self.cfg.seed * 7919 + self.index)

    # Node selection -------------------------------------------------------------
    def _nodes(self) -> list[StepRecord]:
        return [s for s in self.state.steps if s.status != "error"]

    def _debug_depth(self, node: StepRecord) -> int:
        by_step = {s.step: s for s in self.state.steps}
        depth, current = 0, node
        while current.kind == "debug" and current.parent_step in by_step:
            depth += 1
            current = by_step[current.parent_step]
        return depth

    def _buggy_leaves(self) -> list[StepRecord]:
        nodes = self._nodes()
        parents = {s.parent_step for s in nodes}
        return [
            s for s in nodes
            if s.status == "failed" and s.code_dir and s.step not in parents
            and self._debug_depth(s) < self.tree.max_debug_depth
        ]

    def _choose(self) -> tuple[str, StepRecord | None]:
        """The next action and the node it starts from (AIDE's search policy)."""
        drafts = [s for s in self._nodes() if s.kind == "draft"]
        if len(drafts) < self.tree.num_drafts:
            return "draft", None
        if self.rng.random() < self.tree.debug_prob:
            leaves = self._buggy_leaves()
            if leaves:
                return "debug", self.rng.choice(leaves)
        if self.state.best is None:
            return "draft", None
        return "improve", self.state.best

    # The step ------------------------------------------------------------------------
    def _max_debug(self) -> int:
        return 0  # debugging is a node of its own

    def _propose(self, record: StepRecord, meter: Meter) -> str:
        action, parent = self._choose()
        record.kind = action  # type: ignore[assignment]
        record.parent_step = parent.step if parent else None
        record.component = None
        if action == "draft":
            code, record.hypothesis = self._draft(meter)
            return code
        assert parent is not None and parent.code_dir is not None
        folder = self.cfg.workdir / parent.code_dir
        code = (folder / "main.py").read_text(encoding="utf-8")
        if action == "debug":
            failure = {
                "message": parent.message,
                "problems": [],
                "stderr_tail": _tail(_read_tail(folder / "stderr.txt")),
                "stdout_tail": _tail(_read_tail(folder / "stdout.txt"), 1200),
            }
            fixed, change = self._fix(code, failure, parent.hypothesis, [], meter)
            record.hypothesis = f"fix step {parent.step}: {change or 'debug'}"
            return fixed
        fixed, change = self._direct(meter)
        record.hypothesis = change
        return fixed

    def _sibling_approaches(self) -> list[str]:
        # AIDE's drafts are independent; the other traces (if any) are still kept apart.
        own = [s.hypothesis for s in self.state.steps if s.kind == "draft" and s.hypothesis]
        return [*super()._sibling_approaches(), *(f"earlier draft of this search: {h}" for h in own)]

    def _decide(self, record: StepRecord, ev: Evaluation) -> None:
        super()._decide(record, ev)
        if record.status == "rejected":
            record.lesson = record.lesson.replace("rolled back.", "kept in the tree.")
