"""What every stage shares: the error type, atomic file writes, text tables, the tool environment."""
