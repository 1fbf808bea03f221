"""Training (torch): models, datasets, pruning, joint optimization, export, integer evaluation."""
