"""Names of Arco's custom Temporal search attributes.

``arco dev`` and the test server register them at start; production clusters register them once with
``temporal operator search-attribute create`` (see docs/runs.md). The names are stable: workflows upsert them
and users filter on them in the Temporal UI and CLI (``temporal workflow list --query 'ArcoTenant="acme"'``).
This module has no Temporal import so that the CLI, the read API and docs can read it cheaply.
"""

from __future__ import annotations

import re
from datetime import datetime

from arco.core.errors import InvalidInputError
from arco.core.runs import RUN_WORKFLOW, RunState
from arco.core.scope import Scope

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


#: Characters a value in a visibility query may have (scope ids, asset keys, run states).
_QUERY_VALUE = re.compile(r"[A-Za-z0-9_.:\-/@=\[\]]{1,512}")


def _query_value(value: str, what: str) -> str:
    if _QUERY_VALUE.fullmatch(value) is None:
        raise InvalidInputError(
            f"{what} {value!r} cannot be searched for: expected 1 to 512 letters, digits or _ . : - / @ = [ ]"
        )
    return f"'{value}'"


def run_list_query(
    scope: Scope,
    *,
    states: tuple[RunState, ...] = (),
    asset: str | None = None,
    since: datetime | None = None,
) -> str:
    """The Temporal visibility query that lists the runs of ``scope`` (``arco.client.list_runs``, the read API).

    Raises:
        InvalidInputError: if ``since`` has no time zone or a value cannot be written into a query.
    """
    parts = [
        f"WorkflowType = '{RUN_WORKFLOW}'",
        f"ArcoTenant = {_query_value(scope.tenant, 'tenant')}",
        f"ArcoWorkspace = {_query_value(scope.workspace, 'workspace')}",
    ]
    if states:
        parts.append(
            f"ArcoRunState IN ({', '.join(_query_value(RunState(s).value, 'state') for s in states)})"
        )
    if asset is not None:
        parts.append(f"ArcoAssetKeys = {_query_value(asset, 'asset key')}")
    if since is not None:
        if since.utcoffset() is None:
            raise InvalidInputError(
                f"since {since.isoformat()} has no time zone; give one, e.g. 2026-01-01T00:00:00Z"
            )
        parts.append(f"StartTime >= '{since.isoformat()}'")
    return " AND ".join(parts)
