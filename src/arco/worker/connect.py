"""Connecting to Temporal with Arco's data converter."""

from __future__ import annotations

from typing import Any

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfigProfile
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from arco.core.config import ArcoSettings
from arco.core.errors import InfrastructureError
from arco.worker.tracing import configure_tracing, tracing_interceptors


async def connect(
    settings: ArcoSettings,
    *,
    identity: str | None = None,
    tracing: bool | None = None,
    runtime: Runtime | None = None,
) -> Client:
    """Connect a Temporal client for ``settings``, with the pydantic data converter.

    TLS certificates and gRPC metadata come from Temporal's own environment configuration (``TEMPORAL_*``
    variables, ``temporal.toml``); address and namespace from the settings. With tracing on (``tracing``, by
    default the ``OTEL_*`` variables: :func:`arco.worker.tracing.configure_tracing`) the client and the workers
    built on it carry Temporal's tracing interceptor.
    variables, ``temporal.toml``); address and namespace from the settings. ``runtime``: the Temporal runtime
    of the process's metrics endpoint (:func:`arco.worker.metrics.start_metrics`), else the default one.

    Raises:
        ConfigError: if ``OTEL_TRACES_EXPORTER`` names an unsupported exporter.
        InfrastructureError: if the server cannot be reached, or the namespace does not exist there; the message
            says how to fix it.
    """
    profile = ClientConfigProfile.load(profile=settings.temporal_profile)
    options: dict[str, Any] = dict(profile.to_client_connect_config())
    options["target_host"] = settings.temporal_address
    options["namespace"] = settings.temporal_namespace
    if settings.temporal_api_key:
        options["api_key"] = settings.temporal_api_key
        options.setdefault("tls", True)
    if identity:
        options["identity"] = identity
    traced = configure_tracing() if tracing is None else tracing
    if runtime is not None:
        options["runtime"] = runtime
    try:
        client = await Client.connect(
            data_converter=pydantic_data_converter, interceptors=tracing_interceptors(traced), **options
        )
    except RuntimeError as exc:
        raise InfrastructureError(
            f"cannot connect to Temporal at {settings.temporal_address} (namespace "
            f"{settings.temporal_namespace!r}): {exc}; start the embedded stack with `arco dev`, or set "
            "ARCO_TEMPORAL_ADDRESS / TEMPORAL_ADDRESS to a running server"
        ) from None
    await _check_namespace(client, settings)
    return client


async def _check_namespace(client: Client, settings: ArcoSettings) -> None:
    """Say which namespace is missing, and why this one, instead of a "not found" on the first call.

    With one namespace per tenant a mistyped tenant names a namespace that does not exist. Anything but
    NOT_FOUND (no permission to describe it, for one) is left to the calls that follow.
    """
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=settings.temporal_namespace)
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            return
        origin = (
            f"the namespace of tenant {settings.tenant!r} under {settings.temporal_namespace_template!r}"
            if settings.temporal_namespace_template is not None
            else "ARCO_TEMPORAL_NAMESPACE / TEMPORAL_NAMESPACE"
        )
        raise InfrastructureError(
            f"Temporal namespace {settings.temporal_namespace!r} ({origin}) does not exist on "
            f"{settings.temporal_address}; check ARCO_TENANT and ARCO_TEMPORAL_NAMESPACE, or create the namespace "
            "and register Arco's search attributes in it (docs/runs.md, Isolation model for run control; "
            "`arco dev --namespace NAME` locally)"
        ) from None
