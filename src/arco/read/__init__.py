"""The read side: the catalog as a reader sees it. It only reads; every write goes through :mod:`arco.catalog`.

* :mod:`arco.read.snapshot`: one scope's published catalog, pinned, under stable table names;
* :mod:`arco.read.sql`: the guard that refuses anything but one read-only ``SELECT`` over those tables;
* :mod:`arco.read.query`: read-only SQL over a snapshot: running a query within its limits, formatting results;
* :mod:`arco.read.lineage`: lineage traversal, impact and rendering (declared and observed);
* :mod:`arco.read.search`: search over namespaces, tables, columns and assets;
* :mod:`arco.read.signing`: signed URLs of a snapshot's files for direct reads (DuckDB, Polars, a browser);
* :mod:`arco.read.openlineage`: OpenLineage export of the recorded runs.
"""
