"""``arco serve`` (the read API and the explorer) and ``arco token issue`` (development tokens).

The read API's settings are read here, at the process edge:

=========================  ======================================================================================
``ARCO_API_JWT_SECRET``    HS256 secret (32 bytes or more) verifying bearer tokens; ``arco token issue`` signs with
                           it. Unset: the development secret ``arco dev`` keeps in ``{state dir}/api-secret``.
``ARCO_API_JWKS``          A JWKS file or ``https://`` URL verifying RS256/ES256 tokens.
``ARCO_API_FILES_SECRET``  Key of the signed local file URLs (default: derived from the JWT secret).
``ARCO_API_CORS_ORIGINS``  Comma-separated origins allowed to call the API from a browser (``*``: any).
``ARCO_API_PUBLIC_URL``    Base URL of signed local file URLs, behind a proxy or load balancer.
=========================  ======================================================================================
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import secrets
import socket
import sys
from collections.abc import Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import click

from arco.cli._metrics import metrics_listen_option, serving_metrics
from arco.core.config import ArcoSettings
from arco.core.errors import ConfigError, InfrastructureError, InvalidInputError
from arco.core.scope import Scope
from arco.worker.runtime import listening_socket

#: The file of the development secret, in the state dir.
SECRET_FILE: Final = "api-secret"
#: Default address of ``arco serve`` and of the API ``arco dev`` starts.
DEFAULT_LISTEN: Final = "127.0.0.1:8800"


def dev_secret(state_dir: str | Path, *, create: bool) -> str | None:
    """The development secret in ``{state_dir}/api-secret``, made (owner-only) when asked and missing."""
    path = Path(state_dir) / SECRET_FILE
    if path.is_file():
        return path.read_text().strip()
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as sink:
        sink.write(value + "\n")
    return value


def jwt_secret(
    settings: ArcoSettings, env: Mapping[str, str] | None = None, *, create: bool = False
) -> str | None:
    """``ARCO_API_JWT_SECRET``, else the development secret of the state dir (made if ``create``)."""
    source = os.environ if env is None else env
    return source.get("ARCO_API_JWT_SECRET") or dev_secret(settings.state_dir, create=create)


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` (``:0`` for a free port).

    Raises:
        InvalidInputError: if it is not ``host:port``.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise InvalidInputError(f"--listen {text!r} is not host:port (for example {DEFAULT_LISTEN})")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """What one API server needs, from options and environment."""

    catalog_root: str
    listen: str
    secret: str | None
    jwks: str | None
    files_secret: str | None
    cors_origins: tuple[str, ...]
    public_url: str | None


def serve_options(
    settings: ArcoSettings, listen: str, env: Mapping[str, str] | None = None, *, create_secret: bool = False
) -> ServeOptions:
    """Read the API settings (``ARCO_API_*``) once."""
    source = os.environ if env is None else env
    origins = tuple(o.strip() for o in source.get("ARCO_API_CORS_ORIGINS", "").split(",") if o.strip())
    return ServeOptions(
        catalog_root=settings.catalog_root,
        listen=listen,
        secret=jwt_secret(settings, source, create=create_secret),
        jwks=source.get("ARCO_API_JWKS") or None,
        files_secret=source.get("ARCO_API_FILES_SECRET") or None,
        cors_origins=origins,
        public_url=source.get("ARCO_API_PUBLIC_URL") or None,
    )


def _bind(listen: str) -> socket.socket:
    host, port = parse_listen(listen)
    return listening_socket(host, port, backlog=128, what="the read API")


def _runs_lister(settings: ArcoSettings) -> Any:
    """List runs from Temporal visibility, one client per tenant namespace, connected on first use."""
    from temporalio.service import RPCError

    from arco.client import list_runs
    from arco.core.runs import RunState
    from arco.worker.connect import connect

    clients: dict[str, Any] = {}

    async def lister(
        scope: Scope, *, states: tuple[str, ...], asset: str | None, limit: int
    ) -> list[dict[str, Any]]:
        namespace = settings.namespace_for(scope.tenant)
        if namespace not in clients:
            clients[namespace] = await connect(settings.model_copy(update={"temporal_namespace": namespace}))
        try:
            wanted = tuple(RunState(s) for s in states)
        except ValueError:
            raise InvalidInputError(
                f"state must be one of {', '.join(s.value for s in RunState)}, got {', '.join(states)}"
            ) from None
        try:
            listed = await list_runs(clients[namespace], scope, states=wanted, asset=asset, limit=limit)
        except RPCError as exc:
            raise InfrastructureError(
                f"Temporal refused to list the runs in namespace {namespace!r}: {exc.message}; check that Arco's "
                "search attributes are registered there (`arco doctor`)"
            ) from None
        return [item.to_wire() for item in listed]

    return lister


@asynccontextmanager
async def running_api(options: ServeOptions, settings: ArcoSettings | None = None) -> Any:
    """Serve the API in the running event loop until the context exits; yields its base URL."""
    import uvicorn

    from arco.api.app import ApiConfig, create_app
    from arco.api.auth import AuthConfig
    from arco.catalog.storage import open_store

    config = ApiConfig(
        auth=AuthConfig(secret=options.secret, jwks=options.jwks),
        files_secret=options.files_secret,
        cors_origins=options.cors_origins,
        public_url=options.public_url,
    )
    store = open_store(options.catalog_root)
    app = create_app(store, config, runs=_runs_lister(settings) if settings is not None else None)
    sock = _bind(options.listen)
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", server_header=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{port}"
    finally:
        server.should_exit = True
        with suppress(Exception):
            await asyncio.wait_for(task, 10)
        sock.close()
        store.close()


def explorer_line(base_url: str, token: str) -> str:
    """The line that opens the explorer with a token."""
    return f"Explorer: {base_url}/#token={token}"


@click.command()
@click.option(
    "--listen", default=DEFAULT_LISTEN, show_default=True, help="HOST:PORT to serve on (port 0: free)."
)
@click.option("--root", default=None, help="Catalog root URI or path [env ARCO_CATALOG_ROOT].")
@click.option("--state-dir", default=None, help="Where the development secret is [env ARCO_STATE_DIR].")
@click.option(
    "--print-token",
    is_flag=True,
    help="Print the explorer's address with a token of --tenant/--workspace (HS256 secret needed).",
)
@click.option("--tenant", default=None, help="Tenant of the printed token [env ARCO_TENANT; default].")
@click.option(
    "--workspace", default=None, help="Workspace of the printed token [env ARCO_WORKSPACE; default]."
)
@click.option("--token-ttl", default="24h", show_default=True, help="Lifetime of the printed token.")
@click.option("--no-temporal", is_flag=True, help="Answer /api/v1/runs from the ledger only.")
@metrics_listen_option()
def serve(
    listen: str,
    root: str | None,
    state_dir: str | None,
    print_token: bool,
    tenant: str | None,
    workspace: str | None,
    token_ttl: str,
    no_temporal: bool,
    metrics_listen: str | None,
) -> None:
    """Serve the read API (/api/v1/...) and the explorer (/) until Ctrl-C.

    Bearer tokens are verified with ARCO_API_JWT_SECRET (HS256) or ARCO_API_JWKS (RS256/ES256); see docs/api.md.
    """
    from arco.worker.runtime import shutdown_event

    settings = ArcoSettings.from_env(
        catalog_root=root, state_dir=state_dir, tenant=tenant, workspace=workspace
    )
    options = serve_options(settings, listen)
    parse_listen(listen)
    token = _token(options, settings.scope, token_ttl) if print_token else None
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    async def main() -> None:
        stop = shutdown_event()
        async with running_api(options, None if no_temporal else settings) as url:
            click.echo(f"Arco read API on {url}/api/v1/ (schema: {url}/api/v1/openapi.json)")
            click.echo(f"  Catalog root: {settings.catalog_root}")
            if token is not None:
                click.echo(f"  {explorer_line(url, token)}")
            click.echo("Press Ctrl-C to stop.")
            await stop.wait()
        click.echo("stopped")

    with serving_metrics(metrics_listen):
        asyncio.run(main())


def _token(options: ServeOptions, scope: Scope, ttl: str) -> str:
    from arco.api.auth import issue_token
    from arco.cli.query import _duration

    if options.secret is None:
        raise ConfigError(
            "--print-token signs with the HS256 secret: set ARCO_API_JWT_SECRET, or run `arco dev` once to make "
            "the development secret"
        )
    return issue_token(options.secret, scope, ttl=_duration(ttl))


@click.group()
def token() -> None:
    """Bearer tokens of the read API."""


@token.command("issue")
@click.option("--tenant", default=None, help="Tenant id [env ARCO_TENANT; default].")
@click.option("--workspace", default=None, help="Workspace id [env ARCO_WORKSPACE; default].")
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: e.g. 90s, 15m, 24h (at most 720h).")
@click.option("--subject", default=None, help="The token's sub claim (shown in access logs).")
@click.option("--state-dir", default=None, help="Where the development secret is [env ARCO_STATE_DIR].")
def issue(
    tenant: str | None, workspace: str | None, ttl: str, subject: str | None, state_dir: str | None
) -> None:
    """Print a development token (HS256, signed with ARCO_API_JWT_SECRET or the development secret)."""
    from arco.api.auth import issue_token
    from arco.cli.query import _duration

    settings = ArcoSettings.from_env(tenant=tenant, workspace=workspace, state_dir=state_dir)
    secret = jwt_secret(settings)
    if secret is None:
        raise ConfigError(
            "no secret to sign with: set ARCO_API_JWT_SECRET (e.g. `export ARCO_API_JWT_SECRET=$(openssl rand -hex "
            f"32)`), or run `arco dev` once to make the development secret in {settings.state_dir}/{SECRET_FILE}"
        )
    click.echo(issue_token(secret, settings.scope, ttl=_duration(ttl), subject=subject, now=_now()))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
