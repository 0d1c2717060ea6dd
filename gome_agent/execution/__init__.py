"""Execution: running a solution in a sandbox, sharing the GPU and CPUs among traces, and the
machine the solutions see."""
