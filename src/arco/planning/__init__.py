"""Asset graphs, code-location manifests and deterministic run planning."""
