"""Activities of the health check: a real write/read/delete round trip on the catalog's object store."""

from __future__ import annotations

import hashlib
import os
import socket
from importlib.metadata import version

from temporalio import activity

from arco.catalog.storage import open_store
from arco.core.health import IDENTITY_ACTIVITY, PROBE_CATALOG_ACTIVITY, CatalogProbe, HealthCheckInput
from arco.core.scope import Scope


class HealthActivities:
    """Health-check activities bound to one catalog root."""

    def __init__(self, catalog_root: str, storage_options: dict[str, object] | None = None) -> None:
        self._catalog_root = catalog_root
        self._storage_options = storage_options

    @activity.defn(name=PROBE_CATALOG_ACTIVITY)
    def probe_catalog(self, request: HealthCheckInput) -> CatalogProbe:
        """Write a probe object, read it back and delete it.

        The key derives from the workflow and attempt, so a retried attempt never collides with the earlier one.
        """
        info = activity.info()
        scope = Scope(request.tenant_id, request.workspace_id)
        digest = hashlib.sha256(f"{info.workflow_id}\0{info.workflow_run_id}".encode()).hexdigest()[:24]
        key = f"{scope.prefix}/_health/{digest}-{info.attempt}"
        payload = f"arco health probe {info.workflow_id} attempt {info.attempt}\n".encode()
        store = open_store(self._catalog_root, storage_options=self._storage_options)
        store.create_if_absent(key, payload)
        read_back = store.read(key)
        store.delete(key)
        return CatalogProbe(
            catalog_root=store.uri,
            probe_key=key,
            written_bytes=len(payload),
            read_back_equal=read_back == payload,
            requests=store.stats.total,
        )

    @activity.defn(name=IDENTITY_ACTIVITY)
    def worker_identity(self) -> dict[str, str]:
        """Who served this activity, with the versions it runs."""
        return {
            "identity": _identity(),
            "arcoVersion": version("arco"),
            "temporalioVersion": version("temporalio"),
        }


def _identity() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"
