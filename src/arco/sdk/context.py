"""The run context of an asset function: who is running, data I/O, and lineage-by-execution.

An executor passes an :class:`AssetContext` to the asset function (the parameter named ``context``). Through
it the function reads its upstream assets (:meth:`AssetContext.read_upstream`), any Parquet dataset
(:meth:`AssetContext.read_table`), and writes its own output (:meth:`AssetContext.write_output`); assets
that read or write elsewhere tell the context with :meth:`AssetContext.report_input` /
:meth:`AssetContext.report_output`. The context records every dataset actually read and written (URI,
partition, object version, row count, bytes, schema fingerprint), so the lineage of a run says what ran, not
what was declared: a declared upstream that the function did not read is absent from
:attr:`AssetContext.inputs`.

Data layout (deterministic, so a retried attempt overwrites the same object and readers find it)::

    {data_root}/tenant={t}/workspace={w}/{namespace}/{name}/{partition_path}/data.parquet

``partition_path`` is ``_unpartitioned``, or one folder ``dim=value`` per dimension in canonical order where
the value is the canonical partition value made path-safe: dates ``2026-01-01``, integers ``42``, booleans
``true``, timestamps ``2026-01-01T00-00-00.000000Z`` (``:`` → ``-``), strings their canonical base64url
token (any text is safe), nulls ``__null__``. All I/O goes through the storage seam
(:func:`arco.catalog.storage.open_store`); outputs are written whole with a compare-and-swap against the
version found, so a reader sees the old or the new file, never a mix.

Cancellation is cooperative: once the executor learns that the task was cancelled,
:meth:`AssetContext.heartbeat`, the logger, and every I/O call raise
:class:`~arco.core.errors.TaskCancelledError`, and :meth:`AssetContext.is_cancelled` returns ``True``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import JsonValue

from arco.catalog.storage import ObjectStore, ObjectVersion, open_store
from arco.core.canonical_json import JsonInput, canonical_dumps
from arco.core.dispatch import DeclaredInput, LineageRef
from arco.core.errors import (
    ArcoError,
    CorruptObjectError,
    InvalidInputError,
    InvalidPartitionKeyError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StorageError,
    TaskCancelledError,
)
from arco.core.keys import AssetKey
from arco.core.partitions import PartitionKey, PartitionValue
from arco.core.scope import Scope
from arco.core.tracing import span
from arco.sdk.partitions import (
    DynamicPartitions,
    PartitionsDefinition,
    StaticPartitions,
    dimensions_of,
)

__all__ = [
    "DATA_FILE_NAME",
    "AssetContext",
    "CheckEvaluation",
    "PartitionLike",
    "TaskCancelledError",
    "TaskControl",
    "asset_data_key",
    "partition_path",
    "schema_fingerprint",
]

#: File name of an asset partition's data inside its folder.
DATA_FILE_NAME = "data.parquet"
#: Folder name of an unpartitioned asset's data.
UNPARTITIONED_FOLDER = "_unpartitioned"
_NULL_FOLDER_VALUE = "__null__"
# A compare-and-swap of the output is lost only to a concurrent writer of the same partition (a zombie
# attempt); re-reading the version and writing again a few times settles it, more would hide a real fight.
_CAS_ATTEMPTS = 3

#: What the partition parameters accept: a key, its canonical text, or a mapping of dimension values.
PartitionLike: TypeAlias = PartitionKey | str | Mapping[str, PartitionValue]
#: What the upstream parameters accept: ``"ns.name"``, a bare ``"name"``, an :class:`AssetKey`, or an object
#: with a ``key`` attribute that is an :class:`AssetKey` (an ``AssetDefinition``).
AssetLike: TypeAlias = "str | AssetKey | Any"


@dataclass(frozen=True, slots=True)
class CheckEvaluation:
    """What a custom check function returns when a bare ``bool`` says too little.

    A custom check (``CustomCheck(name=..., function=my_check)``) is called as ``my_check(context, data)``
    after the asset is materialized, with ``data`` the Polars DataFrame the asset wrote (``None`` if it wrote
    nothing through the context), and returns ``True``/``False`` or a ``CheckEvaluation``.

    Attributes:
        passed: Whether the data passed the check.
        message: Why it failed (or a note on why it passed).
        metadata: JSON-ready details (counts, offending values), shown with the check result.
    """

    passed: bool
    message: str | None = None
    metadata: Mapping[str, JsonValue] = field(default_factory=dict)


# --- layout and fingerprints -------------------------------------------------------------------------------


def partition_path(partition_key: PartitionKey) -> str:
    """The folder path of a partition under its asset's folder (see the module docstring).

    Args:
        partition_key: The partition key.

    Returns:
        ``_unpartitioned`` or ``dim=value[/dim=value...]``.
    """
    if partition_key.is_unpartitioned:
        return UNPARTITIONED_FOLDER
    folders = []
    for part in partition_key.canonical.split(","):
        dim, _, tagged = part.partition("=")
        folders.append(f"{dim}={_folder_value(tagged)}")
    return "/".join(folders)


def _folder_value(tagged: str) -> str:
    """The folder text of one canonical ``tag:value`` (type tags dropped, ``:`` of timestamps made ``-``)."""
    tag, _, value = tagged.partition(":")
    if tag == "n":
        return _NULL_FOLDER_VALUE
    if tag == "t":
        return value.replace(":", "-")
    return value


def partition_from_path(partitions: PartitionsDefinition | None, path: str) -> PartitionKey | None:
    """The partition key whose :func:`partition_path` is ``path``, for an asset partitioned by ``partitions``.

    Folders carry no type tags; each dimension's definition gives them back: time windows are dates (``d``) or,
    hourly, UTC instants (``t``), dynamic keys are strings (``s``), static values are matched against the declared
    ones. Returns None when ``path`` is not a partition of that partitioning.
    """
    if partitions is None:
        return PartitionKey("") if path == UNPARTITIONED_FOLDER else None
    dimensions = {dimension.name: dimension for dimension in dimensions_of(partitions)}
    parts: list[str] = []
    for folder in path.split("/"):
        name, sep, text = folder.partition("=")
        dimension = dimensions.pop(name, None)
        if not sep or dimension is None:
            return None
        if text == _NULL_FOLDER_VALUE:
            candidates = ["n:null"]
        elif isinstance(dimension, StaticPartitions):
            candidates = [
                tagged
                for tagged in (
                    PartitionKey.of({name: value}).canonical.partition("=")[2] for value in dimension.values
                )
                if _folder_value(tagged) == text
            ]
        elif isinstance(dimension, DynamicPartitions):
            candidates = [f"s:{text}"]
        else:  # a time window: a date, or (hourly) an instant whose time lost its colons
            day, t, time = text.partition("T")
            candidates = [f"t:{day}T{time.replace('-', ':')}"] if t else [f"d:{text}"]
        if len(candidates) != 1:
            return None
        parts.append(f"{name}={candidates[0]}")
    if dimensions:
        return None
    try:
        key = PartitionKey.parse(",".join(sorted(parts)))
    except InvalidPartitionKeyError:
        return None
    return key if partition_path(key) == path else None


def asset_data_key(scope: Scope, asset_key: AssetKey, partition_key: PartitionKey) -> str:
    """The object key (relative to the data root) of one asset partition's Parquet file.

    Args:
        scope: Tenant and workspace.
        asset_key: The asset.
        partition_key: The partition (unpartitioned for ``""``).

    Returns:
        ``tenant={t}/workspace={w}/{namespace}/{name}/{partition_path}/data.parquet``.
    """
    return f"{scope.prefix}/{asset_key.path}/{partition_path(partition_key)}/{DATA_FILE_NAME}"


def schema_fingerprint(schema: pa.Schema) -> str:
    """``sha256:`` + the SHA-256 of the canonical JSON of an Arrow schema's logical columns.

    The canonical form is the list of ``{"name", "type", "nullable"}`` per top-level field. ``type`` is the
    logical type's text: physical variants of one logical type are spelled alike (``large_string`` and
    ``string_view`` as ``string``, ``large_binary`` as ``binary``, ``large_list`` as ``list``, dictionary
    encoding as its value type), nested types spell their fields (``struct<a: int64 not null>``, ``list<int64>``)
    and other types use Arrow's own text (``timestamp[us, tz=UTC]``, ``decimal128(10, 2)``). Schema and field
    metadata are left out. So the same columns give the same fingerprint whichever library wrote the file.
    """
    fields: list[JsonInput] = [
        {"name": field.name, "type": _logical_type(field.type), "nullable": field.nullable}
        for field in schema
    ]
    digest = hashlib.sha256(canonical_dumps(fields).encode("utf-8")).hexdigest()
    return "sha256:" + digest


def _logical_type(data_type: pa.DataType) -> str:
    types = pa.types
    if types.is_dictionary(data_type):
        return _logical_type(data_type.value_type)
    if types.is_string(data_type) or types.is_large_string(data_type) or types.is_string_view(data_type):
        return "string"
    if types.is_binary(data_type) or types.is_large_binary(data_type) or types.is_binary_view(data_type):
        return "binary"
    if types.is_map(data_type):
        item = data_type.item_field
        return f"map<{_logical_type(data_type.key_type)}, {_logical_type(item.type)}{_null_text(item)}>"
    if types.is_fixed_size_list(data_type):
        item = data_type.value_field
        return f"fixed_size_list<{_logical_type(item.type)}{_null_text(item)}>[{data_type.list_size}]"
    if isinstance(data_type, pa.ListType | pa.LargeListType | pa.ListViewType | pa.LargeListViewType):
        item = data_type.value_field
        return f"list<{_logical_type(item.type)}{_null_text(item)}>"
    if types.is_struct(data_type):
        children = [data_type.field(index) for index in range(data_type.num_fields)]
        inner = ", ".join(
            f"{child.name}: {_logical_type(child.type)}{_null_text(child)}" for child in children
        )
        return f"struct<{inner}>"
    return str(data_type)


def _null_text(field: pa.Field[Any]) -> str:
    return "" if field.nullable else " not null"


def _coerce_partition(value: PartitionLike, what: str) -> PartitionKey:
    if isinstance(value, PartitionKey):
        return value
    if isinstance(value, str):
        return PartitionKey.parse(value)
    if isinstance(value, Mapping):
        return PartitionKey.of(value)
    raise InvalidInputError(
        f"{what}: partition key {value!r} must be a PartitionKey, its canonical text (such as "
        "'date=d:2026-01-01') or a mapping of dimension values (such as {'date': date(2026, 1, 1)})"
    )


# --- cancellation and progress -----------------------------------------------------------------------------


class TaskControl:
    """The thread-safe link between a running asset function and its executor.

    The executor calls :meth:`cancel` when Temporal reports the task cancelled and reads :meth:`progress` for
    its periodic heartbeats; the context calls :meth:`check` and :meth:`report_progress`.
    """

    def __init__(self) -> None:
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._reason = ""
        self._progress_pct: int | None = None
        self._message: str | None = None

    def cancel(self, reason: str = "the task was cancelled") -> None:
        """Ask the asset function to stop; every later context call raises :class:`TaskCancelledError`."""
        with self._lock:
            if not self._cancelled.is_set():
                self._reason = reason
                self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        """Whether the task was cancelled."""
        return self._cancelled.is_set()

    def check(self) -> None:
        """Raise :class:`TaskCancelledError` if the task was cancelled."""
        if self._cancelled.is_set():
            raise TaskCancelledError(
                f"{self._reason}; stop the asset function (this error ends the attempt as CANCELLED)"
            )

    def report_progress(self, progress_pct: int | None, message: str | None) -> None:
        """Record the latest progress (kept until replaced)."""
        with self._lock:
            if progress_pct is not None:
                self._progress_pct = progress_pct
            if message is not None:
                self._message = message

    def progress(self) -> tuple[int | None, str | None]:
        """The latest ``(progress_pct, message)``."""
        with self._lock:
            return self._progress_pct, self._message


class _AssetLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger that tags records with the task and raises once the task is cancelled."""

    def __init__(self, logger: logging.Logger, extra: Mapping[str, object], control: TaskControl) -> None:
        super().__init__(logger, extra)
        self._control = control

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        self._control.check()
        super().log(level, msg, *args, **kwargs)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**dict(self.extra or {}), **dict(kwargs.get("extra") or {})}
        return msg, kwargs


