"""Workflows: deterministic Temporal workflow definitions with stable names; light imports, no I/O."""
