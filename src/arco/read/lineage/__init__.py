"""Lineage traversal over recorded execution lineage, side by side with the declared asset graph.

**What is recorded.** Every task attempt records a ``LineageObserved`` fact: the datasets it actually read and
wrote (URI, and the asset and partition they belong to, if any). The compactor folds those facts into the
``lineage_edges`` projection: one row per (input, output) pair of an attempt, with its run, task, attempt and
time (:mod:`arco.catalog.tier2.projections`). The *declared* graph is what deployed code says: each deployed asset's
dependencies, stored in its Tier-1 ``definition`` (:mod:`arco.planning.deploy`).

**Nodes and levels.** A traversal starts at

* an asset (``sales.revenue``): nodes are assets, plus external datasets (``dataset:s3://...``) that no asset
  owns; edges aggregate every observation between two nodes;
* an asset partition (``sales.revenue@date=d:2024-01-01``) or a dataset URI: nodes are asset partitions and
  datasets, so the answer says exactly which partitions fed which.

Each edge lists the observations (run, task, attempt, attempt id, input and output partition, time) that produced
it, newest first. Filters narrow the observations used: ``run_id``, ``partition`` (either side of the edge has it)
and ``as_of`` (the projections snapshot at that time, and only observations up to it).

**Declared vs observed.** Every edge between two assets carries ``observed`` and ``declared`` and a ``status``:
``matched``, ``observed_not_declared`` (the code read something its asset does not declare), or
``declared_not_observed`` (a declared dependency no recorded execution read; such edges are also followed at the
asset level, so the graph shows both sides). Edges to external datasets, or into assets without a deployed
definition, are ``not_comparable``.

**Limits.** ``hops`` (1..:data:`~arco.read.lineage.traverse.MAX_HOPS`), ``max_nodes``, ``max_edges`` and
``max_observations`` per edge. A limit that cuts the answer sets ``truncated`` and lists, in ``truncations``, which
limit cut it and at which nodes. Nodes at the last hop that have further edges are listed in ``beyond_hops`` (not a
truncation: the answer is complete for the hops asked).

The modules, each importing only those listed before it:

* :mod:`arco.read.lineage.model`: the answer's values (target, nodes, edges, observations, truncations, result);
* :mod:`arco.read.lineage.index`: the declared graph and the index of observed edges, cached per snapshot (how a
  cold and a warm traversal read the ``lineage_edges`` projection is told there);
* :mod:`arco.read.lineage.traverse`: :func:`~arco.read.lineage.traverse.lineage`, at asset and partition level;
* :mod:`arco.read.lineage.impact`: what is downstream of a changed or failed asset partition;
* :mod:`arco.read.lineage.render`: export as Mermaid or Graphviz DOT, and rendering to SVG or PNG.
"""
