"""Connecting to Temporal with Arco's data converter."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfigProfile

from arco.core.config import ArcoSettings
from arco.core.errors import InfrastructureError


async def connect(settings: ArcoSettings, *, identity: str | None = None) -> Client:
    """Connect a Temporal client for ``settings``, with the pydantic data converter.

    TLS certificates and gRPC metadata come from Temporal's own environment configuration (``TEMPORAL_*``
    variables, ``temporal.toml``); address and namespace from the settings.

    Raises:
        InfrastructureError: if the server cannot be reached; the message says how to start one.
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
    try:
        return await Client.connect(data_converter=pydantic_data_converter, **options)
    except RuntimeError as exc:
        raise InfrastructureError(
            f"cannot connect to Temporal at {settings.temporal_address} (namespace "
            f"{settings.temporal_namespace!r}): {exc}; start the embedded stack with `arco dev`, or set "
            "ARCO_TEMPORAL_ADDRESS / TEMPORAL_ADDRESS to a running server"
        ) from None
