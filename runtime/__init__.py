"""genedge.runtime."""
