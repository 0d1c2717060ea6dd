"""gome-agent as an MLE-bench agent: the container mode, the grading server, registration, export."""
