"""The optimizer's parts, free of processes and LLM calls: the gradient (the diagnosis's schema and
the choice of a direction), the common changes a small model's diagnosis is shown, momentum (the
success memory), text similarity, code edits, and the budget's time and stages."""
