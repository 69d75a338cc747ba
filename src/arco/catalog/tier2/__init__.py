"""Tier 2: operational facts appended cheaply and folded into Parquet projections by a compactor.

* :mod:`arco.catalog.tier2.events`: the event envelope and the typed facts;
* :mod:`arco.catalog.tier2.ledger`: append-only ledger objects (append, read, quarantine);
* :mod:`arco.catalog.tier2.projections`: the projections' schemas, merge rules and readers;
* :mod:`arco.catalog.tier2.fold`: decoding ledger events and folding them into projection rows (pure);
* :mod:`arco.catalog.tier2.compaction`: the compactor: folding the ledger into the projections and
  publishing them;
* :mod:`arco.catalog.tier2.fresh`: fresh reads: the compacted projections merged with the uncompacted ledger tail;
* :mod:`arco.catalog.tier2.retention`: deleting folded ledger objects and expired snapshots.
"""
