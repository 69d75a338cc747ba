"""Tier 1: strongly consistent DDL through compare-and-swap commits.

* :mod:`arco.catalog.tier1.entities` and :mod:`arco.catalog.tier1.schema`: the entities and their validation,
  Arrow schemas and schema evolution;
* :mod:`arco.catalog.tier1.catalog`: :class:`~arco.catalog.tier1.catalog.Catalog`, the DDL and read handle;
* :mod:`arco.catalog.tier1.dynamic_partitions`: dynamic partition key sets.
"""
