"""Views of a run folder: a read-only reader, live progress, `gome status`, the HTML report, and
the released-traces layout."""
