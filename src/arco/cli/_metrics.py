"""``--metrics-listen``: the Prometheus endpoint option of Arco's long-lived processes (docs/operations.md)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TypeVar

import click

from arco.worker.metrics import MetricsEndpoint, parse_metrics_listen, start_metrics

F = TypeVar("F", bound=Callable[..., object])

#: Where ``arco dev`` serves its metrics unless told otherwise.
DEV_METRICS_LISTEN = "127.0.0.1:9464"


def _check(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value == "off":
        return None
    if value:
        try:
            parse_metrics_listen(value)
        except Exception as exc:
            raise click.BadParameter(str(exc)) from None
    return value or None


def metrics_listen_option(default: str | None = None) -> Callable[[F], F]:
    """The ``--metrics-listen HOST:PORT`` option (env ``ARCO_METRICS_LISTEN``); off when ``default`` is None."""
    return click.option(
        "--metrics-listen",
        "metrics_listen",
        default=default,
        show_default=default is not None,
        envvar="ARCO_METRICS_LISTEN",
        callback=_check,
        help="HOST:PORT of the Prometheus endpoint: Arco's metrics there, the Temporal SDK's on PORT+1 "
        + ("" if default is None else "('off' to turn it off) ")
        + "[env ARCO_METRICS_LISTEN].",
    )


@contextlib.contextmanager
def serving_metrics(listen: str | None) -> Iterator[MetricsEndpoint | None]:
    """Serve the metrics endpoint for the body (nothing when ``listen`` is None) and print where."""
    if listen is None:
        yield None
        return
    endpoint = start_metrics(listen)
    click.echo(f"metrics on {endpoint.url} (Temporal SDK: {endpoint.temporal_url})")
    try:
        yield endpoint
    finally:
        endpoint.close()
