"""``arco deploy``: write a code location's asset manifest to the catalog so runs can be planned from it."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import click

from arco.core.config import ArcoSettings


def deploy_code_location(settings: ArcoSettings, target: str, name: str | None = None) -> dict[str, Any]:
    """Load ``target`` (module, ``.py`` file or package folder) and deploy it to the settings' catalog scope.

    Returns:
        What changed, as JSON-ready fields (code location, fingerprint, created/updated/unchanged/dropped, commit).
    """
    from arco.catalog.storage import open_store
    from arco.catalog.tier1.catalog import Catalog
    from arco.planning.deploy import deploy
    from arco.planning.location import load_code_location

    location = load_code_location(target, name=name)
    result = deploy(Catalog(open_store(settings.catalog_root), settings.scope), location)
    return dataclasses.asdict(result)


@click.command()
@click.argument("target")
@click.option("--name", default=None, help="Code location name (default: the module name).")
@click.option(
    "--app-dir",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder put first on the import path before TARGET is imported.",
)
@click.option("--catalog-root", default=None, help="Catalog root URI or path [env ARCO_CATALOG_ROOT].")
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True)
def deploy(target: str, name: str | None, app_dir: str, catalog_root: str | None, output: str) -> None:
    """Deploy the code location TARGET (a module such as examples.pipeline, a .py file or a package folder)."""
    settings = ArcoSettings.from_env(catalog_root=catalog_root)
    sys.path.insert(0, str(Path(app_dir).resolve()))
    result = deploy_code_location(settings, target, name)
    if output == "json":
        click.echo(json.dumps(result, indent=2, sort_keys=True))
        return
    click.echo(
        f"deployed {result['code_location']} to {settings.scope} ({result['fingerprint']}): "
        f"{result['created']} created, {result['updated']} updated, {result['unchanged']} unchanged, "
        f"{result['dropped']} dropped"
    )
