"""Search strategies on a shared step machinery: Gome's gradient step and the tree-search baseline,
the trace that runs either, and the prompts they send."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gome_agent.strategies.base import Strategy

# name -> module:class. A new strategy is a module with a `Strategy` subclass and a line here
# (and its name in RunConfig.strategy). Imported on use, so reading the prompts loads no trace.
STRATEGIES = {"gome": "gome:GomeStrategy", "tree": "tree:TreeStrategy"}


def strategy_class(name: str) -> type[Strategy]:
    """The strategy called `name` (as in `--strategy`)."""
    if name not in STRATEGIES:
        raise KeyError(f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})")
    module, cls = STRATEGIES[name].split(":")
    return getattr(importlib.import_module(f"gome_agent.strategies.{module}"), cls)