# --- the context -------------------------------------------------------------------------------------------


class AssetContext:
    """What an asset function gets to know about its task, and its way to read and write data.

    Build one with the constructor in tests or local runs; an executor builds it from the dispatch envelope.
    Thread-safe: an asset function may read and write from several threads.
    """

    def __init__(
        self,
        *,
        scope: Scope,
        asset_key: AssetKey | str,
        partition_key: PartitionLike = "",
        data_root: str | ObjectStore,
        run_id: str = "local",
        task_key: str | None = None,
        attempt: int = 1,
        attempt_id: str = "local",
        declared_inputs: Iterable[DeclaredInput] = (),
        run_tags: Mapping[str, str] | None = None,
        upstream_partitioned: Mapping[str, bool] | None = None,
        location_partitions: Mapping[str, PartitionsDefinition | None] | None = None,
        control: TaskControl | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        """Create the context of one task attempt.

        Args:
            scope: Tenant and workspace whose data the task reads and writes.
            asset_key: The asset being materialized.
            partition_key: Its partition (``""`` when unpartitioned).
            data_root: Data root URI (or an open store) under which asset data lives.
            run_id: The run id.
            task_key: The task key; defaults to the asset key (plus the partition, if any).
            attempt: The attempt number.
            attempt_id: The attempt id.
            declared_inputs: Upstream partitions the plan declares for the task.
            run_tags: The run's tags.
            upstream_partitioned: Asset key → whether it is partitioned, for the assets of the code location;
                lets :meth:`read_upstream` find the partition of an unpartitioned upstream not declared.
            location_partitions: Asset key → its partitioning, for the assets of the code location; lets
                :meth:`read_table` record the partition of a file of an asset that is not a declared input.
            control: Cancellation and progress link to the executor; a fresh one by default.
            logger: Base logger; ``arco.asset.{asset_key}`` by default.
        """
        self._scope = scope
        self._asset_key = asset_key if isinstance(asset_key, AssetKey) else AssetKey.parse(asset_key)
        self._partition_key = _coerce_partition(partition_key, f"asset {self._asset_key}")
        self._store = data_root if isinstance(data_root, ObjectStore) else open_store(data_root)
        self._run_id = run_id
        self._task_key = task_key or (
            str(self._asset_key)
            if self._partition_key.is_unpartitioned
            else f"{self._asset_key}[{self._partition_key}]"
        )
        self._attempt = attempt
        self._attempt_id = attempt_id
        self._declared = tuple(declared_inputs)
        self._run_tags = dict(run_tags or {})
        self._upstream_partitioned = dict(upstream_partitioned or {})
        self._location_partitions = dict(location_partitions or {})
        self._control = control or TaskControl()
        base = logger or logging.getLogger(f"arco.asset.{self._asset_key}")
        self._logger = _AssetLogger(
            base,
            {
                "arco_run_id": run_id,
                "arco_task_key": self._task_key,
                "arco_attempt": attempt,
                "arco_partition": self._partition_key.canonical,
            },
            self._control,
        )
        self._lock = threading.Lock()
        self._inputs: dict[tuple[str, str | None], LineageRef] = {}
        self._outputs: dict[str, LineageRef] = {}
        self._output_frame: pl.DataFrame | pa.Table | None = None
        self._data_bytes = 0
        self._stores: dict[str, ObjectStore] = {self._store.uri: self._store}

    # -- who is running -------------------------------------------------------------------------------------

    @property
    def scope(self) -> Scope:
        """Tenant and workspace."""
        return self._scope

    @property
    def run_id(self) -> str:
        """The run id."""
        return self._run_id

    @property
    def task_key(self) -> str:
        """The task key within the run."""
        return self._task_key

    @property
    def asset_key(self) -> AssetKey:
        """The asset being materialized."""
        return self._asset_key

    @property
    def partition_key(self) -> PartitionKey:
        """The partition being materialized (unpartitioned: ``PartitionKey("")``)."""
        return self._partition_key

    @property
    def attempt(self) -> int:
        """The attempt number, from 1."""
        return self._attempt

    @property
    def attempt_id(self) -> str:
        """The attempt id (new for every attempt)."""
        return self._attempt_id

    @property
    def run_tags(self) -> Mapping[str, str]:
        """The run's tags."""
        return dict(self._run_tags)

    @property
    def declared_inputs(self) -> tuple[DeclaredInput, ...]:
        """The upstream partitions the plan declares for this task."""
        return self._declared

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger whose records carry the run, task, attempt and partition (``arco_*`` extras)."""
        return self._logger

    @property
    def data_root(self) -> str:
        """URI of the data root."""
        return self._store.uri

    @property
    def output_key(self) -> str:
        """Object key (relative to the data root) where :meth:`write_output` writes."""
        return asset_data_key(self._scope, self._asset_key, self._partition_key)

    @property
    def output_uri(self) -> str:
        """Full URI where :meth:`write_output` writes."""
        return self._store.uri_for(self.output_key)

    @property
    def control(self) -> TaskControl:
        """The executor link (cancellation and progress)."""
        return self._control

    # -- progress and cancellation --------------------------------------------------------------------------

    def heartbeat(self, progress_pct: int | None = None, message: str | None = None) -> None:
        """Report progress; the executor sends it with its next heartbeat (it heartbeats on its own anyway).

        Args:
            progress_pct: Percent done, 0 to 100.
            message: A short note on what the function is doing.

        Raises:
            TaskCancelledError: if the task was cancelled: stop work and let the error propagate.
            InvalidInputError: if ``progress_pct`` is not an integer from 0 to 100.
        """
        self._control.check()
        if progress_pct is not None and (
            isinstance(progress_pct, bool)
            or not isinstance(progress_pct, int)
            or not 0 <= progress_pct <= 100
        ):
            raise InvalidInputError(
                f"heartbeat progress_pct must be an integer from 0 to 100, got {progress_pct!r}"
            )
        self._control.report_progress(progress_pct, None if message is None else str(message)[:1000])

    def is_cancelled(self) -> bool:
        """Whether the task was cancelled (then stop; the context's other calls raise)."""
        return self._control.cancelled

    # -- reading --------------------------------------------------------------------------------------------

    def read_upstream(self, asset: AssetLike, partition_key: PartitionLike | None = None) -> pl.DataFrame:
        """Read an upstream asset's data as a Polars DataFrame, recording each partition read.

        Args:
            asset: ``"ns.name"``, a bare ``"name"`` (a declared input of that name, else the same
                namespace), an :class:`AssetKey` or an asset definition.
            partition_key: The partition to read. By default: the partitions the plan declares for this
                upstream (several are concatenated in partition order), or the unpartitioned data of an
                unpartitioned upstream.

        Returns:
            The data.

        Raises:
            ObjectNotFoundError: if the upstream partition has no data (it was never materialized).
            InvalidInputError: if no partition is given and none can be inferred.
            TaskCancelledError: if the task was cancelled.
        """
        return _to_polars(self.read_upstream_arrow(asset, partition_key))

    def read_upstream_arrow(self, asset: AssetLike, partition_key: PartitionLike | None = None) -> pa.Table:
        """Like :meth:`read_upstream`, as a PyArrow table."""
        key = self._resolve_asset(asset)
        partitions = self._upstream_partitions(key, partition_key)
        tables = [
            self._read_key(self._store, asset_data_key(self._scope, key, pk), key, pk) for pk in partitions
        ]
        if len(tables) == 1:
            return tables[0]
        return pa.concat_tables(tables, promote_options="default")

    def read_table(self, uri: str) -> pl.DataFrame:
        """Read any Parquet file by URI (a path, ``file://``, ``memory://``, ``gs://`` or ``s3://``).

        The read is recorded as an input; a file of this data root's layout is recorded with its asset and
        partition.

        Raises:
            ObjectNotFoundError: if there is no object at ``uri``.
            TaskCancelledError: if the task was cancelled.
        """
        store, key = self._locate(uri)
        asset_key, partition = self._parse_layout(store, key)
        return _to_polars(self._read_key(store, key, asset_key, partition))

    def _read_key(
        self, store: ObjectStore, key: str, asset_key: AssetKey | None, partition: PartitionKey | None
    ) -> pa.Table:
        with span(
            "arco.data.read",
            {
                "arco.uri": store.uri_for(key),
                "arco.asset": None if asset_key is None else str(asset_key),
                "arco.partition": None if partition is None else partition.canonical,
            },
        ) as current:
            table = self._read_key_untraced(store, key, asset_key, partition)
            current.set_attribute("arco.rows", table.num_rows)
            return table

    def _read_key_untraced(
        self, store: ObjectStore, key: str, asset_key: AssetKey | None, partition: PartitionKey | None
    ) -> pa.Table:
        self._control.check()
        uri = store.uri_for(key)
        try:
            data, version = store.read_versioned(key)
        except ObjectNotFoundError:
            what = f"asset {asset_key} partition {partition or '(unpartitioned)'}" if asset_key else "dataset"
            raise ObjectNotFoundError(
                f"{what} has no data at {uri}: it was not materialized (or under another data root); "
                "materialize it first, or check the data root and partition key"
            ) from None
        parquet = _parquet_file(data, uri)
        try:
            table = parquet.read()
        except (pa.ArrowException, OSError) as exc:
            raise CorruptObjectError(f"cannot decode Parquet file {uri}: {exc}") from None
        with self._lock:
            self._data_bytes += table.nbytes
        ref = LineageRef(
            uri=uri,
            asset_key=None if asset_key is None else str(asset_key),
            partition_key=None if partition is None else partition.canonical,
            version=version.token,
            row_count=table.num_rows,
            byte_count=len(data),
            schema_fingerprint=schema_fingerprint(parquet.schema_arrow),
        )
        with self._lock:
            self._inputs.setdefault((uri, ref.version), ref)
        return table

    # -- writing --------------------------------------------------------------------------------------------

    def write_output(self, data: pl.DataFrame | pl.LazyFrame | pa.Table) -> LineageRef:
        """Write the asset partition's data (Parquet) and record it as the task's output.

        The write is an ``arco.data.write`` span of the current trace.

        A retried attempt overwrites the same object atomically (compare-and-swap against the version found).

        Args:
            data: A Polars DataFrame (or LazyFrame, collected) or a PyArrow table.

        Returns:
            The recorded output: URI, partition, version, row count, bytes, schema fingerprint.

        Raises:
            InvalidInputError: if ``data`` is of another type.
            StorageError: if the store refused the write.
            TaskCancelledError: if the task was cancelled (nothing is written).
        """
        self._control.check()
        if isinstance(data, pl.LazyFrame):
            data = data.collect()
        buffer = io.BytesIO()
        if isinstance(data, pl.DataFrame):
            data.write_parquet(buffer)
        elif isinstance(data, pa.Table):
            pq.write_table(data, buffer)
        else:
            raise InvalidInputError(
                f"asset {self._asset_key}: write_output takes a polars DataFrame or LazyFrame or a pyarrow "
                f"Table, "
                f"got {type(data).__name__}; convert it first (for pandas: polars.from_pandas(df))"
            )
        payload = buffer.getvalue()
        parquet = _parquet_file(payload, self.output_uri)
        key = self.output_key
        self._control.check()
        with span(
            "arco.data.write",
            {
                "arco.uri": self._store.uri_for(key),
                "arco.asset": str(self._asset_key),
                "arco.partition": self._partition_key.canonical,
                "arco.rows": parquet.metadata.num_rows,
                "arco.bytes": len(payload),
            },
        ):
            version = self._swap_in(key, payload)
        ref = LineageRef(
            uri=self._store.uri_for(key),
            asset_key=str(self._asset_key),
            partition_key=self._partition_key.canonical,
            version=version.token,
            row_count=parquet.metadata.num_rows,
            byte_count=len(payload),
            schema_fingerprint=schema_fingerprint(parquet.schema_arrow),
        )
        with self._lock:
            self._outputs[ref.uri] = ref
            self._output_frame = data
            self._data_bytes += data.nbytes if isinstance(data, pa.Table) else int(data.estimated_size())
        return ref

    def _swap_in(self, key: str, payload: bytes) -> ObjectVersion:
        for _ in range(_CAS_ATTEMPTS):
            current = self._store.head(key)
            try:
                return self._store.compare_and_swap(
                    key, payload, None if current is None else current.version
                )
            except PreconditionFailedError:
                continue
        raise StorageError(
            f"asset {self._asset_key} partition {self._partition_key or '(unpartitioned)'}: another writer "
            f"kept "
            f"replacing {self._store.uri_for(key)} during {_CAS_ATTEMPTS} attempts to write it; is another "
            "attempt of this task still running?"
        )

    # -- explicit lineage -----------------------------------------------------------------------------------

    def report_input(
        self,
        uri: str,
        *,
        asset_key: AssetKey | str | None = None,
        partition_key: PartitionLike | None = None,
        version: str | None = None,
        row_count: int | None = None,
        byte_count: int | None = None,
        schema: pa.Schema | None = None,
    ) -> LineageRef:
        """Record a dataset the function read without the context (a database table, an API extract).

        Returns:
            The recorded input.
        """
        ref = self._reported(uri, asset_key, partition_key, version, row_count, byte_count, schema)
        with self._lock:
            self._inputs.setdefault((ref.uri, ref.version), ref)
        return ref

    def report_output(
        self,
        uri: str,
        *,
        asset_key: AssetKey | str | None = None,
        partition_key: PartitionLike | None = None,
        version: str | None = None,
        row_count: int | None = None,
        byte_count: int | None = None,
        schema: pa.Schema | None = None,
    ) -> LineageRef:
        """Record a dataset the function wrote without the context (to a warehouse, another bucket).

        ``asset_key`` and ``partition_key`` default to this task's asset and partition.

        Returns:
            The recorded output.
        """
        ref = self._reported(
            uri,
            asset_key if asset_key is not None else self._asset_key,
            partition_key if partition_key is not None else self._partition_key,
            version,
            row_count,
            byte_count,
            schema,
        )
        with self._lock:
            self._outputs[ref.uri] = ref
        return ref

    def _reported(
        self,
        uri: str,
        asset_key: AssetKey | str | None,
        partition_key: PartitionLike | None,
        version: str | None,
        row_count: int | None,
        byte_count: int | None,
        schema: pa.Schema | None,
    ) -> LineageRef:
        self._control.check()
        if not isinstance(uri, str) or not uri.strip():
            raise InvalidInputError(
                f"asset {self._asset_key}: a reported dataset needs a non-empty URI, got {uri!r}"
            )
        for name, count in (("row_count", row_count), ("byte_count", byte_count)):
            if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
                raise InvalidInputError(
                    f"asset {self._asset_key}: {name} must be an integer >= 0, got {count!r}"
                )
        key = (
            None
            if asset_key is None
            else asset_key
            if isinstance(asset_key, AssetKey)
            else AssetKey.parse(asset_key)
        )
        partition = None if partition_key is None else _coerce_partition(partition_key, f"dataset {uri}")
        return LineageRef(
            uri=uri,
            asset_key=None if key is None else str(key),
            partition_key=None if partition is None else partition.canonical,
            version=version,
            row_count=row_count,
            byte_count=byte_count,
            schema_fingerprint=None if schema is None else schema_fingerprint(schema),
        )

    # -- what was recorded ----------------------------------------------------------------------------------

    @property
    def data_memory_bytes(self) -> int:
        """In-memory (Arrow) size of the data this task read and wrote through the context: every table it
        decoded plus the output it wrote. A lower bound of the task's own memory (docs/runs.md, "Resource
        figures"), counted per task, unlike the process's memory that concurrent tasks share."""
        with self._lock:
            return self._data_bytes

    @property
    def inputs(self) -> tuple[LineageRef, ...]:
        """Every dataset read so far (each object version once), in the order of the first read."""
        with self._lock:
            return tuple(self._inputs.values())

    @property
    def outputs(self) -> tuple[LineageRef, ...]:
        """Every dataset written so far (the last write of each URI)."""
        with self._lock:
            return tuple(self._outputs.values())

    @property
    def output_frame(self) -> pl.DataFrame | pa.Table | None:
        """The data last passed to :meth:`write_output` (what the asset's checks look at), if any."""
        with self._lock:
            return self._output_frame

    def undeclared_reads(self) -> tuple[LineageRef, ...]:
        """Inputs read that the plan did not declare (by asset key and partition)."""
        declared = {(item.asset_key, item.partition_key) for item in self._declared}
        return tuple(ref for ref in self.inputs if (ref.asset_key, ref.partition_key or "") not in declared)

    def unread_declared_inputs(self) -> tuple[DeclaredInput, ...]:
        """Declared upstream partitions the function did not read."""
        read = {(ref.asset_key, ref.partition_key or "") for ref in self.inputs if ref.asset_key is not None}
        return tuple(item for item in self._declared if (item.asset_key, item.partition_key) not in read)

    # -- helpers --------------------------------------------------------------------------------------------

    def _resolve_asset(self, asset: AssetLike) -> AssetKey:
        if isinstance(asset, AssetKey):
            return asset
        key_attr = getattr(asset, "key", None)
        if isinstance(key_attr, AssetKey):
            return key_attr
        if not isinstance(asset, str):
            raise InvalidInputError(
                f"asset {self._asset_key}: cannot read upstream {asset!r}: give 'namespace.name', a bare "
                "name, "
                "an AssetKey or an asset definition"
            )
        if "." in asset or "/" in asset:
            return AssetKey.parse(asset)
        named = sorted(
            {item.asset_key for item in self._declared if item.asset_key.split(".", 1)[1] == asset}
        )
        if len(named) > 1:
            raise InvalidInputError(
                f"asset {self._asset_key}: upstream name {asset!r} is ambiguous among the declared inputs "
                f"{named}; give the full key 'namespace.name'"
            )
        if named:
            return AssetKey.parse(named[0])
        return AssetKey(self._asset_key.namespace, asset)

    def _upstream_partitions(self, key: AssetKey, partition_key: PartitionLike | None) -> list[PartitionKey]:
        if partition_key is not None:
            return [_coerce_partition(partition_key, f"upstream {key}")]
        declared = sorted(
            PartitionKey.parse(item.partition_key) for item in self._declared if item.asset_key == str(key)
        )
        if declared:
            return declared
        if self._upstream_partitioned.get(str(key)) is False:
            return [PartitionKey("")]
        raise InvalidInputError(
            f"asset {self._asset_key}: {key} is not a declared input of this task, so its partition is "
            f"unknown; pass partition_key= (for example context.read_upstream({str(key)!r}, "
            "context.partition_key)) or declare the dependency on the asset"
        )

    def _locate(self, uri: str) -> tuple[ObjectStore, str]:
        if not isinstance(uri, str) or not uri.strip():
            raise InvalidInputError(f"read_table needs a non-empty URI, got {uri!r}")
        with self._lock:
            stores = list(self._stores.values())
        for store in stores:
            root = store.uri.rstrip("/") + "/"
            if uri.startswith(root) and len(uri) > len(root):
                return store, uri[len(root) :]
        parent, sep, name = uri.rstrip("/").rpartition("/")
        if not sep or not name or parent.endswith(":/"):
            raise InvalidInputError(
                f"cannot read {uri!r}: expected the URI or path of a file, such as gs://bucket/dir/file.parquet"
            )
        store = open_store(parent)
        with self._lock:
            self._stores.setdefault(store.uri, store)
        return store, name

    def _parse_layout(self, store: ObjectStore, key: str) -> tuple[AssetKey | None, PartitionKey | None]:
        """Asset and partition of a key in this data root's layout, or ``(None, None)``."""
        if store is not self._store or not key.startswith(self._scope.prefix + "/"):
            return None, None
        parts = key[len(self._scope.prefix) + 1 :].split("/")
        if len(parts) < 4 or parts[-1] != DATA_FILE_NAME:
            return None, None
        try:
            asset_key = AssetKey(parts[0], parts[1])
        except ArcoError:
            return None, None
        folders = parts[2:-1]
        if folders == [UNPARTITIONED_FOLDER]:
            return asset_key, PartitionKey("")
        # Folder values lost their tags: the canonical key is recovered by matching a declared input's folder.
        for item in self._declared:
            candidate = PartitionKey.parse(item.partition_key)
            if item.asset_key == str(asset_key) and partition_path(candidate) == "/".join(folders):
                return asset_key, candidate
        if str(asset_key) == str(self._asset_key) and partition_path(self._partition_key) == "/".join(
            folders
        ):
            return asset_key, self._partition_key
        if str(asset_key) in self._location_partitions:
            return asset_key, partition_from_path(
                self._location_partitions[str(asset_key)], "/".join(folders)
            )
        return asset_key, None


def _parquet_file(data: bytes, uri: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise CorruptObjectError(f"{uri} is not a readable Parquet file: {exc}") from None


def _to_polars(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)  # a Table always converts to a DataFrame
    return frame
