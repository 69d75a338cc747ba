"""Spans of Arco's own work (planning, the asset function, data reads and writes, catalog commits), on OpenTelemetry.

Only the light ``opentelemetry-api`` is used here: with no tracer provider configured every span is a no-op. The
process edge (:mod:`arco.worker.tracing`) installs the SDK and an exporter from the standard ``OTEL_*``
variables, and Temporal's tracing interceptor carries the context from the client through the workflows into the
activities. Workflow code never imports this module: the interceptor alone traces workflows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

#: Instrumentation scope of Arco's spans.
TRACER_NAME = "arco"

_propagator = TraceContextTextMapPropagator()


def tracer() -> trace.Tracer:
    """Arco's tracer, from the global tracer provider (a no-op until one is configured)."""
    return trace.get_tracer(TRACER_NAME)


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, AttributeValue | None] | None = None) -> Iterator[trace.Span]:
    """A span over the block, child of the current one; an exception leaving the block is recorded on it.

    ``None`` attribute values are left out (OpenTelemetry refuses them).
    """
    clean = {key: value for key, value in (attributes or {}).items() if value is not None}
    with tracer().start_as_current_span(name, attributes=clean) as current:
        yield current


def annotate(attributes: Mapping[str, AttributeValue | None]) -> None:
    """Set ``attributes`` on the current span (``None`` values left out)."""
    current = trace.get_current_span()
    for key, value in attributes.items():
        if value is not None:
            current.set_attribute(key, value)


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, or ``None`` when no (valid) span is current."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


@contextlib.contextmanager
def continued(traceparent: str | None) -> Iterator[None]:
    """Continue the trace of ``traceparent`` in the block, unless a span is already current.

    A Temporal activity run under the tracing interceptor already has its parent (the activity's own span); an
    HTTP worker, or an executor without the interceptor, has only the envelope's ``traceparent``. A missing or
    malformed value leaves the context as it is.
    """
    if trace.get_current_span().get_span_context().is_valid or not traceparent:
        yield
        return
    extracted = _propagator.extract({"traceparent": traceparent})
    if not trace.get_current_span(extracted).get_span_context().is_valid:
        yield
        return
    token = otel_context.attach(extracted)
    try:
        yield
    finally:
        otel_context.detach(token)
