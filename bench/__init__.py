"""genedge.bench."""
