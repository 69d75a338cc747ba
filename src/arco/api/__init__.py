"""The HTTP read API and the catalog explorer (``arco serve``)."""
