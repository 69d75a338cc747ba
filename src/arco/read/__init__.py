"""The read side: the catalog as a reader sees it. It only reads; every write goes through :mod:`arco.catalog`.

* :mod:`arco.read.query`: one scope's snapshot under stable table names, and read-only SQL over it;
* :mod:`arco.read.lineage`: lineage traversal, impact and rendering (declared and observed);
* :mod:`arco.read.search`: search over namespaces, tables, columns and assets;
* :mod:`arco.read.signing`: signed URLs of a snapshot's files for direct reads (DuckDB, Polars, a browser);
* :mod:`arco.read.openlineage`: OpenLineage export of the recorded runs.
"""
