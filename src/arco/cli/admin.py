"""``arco admin``: one-off operator tasks on the Temporal side of a deployment (docs/operations.md)."""

from __future__ import annotations

import asyncio

import click

from arco.core.config import ArcoSettings
from arco.worker.connect import connect
from arco.worker.namespace import Registration, register_search_attributes


@click.group()
def admin() -> None:
    """Operator tasks: register Arco's search attributes in a namespace (see docs/operations.md)."""


@admin.command("register-search-attributes")
@click.option("--dry-run", is_flag=True, help="Only say which attributes are missing; register nothing.")
def register(dry_run: bool) -> None:
    """Register those of Arco's search attributes that the namespace lacks; leave the others as they are.

    Idempotent: run it on every release (the compose `setup` job does), and a release that adds an attribute
    registers just that one. The namespace is ARCO_TEMPORAL_NAMESPACE (with {tenant}: ARCO_TENANT's).
    """
    settings = ArcoSettings.from_env()
    done = asyncio.run(_register(settings, dry_run))
    verb = "would register" if dry_run else "registered"
    added = ", ".join(done.added) if done.added else "nothing"
    click.echo(
        f"namespace {done.namespace!r}: {verb} {added}; {len(done.present)} of Arco's "
        f"{len(done.added) + len(done.present)} search attributes already present"
    )


async def _register(settings: ArcoSettings, dry_run: bool) -> Registration:
    client = await connect(settings)
    return await register_search_attributes(client, dry_run=dry_run)
