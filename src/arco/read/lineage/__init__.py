"""Lineage: recorded execution lineage beside the declared asset graph (:mod:`arco.read.lineage.traverse`)."""
