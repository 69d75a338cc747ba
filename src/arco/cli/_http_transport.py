"""Options of the HTTP worker transport, shared by ``arco worker callbacks`` and ``arco dev``."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from arco.core.errors import ConfigError
from arco.core.http_transport import CallbackSettings, HttpQueue
from arco.core.task_tokens import TaskTokenKeys

#: Where the callback server listens unless told otherwise: loopback only.
DEFAULT_LISTEN = "127.0.0.1:8780"
_F = TypeVar("_F", bound=Callable[..., Any])


def http_transport_options(func: _F) -> _F:
    """Add ``--listen``, ``--callback-url``, ``--http-queue`` and ``--dispatch-secret-env`` to a command."""
    options = [
        click.option(
            "--listen",
            default=DEFAULT_LISTEN,
            show_default=True,
            metavar="HOST:PORT",
            help="Where the callback server listens (loopback by default; 0.0.0.0:PORT for every interface).",
        ),
        click.option(
            "--callback-url",
            default=None,
            metavar="URL",
            help="URL workers call back (envelope callbackBaseUrl) [env ARCO_CALLBACK_URL; default http://LISTEN].",
        ),
        click.option(
            "--http-queue",
            "http_queues",
            multiple=True,
            metavar="QUEUE=URL",
            help="Dispatch the tasks of worker queue QUEUE by POSTing them to URL (repeatable), e.g. "
            "etl=http://127.0.0.1:9000/dispatch.",
        ),
        click.option(
            "--dispatch-secret-env",
            default="ARCO_DISPATCH_SECRET",
            show_default=True,
            metavar="NAME",
            help="Environment variable holding the secret sent to the workers as X-Arco-Dispatch-Secret.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8780`` for IPv6) as a host and a port.

    Raises:
        ConfigError: if it is not HOST:PORT with a port from 0 to 65535.
    """
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"--listen {text!r} must be HOST:PORT, such as {DEFAULT_LISTEN}")
    return host, int(port)


def callback_settings(
    *,
    listen: str,
    callback_url: str | None,
    http_queues: tuple[str, ...],
    dispatch_secret_env: str,
    env: Mapping[str, str] | None = None,
    generate_token_secret: bool = False,
) -> CallbackSettings:
    """The callback server's settings from the options and ``ARCO_TOKEN_SECRET`` (``_PREVIOUS``).

    Args:
        listen: ``--listen``.
        callback_url: ``--callback-url``.
        http_queues: ``--http-queue`` values.
        dispatch_secret_env: ``--dispatch-secret-env``.
        env: The environment (defaults to the process's).
        generate_token_secret: Without ``ARCO_TOKEN_SECRET``, sign with a random key of this process (``arco
            dev``: tokens then die with the process, which is what a local stack wants).

    Raises:
        ConfigError: if an option or variable is missing or invalid; the message says how to fix it.
    """
    source = os.environ if env is None else env
    token_secret = source.get("ARCO_TOKEN_SECRET", "")
    if not token_secret.strip():
        if not generate_token_secret:
            raise ConfigError(
                "ARCO_TOKEN_SECRET is not set; it signs the task tokens of HTTP workers. Set it to a random "
                "secret of at least 32 characters, e.g. export ARCO_TOKEN_SECRET=$(python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')"
            )
        token_secret = secrets.token_urlsafe(32)
    keys = TaskTokenKeys(token_secret, source.get("ARCO_TOKEN_SECRET_PREVIOUS") or None)
    queues: list[HttpQueue] = []
    if http_queues:
        secret = source.get(dispatch_secret_env, "")
        if not secret.strip():
            raise ConfigError(
                f"{dispatch_secret_env} is not set; it holds the secret sent to HTTP workers as "
                f"X-Arco-Dispatch-Secret. Set it (export {dispatch_secret_env}=...) or name another variable "
                "with --dispatch-secret-env"
            )
        for text in http_queues:
            queue = HttpQueue.parse(text, secret)
            if any(known.queue == queue.queue for known in queues):
                raise ConfigError(f"--http-queue {queue.queue} is given twice; give each queue once")
            queues.append(queue)
    url = callback_url or source.get("ARCO_CALLBACK_URL") or None
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError(f"callback URL {url!r} must start with http:// or https://")
    return CallbackSettings(
        keys=keys, listen=parse_listen(listen), queues=tuple(queues), callback_base_url=url
    )
