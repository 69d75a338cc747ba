"""Trace export at the process edge: the OpenTelemetry SDK and exporter from the standard ``OTEL_*`` variables.

Tracing is off unless ``OTEL_TRACES_EXPORTER`` is ``otlp`` or ``console``, or an OTLP endpoint is set
(``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, which mean ``otlp``). The OTLP
exporter (HTTP/protobuf) reads its own ``OTEL_EXPORTER_OTLP_*`` settings; the service name comes from
``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``, else ``arco``. When tracing is on, the Temporal client (and
every worker built on it) carries Temporal's :class:`TracingInterceptor`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from temporalio.contrib.opentelemetry import TracingInterceptor

from arco.core.errors import ConfigError

_EXPORTERS = ("otlp", "console", "none")
_lock = threading.Lock()
_configured: bool | None = None


def traces_exporter(environ: Mapping[str, str]) -> str:
    """The exporter the environment asks for: ``otlp``, ``console`` or ``none``.

    Raises:
        ConfigError: if ``OTEL_TRACES_EXPORTER`` names another exporter.
    """
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not named:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        return "otlp" if endpoint else "none"
    if named not in _EXPORTERS:
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER={named!r} is not supported; expected one of {', '.join(_EXPORTERS)} "
            "(set it to otlp with OTEL_EXPORTER_OTLP_ENDPOINT, or unset it to turn tracing off)"
        )
    return named


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def configure_tracing(environ: Mapping[str, str] | None = None) -> bool:
    """Install the SDK tracer provider and exporter the environment asks for, once per process.

    A tracer provider the host program installed itself (an embedding application, a test) is kept: Arco's
    spans and the interceptor then go to it.

    Returns:
        Whether tracing is on (and the Temporal client should carry the tracing interceptor).

    Raises:
        ConfigError: if ``OTEL_TRACES_EXPORTER`` names an unsupported exporter.
    """
    global _configured
    env = os.environ if environ is None else environ
    with _lock:
        if _configured is not None:
            return _configured
        if isinstance(trace.get_tracer_provider(), TracerProvider):
            _configured = True
            return True
        name = traces_exporter(env)
        if name == "none":
            _configured = False
            return False
        attributes = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": "arco"}
        provider = TracerProvider(resource=Resource.create(attributes))
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
        trace.set_tracer_provider(provider)
        _configured = True
        return True


def tracing_interceptors(enabled: bool) -> list[TracingInterceptor]:
    """The client (and worker) interceptors for tracing: Temporal's, when ``enabled``."""
    return [TracingInterceptor()] if enabled else []


def shutdown_tracing() -> None:
    """Flush the spans still buffered (call when the process ends)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush()
