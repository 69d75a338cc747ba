"""Alerts against a local receiver (a standard-library HTTP server on loopback).

Unit tests drive :class:`arco.activities.alerts.AlertSender` and the activities that raise alerts without a
server; the integration tests run real runs on the dev server with a control plane that has alert sinks.
"""

from __future__ import annotations

import datetime
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from arco.activities.alerts import AlertSender
from arco.activities.compaction import CompactionActivities
from arco.activities.runs import RunActivities
from arco.catalog.storage import LocalObjectStore, ObjectStore
from arco.catalog.tier2.ledger import Ledger
from arco.core.alerts import AlertSettings, compaction_lag, run_failed
from arco.core.compaction_models import CompactionInput
from arco.core.errors import ConfigError
from arco.core.ids import new_ulid
from arco.core.runs import EventDraft, RecordEventsInput, RunState, Selection
from arco.core.scope import Scope
from catalog.tier2_support import T0, run_story, ulid_at
from support.alert_receiver import Receiver, alert_receiver
from support.stack import Served, scope_settings, serving

SCOPE = Scope("acme", "prod")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with alert_receiver() as running:
        yield running


def settings_for(receiver: Receiver, **more: int) -> AlertSettings:
    return AlertSettings.model_validate(
        {"webhook_url": f"{receiver.url}/hook", "slack_url": f"{receiver.url}/slack", **more}
    )


def sender_for(receiver: Receiver, store: ObjectStore, **more: int) -> AlertSender:
    return AlertSender(settings_for(receiver, **more), lambda: store, initial_backoff_sec=0.01)


# --- the sender ----------------------------------------------------------------------------------------------


def test_webhook_gets_the_documented_body_and_slack_a_text(receiver: Receiver, tmp_path: Path) -> None:
    sender = sender_for(receiver, LocalObjectStore(tmp_path))
    sender.send(run_failed(SCOPE, "01JRUN", "asset demo.x failed: boom"))
    assert sender.flush(30)
    (body,) = receiver.delivered("/hook")
    assert body["version"] == 1
    assert (body["kind"], body["severity"], body["tenantId"], body["workspaceId"]) == (
        "run_failed",
        "error",
        "acme",
        "prod",
    )
    assert body["key"] == "run_failed:acme:prod:01JRUN"
    assert body["summary"] == "run 01JRUN failed: asset demo.x failed: boom"
    assert body["details"] == {"runId": "01JRUN", "errorMessage": "asset demo.x failed: boom"}
    assert datetime.datetime.fromisoformat(body["occurredAt"]).tzinfo is not None
    assert receiver.delivered("/slack") == [
        {"text": "[Arco] error acme/prod: run 01JRUN failed: asset demo.x failed: boom"}
    ]


