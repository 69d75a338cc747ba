"""Read-only SQL over one scope's catalog: running one query within its limits, and formatting the result.

:func:`run_query` (CLI ``arco query "<sql>"``) runs one statement with Polars SQL over a
:class:`~arco.read.snapshot.ScopeSnapshot`: the Tier-1 manifest and the projections manifest of the scope, pinned
when the query starts, so a query sees one consistent state even while commits land. The tables are the stable
names listed in :mod:`arco.read.snapshot` (``catalog.*``, ``ops.*``, ``lineage.*``).

The guard (:func:`arco.read.sql.check_sql`) refuses anything but one read-only ``SELECT`` over those tables before
anything is read, and what runs is the statement as re-written from the checked syntax tree. Only the scope's own
frames are registered with the engine, and no name can reach another scope's files: a query is scoped by
construction.

**Limits** (:class:`~arco.read.sql.QueryLimits`), each with its own error: SQL length, result rows, result bytes,
bytes of the files the query would read (checked before reading), and wall-clock time (the query is cancelled).

:func:`format_result` writes the rows as aligned text, JSON, NDJSON, CSV or an Arrow IPC file.
"""

from __future__ import annotations

import datetime
import io
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

import polars as pl
import pyarrow as pa

from arco.catalog.storage import ObjectStore
from arco.catalog.tier2.ledger import DEFAULT_DOMAIN
from arco.core.errors import ArcoError, InvalidInputError, QueryError
from arco.core.scope import Scope
from arco.read.snapshot import ScopeSnapshot
from arco.read.sql import CheckedQuery, QueryLimits, check_sql

__all__ = [
    "OUTPUT_FORMATS",
    "OutputFormat",
    "QueryResult",
    "format_result",
    "run_query",
]

# -- running ------------------------------------------------------------------------------------------------

OutputFormat = Literal["table", "json", "ndjson", "csv", "arrow"]
#: The output formats of :func:`format_result`.
OUTPUT_FORMATS: Final[tuple[OutputFormat, ...]] = ("table", "json", "ndjson", "csv", "arrow")


@dataclass(frozen=True, slots=True)
class QueryResult:
    """The answer of one query.

    Attributes:
        frame: The rows.
        query: The checked query that ran.
        snapshot: The commit each domain was pinned to.
        elapsed_ms: Wall-clock milliseconds (loading files and running the engine).
    """

    frame: pl.DataFrame
    query: CheckedQuery
    snapshot: Mapping[str, str | None]
    elapsed_ms: float

    @property
    def rows(self) -> int:
        """Number of rows."""
        return self.frame.height

    def to_arrow(self) -> pa.Table:
        """The rows as an Arrow table."""
        return self.frame.to_arrow()

    def to_dicts(self) -> list[dict[str, Any]]:
        """The rows as dicts."""
        return self.frame.to_dicts()


# Longest sleep between two looks at a running query: the latency it adds to every answer (waiting on the
# engine's blocking fetch instead cannot be interrupted by the time limit).
_POLL_MAX_S: Final = 0.002


def _poll(query: Any, deadline: float) -> pl.DataFrame | None:
    delay = 0.0002
    while True:
        done = query.fetch()
        if done is not None:
            return cast(pl.DataFrame, done)
        now = time.monotonic()
        if now >= deadline:
            return None
        time.sleep(min(delay, deadline - now))
        delay = min(delay * 2, _POLL_MAX_S)


