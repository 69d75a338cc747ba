"""Names of Arco's custom Temporal search attributes.

``arco dev`` and the test server register them at start; production clusters register them once with
``temporal operator search-attribute create`` (see docs/runs.md). The names are stable: workflows upsert them
and users filter on them in the Temporal UI and CLI (``temporal workflow list --query 'ArcoTenant="acme"'``).
This module has no Temporal import so that the CLI and docs can read it cheaply.
"""

from __future__ import annotations

#: Search attribute name -> Temporal indexed value type.
SEARCH_ATTRIBUTES: dict[str, str] = {
    "ArcoTenant": "Keyword",
    "ArcoWorkspace": "Keyword",
    "ArcoRunKey": "Keyword",
    "ArcoRunState": "Keyword",
    "ArcoAssetKeys": "KeywordList",
    "ArcoPartitionKey": "Keyword",
    "ArcoPlanFingerprint": "Keyword",
    "ArcoTaskCount": "Int",
}
