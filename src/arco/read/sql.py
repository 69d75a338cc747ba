"""The guard of the read-only SQL interface: one ``SELECT`` over the stable tables, checked before anything runs.

**The guard** (:func:`check_sql`) parses the text with sqlglot *before anything is read or executed* and refuses,
with a :class:`~arco.core.errors.QueryError` that says what to do instead:

* text longer than ``QueryLimits.max_sql_chars``; parentheses nested deeper than :data:`MAX_NESTING` levels (the
  parser recurses once per level, so deeper text would exhaust Python's stack); malformed SQL; more than one
  statement;
* anything but ``SELECT`` / ``WITH ... SELECT`` (and set operations of them): DDL, DML, ``COPY``, ``ATTACH``,
  ``PRAGMA``, ``SET``, ``EXPLAIN``, ``CALL``, ``SELECT ... INTO`` ..., also when nested in a CTE;
* table functions and file or URL reads (``read_parquet('...')``, ``read_csv``, ``scan_*``, ``'x.parquet'``);
* any table that is not one of the stable names (:mod:`arco.read.snapshot`) or a CTE of the query.

What runs is the statement *as sqlglot re-writes it* from the checked syntax tree (:attr:`CheckedQuery.normalized`),
so the engine never sees text the guard did not check.

**Limits** (:class:`QueryLimits`) of one query: the guard checks the SQL length; :func:`arco.read.query.run_query`
checks the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

import sqlglot
from sqlglot import TokenType, exp
from sqlglot.errors import ParseError, SqlglotError

from arco.core.errors import InvalidInputError, QueryError
from arco.read.snapshot import TABLES_BY_NAME, known_tables

__all__ = [
    "MAX_NESTING",
    "CheckedQuery",
    "QueryLimits",
    "check_sql",
]

#: The SQL dialect the guard parses and the engine runs (Polars SQL follows PostgreSQL closely).
DIALECT: Final = "postgres"


#: Deepest nesting of parentheses (subqueries, grouped conditions, function calls) a query may have. The parser
#: recurses about twenty frames per level, so a limit well below Python's recursion limit keeps every query it
#: accepts parseable; long flat chains (``a AND b AND ...``) do not nest and are not limited by it.
MAX_NESTING: Final = 32


# -- limits ------------------------------------------------------------------------------------------------

_HARD_MAX_SQL_CHARS: Final = 1_000_000
_HARD_MAX_ROWS: Final = 50_000_000
_HARD_MAX_SECONDS: Final = 3600.0


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """Limits of one query; each one exceeded raises its own :class:`~arco.core.errors.QueryError`.

    Attributes:
        max_sql_chars: Longest SQL text accepted.
        max_rows: Most rows a result may have (add ``LIMIT`` or aggregate to stay below).
        max_bytes: Largest result (Arrow in-memory size, bytes).
        max_scan_bytes: Largest total size of the Parquet files the query would read (checked before reading).
        timeout_s: Wall-clock seconds before the query is cancelled.
    """

    max_sql_chars: int = 20_000
    max_rows: int = 100_000
    max_bytes: int = 256 * 2**20
    max_scan_bytes: int = 8 * 2**30
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        for name, cap in (
            ("max_sql_chars", _HARD_MAX_SQL_CHARS),
            ("max_rows", _HARD_MAX_ROWS),
            ("max_bytes", 2**40),
            ("max_scan_bytes", 2**50),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= cap:
                raise InvalidInputError(f"query limit {name} must be an int from 1 to {cap}, got {value!r}")
        timeout = self.timeout_s
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 3600:
            raise InvalidInputError(
                f"query limit timeout_s must be a number of seconds in (0, {_HARD_MAX_SECONDS:.0f}], "
                f"got {timeout!r}"
            )


# -- the guard ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckedQuery:
    """A statement that passed the guard.

    Attributes:
        sql: The text as given.
        normalized: The statement as re-written from the checked syntax tree: what the engine runs.
        tables: The stable tables it reads, sorted.
    """

    sql: str
    normalized: str
    tables: tuple[str, ...]


def _optional_nodes(*names: str) -> tuple[type[exp.Expr], ...]:
    found: list[type[exp.Expr]] = []
    for name in names:
        node = getattr(exp, name, None)
        if isinstance(node, type) and issubclass(node, exp.Expr):
            found.append(node)
    return tuple(found)


# Statement kinds that must never appear anywhere in a query, with the word used in the error.
_FORBIDDEN: Final = _optional_nodes(
    "Insert",
    "Update",
    "Delete",
    "Merge",
    "Create",
    "Drop",
    "Alter",
    "AlterTable",
    "TruncateTable",
    "Command",
    "Copy",
    "Set",
    "Pragma",
    "Use",
    "Describe",
    "Into",
    "Transaction",
    "Commit",
    "Rollback",
    "Cache",
    "Uncache",
    "Refresh",
    "LoadData",
    "Grant",
    "Revoke",
    "Show",
    "Attach",
    "Detach",
    "Analyze",
    "Kill",
    "Install",
    "Export",
)
_QUERY_ROOTS: Final = (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery)
# Functions that read files, URLs or the environment in Polars, DuckDB or other engines.
_FILE_FUNCTION_PREFIXES: Final = ("read_", "scan_", "parquet_", "csv_", "json_scan", "ndjson_")
_FILE_FUNCTIONS: Final = frozenset(
    {
        "glob",
        "iceberg_scan",
        "delta_scan",
        "sqlite_scan",
        "postgres_scan",
        "mysql_scan",
        "query",
        "query_table",
        "getenv",
        "load",
        "install",
        "read_text",
        "read_blob",
        "httpfs",
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_dir",
        "lo_import",
        "lo_export",
    }
)


@contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    # sqlglot logs a warning for every statement it parses as a raw Command; the guard reports those itself.
    logger = logging.getLogger("sqlglot")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()


def _is_file_function(name: str) -> bool:
    return name in _FILE_FUNCTIONS or name.startswith(_FILE_FUNCTION_PREFIXES)


def _statement_word(node: exp.Expr) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).split()[0].upper() if node.this else "a command"
    return type(node).__name__.upper()


def _table_name(table: exp.Table) -> str:
    parts = [part for part in (table.catalog, table.db, table.name) if part]
    return ".".join(parts).lower()


def _shown(sql: str) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= 120 else flat[:117] + "..."


_TOO_DEEP: Final = (
    "the query's expressions nest too deeply to be checked (e.g. CASE inside CASE many levels deep); flatten it "
    "or move parts into a WITH clause"
)


def _nesting_depth(sql: str) -> int:
    """The deepest nesting of parentheses and brackets in ``sql``, counted over tokens (so ``'('`` inside a string
    or a comment does not count) without any recursion."""
    depth = deepest = 0
    for token in sqlglot.tokenize(sql, read=DIALECT):
        if token.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET):
            depth += 1
            deepest = max(deepest, depth)
        elif token.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET):
            depth = max(depth - 1, 0)
    return deepest


def check_sql(sql: str, *, limits: QueryLimits | None = None) -> CheckedQuery:
    """Check that ``sql`` is one read-only query over the stable tables, without executing anything.

    Args:
        sql: The statement.
        limits: Only ``max_sql_chars`` is used here.

    Returns:
        The checked query, with the re-written statement the engine will run.

    Raises:
        QueryError: if the text is too long, malformed, not a single ``SELECT``/``WITH ... SELECT``, calls a
            file or URL function, or names an unknown table.
    """
    limits = limits or QueryLimits()
    if not isinstance(sql, str):
        raise QueryError(f"a query must be SQL text, got {type(sql).__name__}")
    if len(sql) > limits.max_sql_chars:
        raise QueryError(
            f"the query is {len(sql):,} characters long, more than the limit of {limits.max_sql_chars:,}; "
            "shorten it (or raise QueryLimits.max_sql_chars / --max-sql-chars)"
        )
    if not sql.strip():
        raise QueryError(f"the query is empty; write one SELECT over {known_tables()}")
    try:
        depth = _nesting_depth(sql)
        if depth > MAX_NESTING:
            raise QueryError(
                f"the query nests deeper than {MAX_NESTING} levels of parentheses ({depth} levels); flatten it, "
                "e.g. join conditions with AND/OR or move subqueries into a WITH clause"
            )
        with _quiet_sqlglot():
            statements = [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except RecursionError:
        raise QueryError(_TOO_DEEP) from None
    except ParseError as exc:
        details = "; ".join(
            f"{e.get('description')} at line {e.get('line')}, column {e.get('col')}" for e in exc.errors[:3]
        )
        raise QueryError(
            f"the query is not valid SQL ({details or exc}); write one SELECT, e.g. "
            "SELECT status, count(*) FROM ops.runs GROUP BY status"
        ) from None
    except SqlglotError as exc:
        raise QueryError(f"the query is not valid SQL ({exc}); write one SELECT statement") from None
    if not statements:
        raise QueryError(f"the query is empty; write one SELECT over {known_tables()}")
    if len(statements) > 1:
        raise QueryError(
            f"the query has {len(statements)} statements; only one SELECT is allowed per query "
            "(remove the extra ';'-separated statements)"
        )
    root = statements[0]
    for node in root.walk():
        if isinstance(node, _FORBIDDEN):
            raise QueryError(
                f"{_statement_word(node)} is not allowed: the query interface is read-only and accepts only "
                f"SELECT or WITH ... SELECT (got {_shown(sql)!r}); catalog changes go through "
                "`arco catalog` and operational facts through the ledger"
            )
    if not isinstance(root, _QUERY_ROOTS):
        raise QueryError(
            f"{_statement_word(root)} is not allowed: only SELECT or WITH ... SELECT queries can run "
            f"(got {_shown(sql)!r})"
        )
    for func in root.find_all(exp.Func):
        name = _function_name(func)
        if _is_file_function(name):
            raise QueryError(
                f"function {name}() is not allowed: queries cannot read files, URLs or the environment; "
                f"read the catalog's tables instead ({known_tables()})"
            )
    ctes = {str(cte.alias).lower() for cte in root.find_all(exp.CTE) if cte.alias}
    used: set[str] = set()
    for table in list(root.find_all(exp.Table)):
        if not isinstance(table.this, exp.Identifier):
            raise QueryError(
                f"table function {table.this.sql(dialect=DIALECT)[:80]} is not allowed: queries can read only "
                f"the catalog's tables ({known_tables()})"
            )
        name = _table_name(table)
        if name in ctes and not table.db:
            continue
        source = TABLES_BY_NAME.get(name)
        if source is None:
            hint = ""
            if "/" in name or "://" in name or name.endswith((".parquet", ".csv", ".json", ".arrow")):
                hint = " (files and URLs cannot be read by a query)"
            raise QueryError(
                f"unknown table {name!r}{hint}; a query can read only the tables of its own scope: "
                f"{known_tables()}"
            )
        used.add(source.name)
        schema_name, _, table_name = source.name.partition(".")
        alias = table.args.get("alias")
        canonical = exp.Table(
            this=exp.to_identifier(table_name),
            db=exp.to_identifier(schema_name),
            alias=alias if alias is not None else exp.TableAlias(this=exp.to_identifier(table_name)),
        )
        table.replace(canonical)
    try:
        normalized = root.sql(dialect=DIALECT)
    except RecursionError:
        raise QueryError(_TOO_DEEP) from None
    except SqlglotError as exc:
        raise QueryError(f"the query cannot be re-written for execution ({exc}); simplify it") from None
    return CheckedQuery(sql=sql, normalized=normalized, tables=tuple(sorted(used)))
