"""OpenLineage export: ``RunEvent`` JSON for every task attempt (and its run), from the Tier-2 projections.

For each task attempt of the selected runs (``ops.tasks``) the exporter emits

* ``START`` at the attempt's start (when it started),
* ``COMPLETE`` (succeeded), ``FAIL`` (failed, or failed and retried as a new attempt, with an ``errorMessage``
  run facet) or ``ABORT`` (cancelled) at its end; attempts still running have only their ``START``; skipped tasks
  never ran and emit nothing;

with the datasets it read (``inputs``) and wrote (``outputs``) from ``lineage.edges``, and for each run itself a
``START`` and a terminal event, so a Marquez-like backend shows runs and their tasks.

Conventions (OpenLineage naming spec):

* **run ids** are UUIDs derived deterministically from Arco's ids (re-exporting gives the same events, so a
  backend deduplicates them): a run's ULID *is* 128 bits and is written as a UUID; a task attempt's id is a
  UUIDv7-shaped value from the run's timestamp and a SHA-256 of the attempt id;
* **jobs**: namespace ``arco/{tenant}/{workspace}`` (configurable); a task attempt's job is its asset key (so every
  partition and retry of an asset is one job with many runs), a run's job is its ``job`` name (``arco_run`` when it
  has none);
* **datasets**: ``gs://bucket/path`` -> namespace ``gs://bucket``, name ``path``; likewise ``s3://``;
  ``file:///p`` or ``/p`` -> namespace ``file``, name ``/p``; any other ``scheme://host/path`` -> namespace
  ``scheme://host``, name ``path``;
* **facets**: ``parent`` (the run, also as ``root``) on task attempts; ``outputStatistics`` (``rowCount``,
  ``size``) on outputs from the attempt's materializations; ``arco_partition`` (custom: the canonical partition key
  and its dimensions) on partitioned datasets; ``arco_task`` (custom: run id, task key, attempt, attempt id) on
  task runs; ``errorMessage`` on failures; ``arco_resources`` (custom: the attempt's resource figures,
  ``cpuTimeMs``, ``peakMemoryBytes``, ``ioReadBytes``, ``ioWriteBytes``, docs/runs.md "Resource figures") on the
  terminal event of an attempt whose executor measured them.

Sinks: :func:`write_ndjson` (one event per line, appended to a file) and :func:`post_events` (HTTP ``POST`` of each
event to ``{url}/api/v1/lineage``, the Marquez and OpenLineage-proxy endpoint).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import polars as pl

from arco.catalog.storage import ObjectStore
from arco.catalog.tier2.ledger import DEFAULT_DOMAIN
from arco.core.errors import InfrastructureError, InvalidInputError, NotFoundError
from arco.core.ids import parse_ulid
from arco.core.partitions import PartitionKey
from arco.core.scope import Scope
from arco.read.snapshot import ScopeSnapshot

__all__ = [
    "PRODUCER",
    "ExportOptions",
    "attempt_run_uuid",
    "dataset_name",
    "export_events",
    "post_events",
    "run_uuid",
    "write_ndjson",
]

#: The ``producer`` URI of every event and facet.
PRODUCER: Final = "urn:arco:python:0.1.0"
_SPEC: Final = "https://openlineage.io/spec"
RUN_EVENT_SCHEMA: Final = f"{_SPEC}/2-0-2/OpenLineage.json#/$defs/RunEvent"
_PARENT_SCHEMA: Final = f"{_SPEC}/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet"
_STATS_SCHEMA: Final = (
    f"{_SPEC}/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet"
)
_ERROR_SCHEMA: Final = f"{_SPEC}/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
_CUSTOM_SCHEMA: Final = "urn:arco:openlineage:facets:1#/$defs/"

# An attempt whose last state is RETRY_WAIT failed (the run workflow records it so before its next attempt).
_TERMINAL: Final = {"SUCCEEDED": "COMPLETE", "FAILED": "FAIL", "RETRY_WAIT": "FAIL", "CANCELLED": "ABORT"}
_RUN_TERMINAL: Final = {"SUCCEEDED": "COMPLETE", "FAILED": "FAIL", "CANCELLED": "ABORT"}


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """What to export and how to name it.

    Attributes:
        run_ids: Only these runs (``None``: every run of the snapshot).
        since: Only events at or after this aware time.
        job_namespace: The OpenLineage job namespace (default ``arco/{tenant}/{workspace}``).
        include_runs: Also emit events for the runs themselves (the parents).
    """

    run_ids: tuple[str, ...] | None = None
    since: datetime.datetime | None = None
    job_namespace: str | None = None
    include_runs: bool = True


# -- ids and names ----------------------------------------------------------------------------------------------


def run_uuid(run_id: str) -> str:
    """The OpenLineage run id of an Arco run: its 128-bit ULID written as a UUID (time-ordered like UUIDv7)."""
    value = parse_ulid(run_id)
    number = 0
    for char in value:
        number = number * 32 + "0123456789ABCDEFGHJKMNPQRSTVWXYZ".index(char)
    return str(uuid.UUID(int=number))


def attempt_run_uuid(run_id: str, attempt_id: str) -> str:
    """The OpenLineage run id of a task attempt: UUIDv7 layout, the run's millisecond timestamp, then 74 bits of
    SHA-256 of the attempt id (deterministic, so re-exports deduplicate)."""
    millis = int(uuid.UUID(run_uuid(run_id)).int >> 80)
    digest = int.from_bytes(hashlib.sha256(f"arco-attempt:{attempt_id}".encode()).digest()[:10], "big")
    rand_a = (digest >> 62) & 0xFFF
    rand_b = digest & ((1 << 62) - 1)
    value = (millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


def dataset_name(uri: str) -> tuple[str, str]:
    """OpenLineage ``(namespace, name)`` of a dataset URI (see the module docstring)."""
    if uri.startswith("/"):
        return "file", uri
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    # Object keys and file names may hold '?' and '#': literal characters there, not a query or fragment.
    host, _, path = uri.partition("://")[2].partition("/")
    if scheme == "file":
        return "file", "/" + path if "://" in uri else parts.path or "/"
    if scheme in ("gs", "gcs", "s3", "s3a", "abfs", "abfss", "wasbs"):
        return f"{scheme}://{host}", path
    if scheme and parts.netloc:
        return f"{scheme}://{parts.netloc}", parts.path.lstrip("/") or "/"
    return "arco", uri


def _time(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _custom(name: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": _CUSTOM_SCHEMA + name, **fields}


def _partition_facet(partition: str | None) -> dict[str, Any] | None:
    if not partition:
        return None
    try:
        values = PartitionKey.parse(partition).values()
    except InvalidInputError:
        return _custom("ArcoPartitionDatasetFacet", partition=partition)
    dims = {k: (v.isoformat() if isinstance(v, datetime.date) else v) for k, v in values.items()}
    return _custom("ArcoPartitionDatasetFacet", partition=partition, dimensions=dims)


def _dataset(uri: str, asset: str | None, partition: str | None) -> dict[str, Any]:
    namespace, name = dataset_name(uri)
    facets: dict[str, Any] = {}
    part = _partition_facet(partition)
    if part is not None:
        facets["arco_partition"] = part
    if asset:
        facets["arco_asset"] = _custom("ArcoAssetDatasetFacet", asset=asset)
    return {"namespace": namespace, "name": name, "facets": facets}


# -- building events ------------------------------------------------------------------------------------------


def _event(
    event_type: str,
    at: datetime.datetime,
    run_id: str,
    run_facets: Mapping[str, Any],
    job_namespace: str,
    job_name: str,
    inputs: Sequence[Mapping[str, Any]] = (),
    outputs: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "eventType": event_type,
        "eventTime": _time(at),
        "producer": PRODUCER,
        "schemaURL": RUN_EVENT_SCHEMA,
        "run": {"runId": run_id, "facets": dict(run_facets)},
        "job": {"namespace": job_namespace, "name": job_name, "facets": {}},
        "inputs": list(inputs),
        "outputs": list(outputs),
    }


def export_events(
    store: ObjectStore,
    scope: Scope,
    options: ExportOptions | None = None,
    *,
    ledger_domain: str = DEFAULT_DOMAIN,
    snapshot: ScopeSnapshot | None = None,
) -> list[dict[str, Any]]:
    """OpenLineage RunEvents (JSON objects) for the task attempts and runs of a scope, oldest first.

    Raises:
        InvalidInputError: for a naive ``since`` or an empty job namespace.
        NotFoundError: if a requested run id has no recorded tasks or run.
    """
    options = options or ExportOptions()
    if options.since is not None and options.since.tzinfo is None:
        raise InvalidInputError("since must be an aware time, e.g. 2026-01-31T00:00:00Z")
    job_namespace = options.job_namespace or f"arco/{scope.tenant}/{scope.workspace}"
    if not job_namespace.strip():
        raise InvalidInputError("the OpenLineage job namespace must not be empty")
    snap = snapshot or ScopeSnapshot(store, scope, ledger_domain=ledger_domain)
    tasks = snap.frame("ops.tasks")
    runs = snap.frame("ops.runs")
    edges = snap.frame("lineage.edges")
    mats = snap.frame("ops.materializations")
    if options.run_ids is not None:
        wanted = [parse_ulid(r) for r in options.run_ids]
        tasks = tasks.filter(pl.col("runId").is_in(wanted))
        runs = runs.filter(pl.col("runId").is_in(wanted))
        edges = edges.filter(pl.col("runId").is_in(wanted))
        mats = mats.filter(pl.col("runId").is_in(wanted))
        known = set(tasks.get_column("runId").to_list()) | set(runs.get_column("runId").to_list())
        missing = sorted(set(wanted) - known)
        if missing:
            raise NotFoundError(
                f"run(s) {', '.join(missing)} have no recorded runs or tasks in scope {scope} (not compacted "
                'yet, or another scope\'s); list runs with `arco query "SELECT runId FROM ops.runs"`'
            )
    job_names = dict(zip(runs.get_column("runId").to_list(), runs.get_column("job").to_list(), strict=True))
    events: list[dict[str, Any]] = []
    if options.include_runs:
        events.extend(_run_events(runs, job_namespace))
    inputs_of, outputs_of = _datasets_by_attempt(edges, mats)
    for row in tasks.iter_rows(named=True):
        events.extend(_task_events(row, job_namespace, job_names, inputs_of, outputs_of))
    if options.since is not None:
        cutoff = _time(options.since)
        events = [e for e in events if e["eventTime"] >= cutoff]
    order = {"START": 0, "RUNNING": 1, "COMPLETE": 2, "FAIL": 2, "ABORT": 2}
    events.sort(key=lambda e: (e["eventTime"], order.get(e["eventType"], 3), e["run"]["runId"]))
    return events


def _run_events(runs: pl.DataFrame, job_namespace: str) -> Iterator[dict[str, Any]]:
    for row in runs.iter_rows(named=True):
        run_id = run_uuid(row["runId"])
        job = row["job"] or "arco_run"
        facets = {"arco_run": _custom("ArcoRunFacet", runId=row["runId"], trigger=row["trigger"])}
        if row["startedAt"] is not None:
            yield _event("START", row["startedAt"], run_id, facets, job_namespace, job)
        terminal = _RUN_TERMINAL.get(row["status"] or "")
        if terminal is not None and row["finishedAt"] is not None:
            end_facets = dict(facets)
            if terminal == "FAIL" and row["errorMessage"]:
                end_facets["errorMessage"] = _error(row["errorMessage"])
            yield _event(terminal, row["finishedAt"], run_id, end_facets, job_namespace, job)


def _error(message: str) -> dict[str, Any]:
    return {
        "_producer": PRODUCER,
        "_schemaURL": _ERROR_SCHEMA,
        "message": message,
        "programmingLanguage": "python",
    }


def _datasets_by_attempt(
    edges: pl.DataFrame, mats: pl.DataFrame
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    stats: dict[tuple[str, str], tuple[int | None, int | None]] = {}
    for row in mats.select("attemptId", "outputLocation", "rowCount", "sizeBytes").iter_rows():
        if row[0] is not None:
            stats[(row[0], row[1])] = (row[2], row[3])
    inputs: dict[str, list[dict[str, Any]]] = {}
    outputs: dict[str, list[dict[str, Any]]] = {}
    seen: set[tuple[str, str, str]] = set()
    columns = (
        "attemptId",
        "inputUri",
        "inputAsset",
        "inputPartition",
        "outputUri",
        "outputAsset",
        "outputPartition",
    )
    for attempt, in_uri, in_asset, in_part, out_uri, out_asset, out_part in edges.select(columns).iter_rows():
        if in_uri is not None and (attempt, "in", in_uri) not in seen:
            seen.add((attempt, "in", in_uri))
            inputs.setdefault(attempt, []).append(_dataset(in_uri, in_asset, in_part))
        if out_uri is not None and (attempt, "out", out_uri) not in seen:
            seen.add((attempt, "out", out_uri))
            dataset = _dataset(out_uri, out_asset, out_part)
            rows, size = stats.get((attempt, out_uri), (None, None))
            if rows is not None or size is not None:
                dataset["outputFacets"] = {
                    "outputStatistics": {
                        "_producer": PRODUCER,
                        "_schemaURL": _STATS_SCHEMA,
                        **({"rowCount": rows} if rows is not None else {}),
                        **({"size": size} if size is not None else {}),
                    }
                }
            outputs.setdefault(attempt, []).append(dataset)
    return inputs, outputs


#: The resource figures of a task attempt (``ops.tasks`` columns), in its ``arco_resources`` facet.
_FIGURES: Final = ("cpuTimeMs", "peakMemoryBytes", "ioReadBytes", "ioWriteBytes")


def _task_events(
    row: Mapping[str, Any],
    job_namespace: str,
    job_names: Mapping[str, str | None],
    inputs_of: Mapping[str, list[dict[str, Any]]],
    outputs_of: Mapping[str, list[dict[str, Any]]],
) -> Iterator[dict[str, Any]]:
    state = row["state"] or ""
    if state == "SKIPPED" or row["attemptId"] is None:
        return
    run_id = attempt_run_uuid(row["runId"], row["attemptId"])
    parent_job = job_names.get(row["runId"]) or "arco_run"
    parent = {"runId": run_uuid(row["runId"])}
    parent_job_ref = {"namespace": job_namespace, "name": parent_job}
    facets: dict[str, Any] = {
        "parent": {
            "_producer": PRODUCER,
            "_schemaURL": _PARENT_SCHEMA,
            "run": parent,
            "job": parent_job_ref,
            "root": {"run": parent, "job": parent_job_ref},
        },
        "arco_task": _custom(
            "ArcoTaskRunFacet",
            runId=row["runId"],
            taskKey=row["taskKey"],
            attempt=row["attempt"],
            attemptId=row["attemptId"],
            partition=row["partition"] or "",
        ),
    }
    job = row["asset"] or row["taskKey"]
    inputs = inputs_of.get(row["attemptId"], [])
    outputs = outputs_of.get(row["attemptId"], [])
    started = row["startedAt"] or (row["updatedAt"] if state == "RUNNING" else None)
    if started is not None:
        yield _event("START", started, run_id, facets, job_namespace, job, inputs, [])
    terminal = _TERMINAL.get(state)
    if terminal is not None:
        ended = row["finishedAt"] or row["updatedAt"]
        end_facets = dict(facets)
        if terminal == "FAIL":
            message = row["errorMessage"] or f"task failed ({row['errorCode'] or 'no error code'})"
            end_facets["errorMessage"] = _error(message)
        figures = {name: row.get(name) for name in _FIGURES if row.get(name) is not None}
        if figures:
            end_facets["arco_resources"] = _custom("ArcoTaskResourcesRunFacet", **figures)
        yield _event(terminal, ended, run_id, end_facets, job_namespace, job, inputs, outputs)


# -- sinks -------------------------------------------------------------------------------------------------------


def write_ndjson(events: Iterable[Mapping[str, Any]], path: str | Path) -> int:
    """Append events to a file, one JSON object per line.

    Returns:
        How many events were written.
    """
    count = 0
    with Path(path).open("a", encoding="utf-8") as sink:
        for event in events:
            sink.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
    return count


def post_events(
    events: Iterable[Mapping[str, Any]],
    url: str,
    *,
    api_key: str | None = None,
    timeout_s: float = 10.0,
    endpoint: str = "api/v1/lineage",
) -> int:
    """POST each event to an OpenLineage HTTP endpoint (Marquez: ``http://host:5000``).

    Args:
        events: The events.
        url: Base URL of the backend.
        api_key: Sent as ``Authorization: Bearer <key>`` when given.
        timeout_s: Per-request timeout.
        endpoint: Path appended to ``url``.

    Returns:
        How many events were accepted.

    Raises:
        InvalidInputError: if the URL is not http(s).
        InfrastructureError: if the backend refuses an event or cannot be reached (the events before it were
            sent; sending again is safe: run ids are deterministic).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInputError(
            f"OpenLineage URL {url!r} must be http:// or https://, e.g. http://localhost:5000"
        )
    target = url.rstrip("/") + "/" + endpoint.lstrip("/")
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    sent = 0
    for event in events:
        body = json.dumps(event, ensure_ascii=False).encode()
        request = urllib.request.Request(target, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace")
            raise InfrastructureError(
                f"OpenLineage endpoint {target} refused event {sent + 1} ({event.get('eventType')}) with HTTP "
                f"{exc.code}: {detail}; {sent} event(s) were sent before it"
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise InfrastructureError(
                f"OpenLineage endpoint {target} cannot be reached ({exc}); {sent} event(s) were sent; check the "
                "URL and that the backend runs"
            ) from None
        sent += 1
    return sent
