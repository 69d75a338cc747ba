"""Which trace exporter the standard ``OTEL_*`` variables select (tracing is off when none is set)."""

from __future__ import annotations

import os
import subprocess
import sys

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


def test_a_process_with_the_console_exporter_prints_arco_s_spans() -> None:
    # A fresh process: the tracer provider is global and set once per process.
    program = (
        "from arco.worker.tracing import configure_tracing, shutdown_tracing\n"
        "from arco.core.tracing import span\n"
        "assert configure_tracing()\n"
        "with span('arco.demo', {'arco.asset': 'demo.x'}):\n"
        "    pass\n"
        "shutdown_tracing()\n"
    )
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "arco-test"}
    done = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert '"name": "arco.demo"' in done.stdout
    assert '"arco.asset": "demo.x"' in done.stdout
    assert '"service.name": "arco-test"' in done.stdout


def test_a_process_without_otel_variables_traces_nothing() -> None:
    program = (
        "from opentelemetry import trace\n"
        "from arco.worker.tracing import configure_tracing\n"
        "assert not configure_tracing()\n"
        "assert not trace.get_current_span().get_span_context().is_valid\n"
        "print(type(trace.get_tracer_provider()).__name__)\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "ProxyTracerProvider"
