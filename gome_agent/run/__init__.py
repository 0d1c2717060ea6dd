"""The run: the coordinator of K trace processes, one trace as a process, and the final selection."""
