"""The tree-search baseline (`--strategy tree`), in the style of AIDE's greedy search.

It shares everything with Gome (task reader, LLM layer, prompts for drafting, improving and
debugging, executor, scheduler, budget, records, the trace's step machinery) except the search
itself, so that a comparison measures the search:

- every step adds one node to a tree and runs it once (no debug loop inside a step);
- the first `num_drafts` nodes are independent drafts;
- then, with probability `debug_prob`, a buggy leaf no deeper than `max_debug_depth` debug
  steps is picked and a fix of it becomes a child node;
- otherwise the node with the best scalar validation score is improved (a child node with one
  change, from the feedback straight to code: no structured diagnosis, no success memory), or a
  new draft is made while no node works.

A node is "accepted" when it becomes the tree's best, "rejected" when it works but scores lower,
"failed" when it is buggy.
"""

from __future__ import annotations

import random

from gome_agent.records.events import StepKind, StepRecord
from gome_agent.strategies.base import Proposal, Strategy
from gome_agent.strategies.step import Meter, Services, TraceState
from gome_agent.strategies.views import Failure, read_tail, tail


class TreeStrategy(Strategy):
    """Greedy tree search over scalar validation scores."""

    name = "tree"
    rejected_code = "kept in the tree"

    def __init__(self, *, index: int, services: Services, state: TraceState) -> None:
        super().__init__(index=index, services=services, state=state)
        self.tree = self.cfg.tree
        self.rng = random.Random(self.cfg.seed * 7919 + index)

    @property
    def max_debug(self) -> int:
        return 0  # debugging is a node of its own

    # Node selection -------------------------------------------------------------
    def nodes(self) -> list[StepRecord]:
        return [s for s in self.state.steps if s.status != "error"]

    def debug_depth(self, node: StepRecord) -> int:
        by_step = {s.step: s for s in self.state.steps}
        depth, current = 0, node
        while current.kind == "debug" and current.parent_step in by_step:
            depth += 1
            current = by_step[current.parent_step]
        return depth

    def buggy_leaves(self) -> list[StepRecord]:
        nodes = self.nodes()
        parents = {s.parent_step for s in nodes}
        return [
            s for s in nodes
            if s.status == "failed" and s.code_dir and s.step not in parents
            and self.debug_depth(s) < self.tree.max_debug_depth
        ]

    def choose(self) -> tuple[StepKind, StepRecord | None]:
        """The next action and the node it starts from (AIDE's search policy)."""
        drafts = [s for s in self.nodes() if s.kind == "draft"]
        if len(drafts) < self.tree.num_drafts:
            return "draft", None
        if self.rng.random() < self.tree.debug_prob:
            leaves = self.buggy_leaves()
            if leaves:
                return "debug", self.rng.choice(leaves)
        if self.state.best is None:
            return "draft", None
        return "improve", self.state.best

    # The step ------------------------------------------------------------------------
    def propose(self, record: StepRecord, meter: Meter) -> Proposal:
        action, parent = self.choose()
        record.kind = action
        record.parent_step = parent.step if parent else None
        record.component = None
        if action == "draft":
            # AIDE's drafts are independent; the other traces (if any) are still kept apart.
            own = [f"earlier draft of this search: {s.hypothesis}"
                   for s in self.state.steps if s.kind == "draft" and s.hypothesis]
            return self.draft(record, meter, also_avoid=own)
        assert parent is not None and parent.code_dir is not None
        folder = self.cfg.workdir / parent.code_dir
        code = (folder / "main.py").read_text(encoding="utf-8")
        if action == "debug":
            # A leaf stopped by the static checks never ran: what they found is all there is to show.
            failure = Failure(
                message=parent.message, cause=parent.cause,
                problems=parent.static_problems if not parent.runs and not parent.smoke_runs else [],
                stderr_tail=tail(read_tail(folder / "stderr.txt")),
                stdout_tail=tail(read_tail(folder / "stdout.txt"), 1200),
            )
            fixed, change = self.fix(code, failure, parent.hypothesis, [], meter)
            record.hypothesis = f"fix step {parent.step}: {change or 'debug'}"
            return Proposal(fixed, change or "debug", code)
        fixed, change = self.direct(meter)
        record.hypothesis = change
        return Proposal(fixed, change, code)
