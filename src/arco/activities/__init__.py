"""Activities: every side effect of the control plane (planning from the catalog, recording events, compaction)."""
