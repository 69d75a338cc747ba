"""``arco partitions``: the dynamic partition key sets of the catalog (add, remove, list).

Assets partitioned by ``DynamicPartitions`` plan one partition per key of their key set. The catalog root comes
from ``--catalog-root`` or ``ARCO_CATALOG_ROOT``, the scope from ``--tenant``/``--workspace`` or
``ARCO_TENANT``/``ARCO_WORKSPACE``. Every command prints ``--output table`` (default, for people) or
``--output json`` (for scripts).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from arco.core.config import ArcoSettings
from arco.core.errors import InvalidInputError

if TYPE_CHECKING:
    from arco.catalog.tier1.dynamic_partitions import AddResult, DynamicPartitionStore, RemoveResult

F = TypeVar("F", bound=Callable[..., Any])


def _common(fn: F) -> F:
    """The options every sub-command takes (after its arguments, so they may come anywhere)."""
    fn = click.option(
        "--output",
        "-o",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help="Print text for people or JSON for scripts.",
    )(fn)
    fn = click.option("--workspace", default=None, help="Workspace id [env ARCO_WORKSPACE; default].")(fn)
    fn = click.option("--tenant", default=None, help="Tenant id [env ARCO_TENANT; default].")(fn)
    fn = click.option(
        "--catalog-root", default=None, help="Catalog root URI or path [env ARCO_CATALOG_ROOT]."
    )(fn)
    return fn


def _store(catalog_root: str | None, tenant: str | None, workspace: str | None) -> DynamicPartitionStore:
    # Imported here: pyarrow is slow to import, and `arco --help` should stay fast.
    from arco.catalog.storage import open_store
    from arco.catalog.tier1.dynamic_partitions import DynamicPartitionStore

    settings = ArcoSettings.from_env(catalog_root=catalog_root, tenant=tenant, workspace=workspace)
    return DynamicPartitionStore(open_store(settings.catalog_root), settings.scope)


def _keys(keys: Sequence[str], from_file: IO[str] | None, command: str) -> list[str]:
    """The keys given as arguments and, with ``--from-file``, one per line (blank lines skipped)."""
    found = list(keys)
    if from_file is not None:
        found.extend(line.rstrip("\r\n") for line in from_file if line.strip("\r\n"))
    if not found:
        raise InvalidInputError(
            f"no keys given; write them after the set name (`arco partitions {command} customers acme beta`) "
            "or pass --from-file FILE (one key per line, '-' for stdin)"
        )
    return found


def _parse_as_of(text: str) -> int | str | datetime.datetime:
    if text.isdigit():
        return int(text)
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return text  # a commit id
    if when.tzinfo is None:
        raise InvalidInputError(
            f"--as-of time {text!r} has no time zone; add one, e.g. {text}Z or {text}+00:00"
        )
    return when


def _echo_json(doc: dict[str, Any]) -> None:
    click.echo(json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True))


def _shown(keys: Sequence[str], limit: int = 10) -> str:
    more = f", ... ({len(keys)} in all)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


@click.group()
def partitions() -> None:
    """Dynamic partition key sets of the catalog (the partitions of DynamicPartitions assets)."""


@partitions.command("add")
@click.argument("key_set", metavar="SET")
@click.argument("keys", nargs=-1, metavar="KEY...")
@click.option(
    "--from-file",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="Also add the keys of this file, one per line ('-' for stdin).",
)
@_common
def add(
    key_set: str,
    keys: tuple[str, ...],
    from_file: IO[str] | None,
    catalog_root: str | None,
    tenant: str | None,
    workspace: str | None,
    output: str,
) -> None:
    """Add KEYs to the key set SET in one commit (keys already in it are left as they are).

    Put `--` before keys that start with '-': `arco partitions add offsets -- -1`.
    """
    result = _store(catalog_root, tenant, workspace).add(key_set, _keys(keys, from_file, "add"))
    _report_change(
        result,
        output,
        changed=("added", "added {n} key(s) to", result.added),
        unchanged=("alreadyPresent", "already in", result.already_present),
    )


@partitions.command("remove")
@click.argument("key_set", metavar="SET")
@click.argument("keys", nargs=-1, metavar="KEY...")
@click.option(
    "--from-file",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="Also remove the keys of this file, one per line ('-' for stdin).",
)
@_common
def remove(
    key_set: str,
    keys: tuple[str, ...],
    from_file: IO[str] | None,
    catalog_root: str | None,
    tenant: str | None,
    workspace: str | None,
    output: str,
) -> None:
    """Remove KEYs from the key set SET in one commit (keys not in it are reported).

    Put `--` before keys that start with '-'.
    """
    result = _store(catalog_root, tenant, workspace).remove(key_set, _keys(keys, from_file, "remove"))
    _report_change(
        result,
        output,
        changed=("removed", "removed {n} key(s) from", result.removed),
        unchanged=("notPresent", "not in", result.not_present),
    )


def _report_change(
    result: AddResult | RemoveResult,
    output: str,
    *,
    changed: tuple[str, str, Sequence[str]],
    unchanged: tuple[str, str, Sequence[str]],
) -> None:
    """Print what an add or remove did: ``(json field, table phrase, keys)`` for changed and unchanged keys."""
    if output == "json":
        _echo_json(
            {
                "keySet": result.key_set,
                changed[0]: list(changed[2]),
                unchanged[0]: list(unchanged[2]),
                "committed": result.committed,
                "sequence": result.sequence,
                "commitId": result.commit_id,
            }
        )
        return
    if changed[2]:
        phrase = changed[1].format(n=len(changed[2]))
        click.echo(f"{phrase} {result.key_set}: {_shown(changed[2])}")
    if unchanged[2]:
        click.echo(f"{unchanged[1]} {result.key_set}: {_shown(unchanged[2])}")
    if result.committed:
        click.echo(f"commit {result.sequence} ({result.commit_id})")
    else:
        click.echo("nothing to commit")


@partitions.command("list")
@click.argument("key_set", metavar="[SET]", required=False)
@click.option(
    "--as-of",
    default=None,
    help="Show an earlier state: a commit sequence, a commit id or an ISO time with time zone.",
)
@_common
def list_(
    key_set: str | None,
    as_of: str | None,
    catalog_root: str | None,
    tenant: str | None,
    workspace: str | None,
    output: str,
) -> None:
    """List the keys of SET, or every key set with its number of keys."""
    store = _store(catalog_root, tenant, workspace)
    snapshot = store.snapshot() if as_of is None else store.as_of(_parse_as_of(as_of))
    if key_set is not None:
        keys = snapshot.keys(key_set)
        if output == "json":
            _echo_json({"keySet": key_set, "keys": keys, "sequence": snapshot.sequence})
        elif not keys:
            click.echo(f"(key set {key_set} has no keys; add some with `arco partitions add {key_set} KEY`)")
        else:
            for key in keys:
                click.echo(key)
        return
    sets = snapshot.sets()
    if output == "json":
        _echo_json({"keySets": sets, "sequence": snapshot.sequence})
        return
    if not sets:
        click.echo("(no key sets; add keys with `arco partitions add SET KEY...`)")
        return
    width = max(len("SET"), *(len(name) for name in sets))
    click.echo(f"{'SET'.ljust(width)}  KEYS")
    for name, found in sets.items():
        click.echo(f"{name.ljust(width)}  {len(found)}")
