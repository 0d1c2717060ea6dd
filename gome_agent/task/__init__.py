"""The task: reading a competition folder, the sample submission, metrics, checking a submission,
and the constant fallback."""
