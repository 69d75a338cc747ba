"""The ``arco`` command line.

Sub-command groups live in their own modules and are imported only when used, so ``arco --help`` stays fast and a
missing optional dependency of one group never breaks another.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from arco.core.errors import ArcoError

#: Sub-command name -> "module:attribute" of a click command or group.
_SUBCOMMANDS: dict[str, str] = {
    "dev": "arco.cli.dev:dev",
    "demo": "arco.cli.dev:demo",
    "doctor": "arco.cli.dev:doctor",
    "worker": "arco.cli.worker:worker",
    "admin": "arco.cli.admin:admin",
    "catalog": "arco.cli.catalog:catalog",
    "run": "arco.cli.run:run",
    "deploy": "arco.cli.deploy:deploy",
    "partitions": "arco.cli.partitions:partitions",
    "schedule": "arco.cli.schedule:schedule",
    "compact": "arco.cli.schedule:compact",
    "query": "arco.cli.query:query",
    "lineage": "arco.cli.query:lineage",
    "search": "arco.cli.query:search",
    "sign": "arco.cli.query:sign",
    "openlineage": "arco.cli.query:openlineage",
    "serve": "arco.cli.serve:serve",
    "token": "arco.cli.serve:token",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_SUBCOMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _SUBCOMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ArcoError as exc:
            # Errors raised on purpose carry an actionable message: show it without a traceback.
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="arco")
def cli() -> None:
    """Arco: a file-native lakehouse catalog with execution-first orchestration on Temporal."""


def main() -> None:
    """Console-script entry point.

    The process ends with ``os._exit`` once the command has finished and its output is flushed: Temporal's native
    threads may still touch Python objects while CPython finalizes, which aborts the process (SIGABRT,
    "PyGILState_Release: thread state ... must be current"; temporalio/sdk-python#300) and would turn every
    finished command that talked to Temporal into a crash. Nothing is left to finalize at that point.
    """
    try:
        cli.main(prog_name="arco")  # click's standalone mode always ends in SystemExit
    except SystemExit as exc:
        code = exc.code
    if code is not None and not isinstance(code, int):
        click.echo(str(code), err=True)
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    main()
