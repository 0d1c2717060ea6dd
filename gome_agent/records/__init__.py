"""What a run writes to its folder: the events, the best submission kept in place, the run's clock."""