def test_one_key_is_sent_once_per_window_by_all_senders(receiver: Receiver, tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    first, second = sender_for(receiver, store), sender_for(receiver, store)
    for sender in (first, second, first):
        sender.send(run_failed(SCOPE, "01JRUN", None))
    second.send(run_failed(SCOPE, "01JOTHER", None))
    assert first.flush(30) and second.flush(30)
    assert sorted(body["key"] for body in receiver.delivered("/hook")) == [
        "run_failed:acme:prod:01JOTHER",
        "run_failed:acme:prod:01JRUN",
    ]
    assert len(receiver.delivered("/slack")) == 2


def test_a_failing_sink_is_retried_with_backoff(receiver: Receiver, tmp_path: Path) -> None:
    receiver.fail_next("/hook", 503, 2)
    receiver.fail_next("/slack", 429, 1)
    sender = sender_for(receiver, LocalObjectStore(tmp_path))
    sender.send(run_failed(SCOPE, "01JRUN", None))
    assert sender.flush(30)
    assert [status for path, status, _ in receiver.requests if path == "/hook"] == [503, 503, 200]
    assert [status for path, status, _ in receiver.requests if path == "/slack"] == [429, 200]


def test_a_refusing_sink_is_not_retried_and_the_next_occurrence_tries_again(
    receiver: Receiver, tmp_path: Path
) -> None:
    receiver.fail_next("/hook", 400, 1)
    sender = AlertSender(
        AlertSettings.model_validate({"webhook_url": f"{receiver.url}/hook"}),
        lambda: LocalObjectStore(tmp_path),
        initial_backoff_sec=0.01,
    )
    sender.send(run_failed(SCOPE, "01JRUN", None))
    assert sender.flush(30)
    assert [status for path, status, _ in receiver.requests] == [400]
    sender.send(run_failed(SCOPE, "01JRUN", None))
    assert sender.flush(30)
    assert [status for path, status, _ in receiver.requests] == [400, 200]


def test_sending_returns_before_the_sink_answers(receiver: Receiver, tmp_path: Path) -> None:
    receiver.fail_next("/hook", 503, 3)
    sender = AlertSender(
        settings_for(receiver), lambda: LocalObjectStore(tmp_path), initial_backoff_sec=60, attempts=2
    )
    sender.send(run_failed(SCOPE, "01JRUN", None))
    # The sender waits 60 s before its second try; send() returned long before that.
    assert not sender.flush(0.5)


def test_no_sink_sends_nothing(tmp_path: Path) -> None:
    sender = AlertSender(AlertSettings(), lambda: LocalObjectStore(tmp_path))
    sender.send(run_failed(SCOPE, "01JRUN", None))
    assert sender.flush(0)
    assert list(LocalObjectStore(tmp_path).list("")) == []


def test_settings_from_the_environment() -> None:
    settings = AlertSettings.from_env(
        {
            "ARCO_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook",
            "ARCO_ALERT_SLACK_URL": "",
            "ARCO_ALERT_DEDUP_WINDOW_SEC": "60",
        }
    )
    assert str(settings.webhook_url) == "http://127.0.0.1:9/hook"
    assert settings.slack_url is None
    assert (settings.dedup_window_sec, settings.compaction_lag_sec) == (60, 900)
    assert not AlertSettings.from_env({}).enabled
    with pytest.raises(ConfigError, match=r"ARCO_ALERT_WEBHOOK_URL='hooks\.example' is invalid"):
        AlertSettings.from_env({"ARCO_ALERT_WEBHOOK_URL": "hooks.example"})
    with pytest.raises(ConfigError, match=r"ARCO_ALERT_DEDUP_WINDOW_SEC='0' is invalid"):
        AlertSettings.from_env({"ARCO_ALERT_DEDUP_WINDOW_SEC": "0"})


# --- the activities that raise them --------------------------------------------------------------------------


def test_recording_a_failed_run_and_a_failed_freshness_check_alerts(
    receiver: Receiver, tmp_path: Path
) -> None:
    store = LocalObjectStore(tmp_path / "catalog")
    sender = sender_for(receiver, store)
    activities = RunActivities(str(tmp_path / "catalog"), alerts=sender)
    run_id = new_ulid()
    at = datetime.datetime.now(datetime.UTC).isoformat()

    def draft(event_type: str, data: dict[str, object]) -> EventDraft:
        return EventDraft(event_id=new_ulid(), event_type=event_type, occurred_at=at, data=data)

    check = {"asset": "demo.x", "partition": "", "runId": run_id, "passed": False}
    batch = RecordEventsInput(
        tenant_id="acme",
        workspace_id="prod",
        run_id=run_id,
        writer_id="unit",
        events=[
            draft("CheckEvaluated", {**check, "checkName": "row_count", "kind": "row_count"}),
            draft("CheckEvaluated", {**check, "checkName": "fresh", "kind": "freshness", "message": "stale"}),
            draft("CheckEvaluated", {**check, "checkName": "old", "passed": True, "kind": "freshness"}),
            draft("RunFinished", {"runId": run_id, "status": RunState.FAILED.value, "errorMessage": "boom"}),
        ],
    )
    assert ActivityEnvironment().run(activities.record_events, batch) == 4
    assert sender.flush(30)
    bodies = {body["kind"]: body for body in receiver.delivered("/hook")}
    assert sorted(bodies) == ["freshness_violation", "run_failed"]
    assert bodies["freshness_violation"]["key"] == "freshness_violation:acme:prod:demo.x::fresh"
    assert bodies["freshness_violation"]["details"]["message"] == "stale"
    assert bodies["run_failed"]["details"] == {"runId": run_id, "errorMessage": "boom"}


def test_a_succeeded_run_raises_no_alert(receiver: Receiver, tmp_path: Path) -> None:
    sender = sender_for(receiver, LocalObjectStore(tmp_path / "catalog"))
    run_id = new_ulid()
    batch = RecordEventsInput(
        tenant_id="acme",
        workspace_id="prod",
        run_id=run_id,
        writer_id="unit",
        events=[
            EventDraft(
                event_id=new_ulid(),
                event_type="RunFinished",
                occurred_at=datetime.datetime.now(datetime.UTC).isoformat(),
                data={"runId": run_id, "status": RunState.SUCCEEDED.value},
            )
        ],
    )
    ActivityEnvironment().run(RunActivities(str(tmp_path / "catalog"), alerts=sender).record_events, batch)
    assert sender.flush(30)
    assert receiver.requests == []


def test_compaction_that_leaves_lag_alerts(receiver: Receiver, tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    ledger = Ledger(store, SCOPE, writer_id="w")
    for hour in range(3):
        at = T0 + datetime.timedelta(hours=hour)
        ledger.append(run_story(ulid_at(at), at=at))
    sender = sender_for(receiver, store, compaction_lag_sec=60)
    activities = CompactionActivities(lambda: store, sender)
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: None
    partial = env.run(
        activities.compact, CompactionInput(tenant_id="acme", workspace_id="prod", max_events=1)
    )
    assert partial.pending_objects > 0
    caught_up = env.run(activities.compact, CompactionInput(tenant_id="acme", workspace_id="prod"))
    assert caught_up.lag_seconds == 0
    assert sender.flush(30)
    (body,) = receiver.delivered("/hook")
    assert (body["kind"], body["key"], body["severity"]) == (
        "compaction_lag",
        "compaction_lag:acme:prod",
        "warning",
    )
    assert body["details"]["thresholdSeconds"] == 60
    assert body["details"]["pendingObjects"] == partial.pending_objects
    assert body["details"]["lagSeconds"] == pytest.approx(partial.lag_seconds)
    assert compaction_lag(SCOPE, 1, 1, 1).key == body["key"]


# --- real runs -----------------------------------------------------------------------------------------------

ASSETS = Path(__file__).resolve().parent.parent / "runs" / "assets"
QUEUE = "arco-test-alerts"


@pytest.fixture
async def served(
    temporal_client: Client, task_queue: str, tmp_path: Path, receiver: Receiver
) -> AsyncIterator[Served]:
    sys.path.insert(0, str(ASSETS))
    settings = scope_settings(tmp_path, task_queue, workspace="alerts", executor_queue=QUEUE)
    async with serving(
        temporal_client, settings, "alert_assets", queue=QUEUE, alerts=settings_for(receiver)
    ) as stack:
        yield stack


@pytest.mark.integration
async def test_a_failed_run_and_a_stale_asset_alert_once(served: Served, receiver: Receiver) -> None:
    failed = await served.run(
        selection=Selection(asset_keys=["alerts.broken"]), tags={"fail": "yes"}, run_key=uuid.uuid4().hex
    )
    final = await failed.result(timeout=120)
    assert final.state == RunState.FAILED
    stale = await served.run(selection=Selection(asset_keys=["alerts.stale"]))
    assert (await stale.result(timeout=120)).state == RunState.SUCCEEDED

    bodies = receiver.wait_for("/hook", 2)
    by_kind = {body["kind"]: body for body in bodies}
    assert sorted(by_kind) == ["freshness_violation", "run_failed"], bodies
    assert by_kind["run_failed"]["details"]["runId"] == final.run_id
    assert "failing on purpose" in by_kind["run_failed"]["summary"]
    tenant = served.settings.tenant
    assert by_kind["freshness_violation"]["key"] == (
        f"freshness_violation:{tenant}:alerts:alerts.stale::freshness"
    )
    assert len(receiver.wait_for("/slack", 2)) == 2
