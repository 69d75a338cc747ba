"""Helpers of the Tier-2 tests: stores, event builders and a store that fails after N writes."""

from __future__ import annotations

import datetime
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from fsspec import AbstractFileSystem

from arco.catalog.storage import ObjectInfo, ObjectStore, ObjectVersion, open_store
from arco.catalog.tier2.events import (
    ArcoEvent,
    CheckEvaluated,
    DatasetRef,
    LineageObserved,
    Materialized,
    RunFinished,
    RunStarted,
    TaskStateChanged,
)
from arco.core.runs import RunState, TaskState
from arco.core.scope import Scope

SCOPE = Scope("acme", "prod")
T0 = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.UTC)

BACKENDS = [pytest.param("memory", id="memory"), pytest.param("local", id="local")]


def make_store(kind: str, tmp_path: Path) -> ObjectStore:
    """A fresh, empty store of ``kind``."""
    if kind == "memory":
        return open_store(f"memory://tier2-{uuid.uuid4().hex}")
    return open_store(str(tmp_path / "catalog"))


_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid_at(moment: datetime.datetime, random_part: int | None = None) -> str:
    """A ULID whose timestamp is ``moment`` (random part from ``random_part`` or the OS)."""
    millis = int(moment.timestamp() * 1000)
    rand = random_part if random_part is not None else int.from_bytes(os.urandom(10), "big")
    value = (millis << 80) | (rand & ((1 << 80) - 1))
    return "".join(_ALPHABET[(value >> (5 * (25 - i))) & 31] for i in range(26))


def event(
    data: Materialized | RunStarted | RunFinished | TaskStateChanged | LineageObserved | CheckEvaluated,
    *,
    at: datetime.datetime = T0,
    event_id: str | None = None,
    key: str | None = None,
) -> ArcoEvent:
    """An event of :data:`SCOPE` around ``data``."""
    return ArcoEvent.of(
        SCOPE,
        data,
        source="tests",
        occurred_at=at,
        event_id=event_id or ulid_at(at),
        idempotency_key=key,
    )


def run_story(run_id: str, *, at: datetime.datetime = T0, asset: str = "sales.orders") -> list[ArcoEvent]:
    """The events of one small run: start, a failed and a successful attempt, output, lineage, check, end."""
    partition = "date=d:2024-05-01"
    step = datetime.timedelta(seconds=1)

    def change(attempt: int, state: TaskState, offset: int, error: str | None = None) -> ArcoEvent:
        return event(
            TaskStateChanged(
                run_id=run_id,
                task_key=asset,
                attempt=attempt,
                attempt_id=f"att_{run_id[-6:]}_{attempt}",
                state=state,
                asset=asset,
                partition=partition,
                error_message=error,
            ),
            at=at + offset * step,
        )

    return [
        event(RunStarted(run_id=run_id, job="daily", trigger="schedule"), at=at),
        change(1, TaskState.RUNNING, 1),
        change(1, TaskState.FAILED, 2, "boom"),
        change(2, TaskState.RUNNING, 3),
        event(
            Materialized(
                run_id=run_id,
                asset=asset,
                partition=partition,
                output_location=f"gs://lake/{asset}/{run_id}.parquet",
                row_count=42,
                size_bytes=4200,
                schema_fingerprint="fp1",
                code_version="v1",
                task_key=asset,
                attempt=2,
                attempt_id=f"att_{run_id[-6:]}_2",
            ),
            at=at + 4 * step,
        ),
        event(
            LineageObserved(
                run_id=run_id,
                task_key=asset,
                attempt=2,
                attempt_id=f"att_{run_id[-6:]}_2",
                inputs=[DatasetRef(uri="gs://raw/orders.csv", version="g17")],
                outputs=[
                    DatasetRef(uri=f"gs://lake/{asset}/{run_id}.parquet", asset=asset, partition=partition)
                ],
            ),
            at=at + 5 * step,
        ),
        event(
            CheckEvaluated(
                run_id=run_id, asset=asset, partition=partition, check_name="row_count", passed=True
            ),
            at=at + 6 * step,
        ),
        change(2, TaskState.SUCCEEDED, 7),
        event(RunFinished(run_id=run_id, status=RunState.SUCCEEDED), at=at + 8 * step),
    ]


class FailingStore(ObjectStore):
    """Wraps a store and raises after ``fail_after`` successful writes (creates, CASes and deletes)."""

    class Crash(Exception):
        """The simulated crash."""

    def __init__(self, inner: ObjectStore, fail_after: int) -> None:
        super().__init__(inner.uri)
        self.inner = inner
        self.fail_after = fail_after
        self.writes = 0

    def _count(self) -> None:
        if self.writes >= self.fail_after:
            raise FailingStore.Crash(f"simulated crash before write {self.writes + 1}")
        self.writes += 1

    def read_versioned(self, key: str) -> tuple[bytes, ObjectVersion]:
        return self.inner.read_versioned(key)

    def read_range(self, key: str, start: int, end: int) -> bytes:
        return self.inner.read_range(key, start, end)

    def read_tail(self, key: str, length: int) -> bytes:
        return self.inner.read_tail(key, length)

    def head(self, key: str) -> ObjectInfo | None:
        return self.inner.head(key)

    def create_if_absent(self, key: str, data: bytes) -> ObjectVersion:
        self._count()
        return self.inner.create_if_absent(key, data)

    def compare_and_swap(self, key: str, data: bytes, expected: ObjectVersion | None) -> ObjectVersion:
        self._count()
        return self.inner.compare_and_swap(key, data, expected)

    def list(
        self, prefix: str = "", start_after: str | None = None, limit: int | None = None
    ) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix, start_after, limit)

    def delete(self, key: str) -> None:
        self._count()
        self.inner.delete(key)

    def sign_url(self, key: str, expires_in: datetime.timedelta) -> str:
        return self.inner.sign_url(key, expires_in)

    def filesystem_and_path(self, key: str) -> tuple[AbstractFileSystem, str]:
        return self.inner.filesystem_and_path(key)

    def uri_for(self, key: str) -> str:
        return self.inner.uri_for(key)


def rewrite_object(data: bytes, change: Callable[[pa.Table], pa.Table]) -> bytes:
    """A ledger object's bytes after ``change`` was applied to its table (schema metadata kept)."""
    table = ipc.open_file(pa.BufferReader(data)).read_all()
    changed = change(table)
    if changed.schema.metadata is None and table.schema.metadata is not None:
        changed = changed.replace_schema_metadata(table.schema.metadata)
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, changed.schema) as writer:
        writer.write_table(changed)
    return bytes(sink.getvalue().to_pybytes())


def replace_column(table: pa.Table, name: str, values: pa.Array[Any]) -> pa.Table:
    """``table`` with column ``name`` replaced (or appended)."""
    index = table.schema.get_field_index(name)
    if index < 0:
        return table.append_column(name, values)
    return table.set_column(index, name, values)
