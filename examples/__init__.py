"""Example code locations of Arco (``examples.pipeline`` is the one ``make demo`` runs)."""
