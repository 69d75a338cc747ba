"""Tier 1: strongly consistent DDL through compare-and-swap commits.

* :mod:`arco.catalog.tier1.entities` and :mod:`arco.catalog.tier1.schema`: the entities and their validation,
  Arrow schemas and schema evolution;
* :mod:`arco.catalog.tier1.catalog`: :class:`~arco.catalog.tier1.catalog.Catalog`, the DDL and read handle;
* :mod:`arco.catalog.tier1.snapshot`: the reads (:class:`~arco.catalog.tier1.snapshot.CatalogSnapshot`) and the
  datasets' schemas;
* :mod:`arco.catalog.tier1.operations`: the DDL operations and the transaction they apply to;
* :mod:`arco.catalog.tier1.dynamic_partitions`: dynamic partition key sets.
"""