def run_query(
    store: ObjectStore,
    scope: Scope,
    sql: str,
    *,
    limits: QueryLimits | None = None,
    as_of: datetime.datetime | None = None,
    ledger_domain: str = DEFAULT_DOMAIN,
    snapshot: ScopeSnapshot | None = None,
) -> QueryResult:
    """Run one read-only SQL query over a scope's catalog with Polars SQL.

    Args:
        store: The catalog store.
        scope: Tenant and workspace: the only data the query can see.
        sql: One ``SELECT`` or ``WITH ... SELECT`` over the stable tables (see :mod:`arco.read.snapshot`).
        limits: Limits (defaults: :class:`QueryLimits`).
        as_of: Query the state as of an aware time.
        ledger_domain: Ledger domain of the ``ops.*``/``lineage.*`` tables.
        snapshot: A pinned snapshot to reuse (its scope must be ``scope``); by default the latest is pinned.

    Returns:
        The result.

    Raises:
        QueryError: if the guard refuses the query, a limit is exceeded, or the engine fails.
    """
    limits = limits or QueryLimits()
    started = time.perf_counter()
    checked = check_sql(sql, limits=limits)
    if snapshot is None:
        snapshot = ScopeSnapshot(store, scope, ledger_domain=ledger_domain, as_of=as_of)
    elif snapshot.scope != scope:
        raise QueryError(f"snapshot of scope {snapshot.scope} cannot answer a query of scope {scope}")
    scanned = snapshot.scan_bytes(checked.tables)
    if scanned > limits.max_scan_bytes:
        raise QueryError(
            f"the query would read {scanned:,} bytes of files ({', '.join(checked.tables)}), more than the "
            f"limit of {limits.max_scan_bytes:,}; raise QueryLimits.max_scan_bytes / --max-scan-bytes"
        )
    deadline = time.monotonic() + limits.timeout_s
    context = pl.SQLContext()
    for name in checked.tables:
        # Projections are read while the plan runs, only the columns it uses; Tier-1 tables are loaded here.
        context.register(name, snapshot.lazy(name))
    if time.monotonic() > deadline:
        raise QueryError(_timeout_message(limits, "loading the tables"))
    try:
        lazy = context.execute(checked.normalized, eager=False).limit(limits.max_rows + 1)
        running = lazy.collect(background=True)
    except ArcoError:
        raise
    except Exception as exc:  # Polars raises many exception types for user errors in SQL.
        raise QueryError(f"the query failed: {_engine_message(exc)}") from None
    try:
        frame = _poll(running, deadline)
    except ArcoError:
        raise  # a file of the snapshot is missing or corrupt: say so, not "the query failed"
    except Exception as exc:
        raise QueryError(f"the query failed: {_engine_message(exc)}") from None
    if frame is None:
        running.cancel()
        _abandon(running)
        raise QueryError(_timeout_message(limits, "running"))
    if frame.height > limits.max_rows:
        raise QueryError(
            f"the query returns more than {limits.max_rows:,} rows; add a LIMIT, filter or aggregate, or "
            "raise QueryLimits.max_rows / --max-rows"
        )
    size = int(frame.estimated_size())
    if size > limits.max_bytes:
        raise QueryError(
            f"the result is {size:,} bytes, more than the limit of {limits.max_bytes:,}; select fewer columns "
            "or rows, or raise QueryLimits.max_bytes / --max-bytes"
        )
    elapsed = (time.perf_counter() - started) * 1000
    return QueryResult(frame=frame, query=checked, snapshot=snapshot.commit_ids, elapsed_ms=elapsed)


# Cancelled queries whose engine threads may still be finishing: Polars checks for cancellation between
# operations, so a long single operation (a large cross join) runs to its end. Holding the handle until then
# keeps the engine from reporting a result nobody receives.
_ABANDONED: list[Any] = []
_ABANDONED_LOCK = threading.Lock()


def _abandon(running: Any) -> None:
    with _ABANDONED_LOCK:
        still: list[Any] = []
        for query in _ABANDONED:
            try:
                if query.fetch() is None:
                    still.append(query)
            except Exception:  # noqa: S110 - a cancelled query may end with an error; either way it is done
                pass
        still.append(running)
        _ABANDONED[:] = still[-64:]


def _timeout_message(limits: QueryLimits, phase: str) -> str:
    return (
        f"the query was cancelled after {limits.timeout_s:g} s while {phase} (time limit); narrow it with "
        "filters or raise QueryLimits.timeout_s / --timeout"
    )


def _engine_message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return f"{first} ({type(exc).__name__})"


# -- output -------------------------------------------------------------------------------------------------


def _flat_for_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Nested columns (lists, structs) as JSON text: for CSV, which has no nesting."""
    nested = [n for n, d in frame.schema.items() if isinstance(d, pl.List | pl.Struct | pl.Array)]
    if not nested:
        return frame
    replaced = [
        pl.Series(
            n,
            [
                None if v is None else json.dumps(v, default=_json_default)
                for v in frame.get_column(n).to_list()
            ],
            dtype=pl.String,
        )
        for n in nested
    ]
    return frame.with_columns(*replaced)


def _json_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    rows = frame.to_dicts()
    return cast(list[dict[str, Any]], json.loads(json.dumps(rows, default=_json_default)))


def _json_default(value: object) -> object:
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return str(value)


def format_result(result: QueryResult | pl.DataFrame, fmt: OutputFormat) -> bytes:
    """The rows in an output format: ``table`` (aligned text), ``json`` (an array of objects), ``ndjson``,
    ``csv`` (nested values as JSON text) or ``arrow`` (an Arrow IPC file).

    Raises:
        InvalidInputError: for an unknown format.
    """
    frame = result.frame if isinstance(result, QueryResult) else result
    if fmt == "table":
        with pl.Config(
            tbl_rows=-1,
            tbl_cols=-1,
            fmt_str_lengths=200,
            tbl_width_chars=10_000,
            tbl_hide_dataframe_shape=True,
            tbl_hide_column_data_types=True,
        ):
            return (str(frame) + f"\n({frame.height} row{'s' if frame.height != 1 else ''})\n").encode()
    if fmt == "json":
        return (json.dumps(_json_rows(frame), ensure_ascii=False, indent=None) + "\n").encode()
    if fmt == "ndjson":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in _json_rows(frame)).encode()
    if fmt == "csv":
        return _flat_for_text(frame).write_csv().encode()
    if fmt == "arrow":
        sink = io.BytesIO()
        frame.write_ipc(sink)
        return sink.getvalue()
    raise InvalidInputError(f"output format {fmt!r} is unknown; use one of {', '.join(OUTPUT_FORMATS)}")
