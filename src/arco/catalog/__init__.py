"""The file-native catalog: everything Arco keeps on object storage, and how it is written.

Subpackages, lowest first (each may import only those below it, and :mod:`arco.core`):

* :mod:`arco.catalog.storage`: the one storage seam (local folder, ``memory://``, GCS, S3 through fsspec);
* :mod:`arco.catalog.log`: the commit log both tiers share (object layout, manifests and the pointer CAS,
  keyed datasets);
* :mod:`arco.catalog.tier1`: strongly consistent DDL (namespaces, tables, columns, assets, dynamic partition
  key sets);
* :mod:`arco.catalog.tier2`: operational facts (event envelope, ledger, compaction into projections,
  retention).

Reading the catalog as tables, lineage and search is the read side, :mod:`arco.read`. Nothing here imports
Temporal.
"""
