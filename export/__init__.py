"""genedge.export."""
