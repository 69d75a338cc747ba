"""Which trace exporter the standard ``OTEL_*`` variables select (tracing is off when none is set)."""

from __future__ import annotations

import pytest

from arco.core.errors import ConfigError
from arco.worker.tracing import traces_exporter


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "none"),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "none"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "Console"}, "console"),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, "otlp"),
    ],
)
def test_exporter_from_the_environment(environ: dict[str, str], expected: str) -> None:
    assert traces_exporter(environ) == expected


def test_an_unknown_exporter_is_refused_with_the_choices() -> None:
    with pytest.raises(
        ConfigError, match=r"OTEL_TRACES_EXPORTER='zipkin' is not supported; expected one of otlp"
    ):
        traces_exporter({"OTEL_TRACES_EXPORTER": "zipkin"})
