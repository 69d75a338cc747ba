"""The HTTP transport's parts on their own: task tokens, strict JSON, HTTP queues and options, and every error
answer of the callback server that it gives before it asks Temporal anything."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import signal
import socket
import sys
from typing import Any

import httpx
import jwt
import pytest
from click.testing import CliRunner
from temporalio.client import Client

from arco.activities.http_dispatch import AttemptBook
from arco.cli._http_transport import callback_settings, parse_listen
from arco.cli.main import cli
from arco.core.errors import ConfigError
from arco.core.http_transport import MAX_CALLBACK_BODY_BYTES, HttpQueue
from arco.core.task_tokens import InvalidTaskTokenError, TaskTokenClaims, TaskTokenKeys
from arco.core.wire import task_id
from arco.worker.callbacks import CallbackService, build_app, heartbeat_interval
from arco.worker.temporal_server import TemporalDevServer

KEY = "current-key-0123456789abcdefghijklmnopqrstuvwxyz"
OLD = "previous-key-0123456789abcdefghijklmnopqrstuvwxyz"
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
TASK = task_id("run-1", "web.report")


def claims(**changes: Any) -> TaskTokenClaims:
    values: dict[str, Any] = {
        "tenant_id": "acme",
        "workspace_id": "prod",
        "run_id": "run-1",
        "task_id": TASK,
        "attempt": 1,
        "attempt_id": "att_1",
        "workflow_id": "run-1:tasks",
        "activity_id": "dispatch:run-1:web.report:1",
        "heartbeat_timeout_sec": 30.0,
        "expires_at": NOW + datetime.timedelta(hours=1),
    }
    values.update(changes)
    return TaskTokenClaims(**values)


# --- task tokens ---


def test_a_token_verifies_to_the_claims_it_was_signed_with() -> None:
    keys = TaskTokenKeys(KEY)
    token = keys.sign(claims(), issued_at=NOW)
    assert keys.verify(token, now=NOW + datetime.timedelta(minutes=5)) == claims()
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"


def test_a_token_of_the_previous_key_verifies_during_a_rotation_and_not_after() -> None:
    old_token = TaskTokenKeys(OLD).sign(claims(), issued_at=NOW)
    rotating = TaskTokenKeys(KEY, OLD)
    assert rotating.verify(old_token, now=NOW).attempt_id == "att_1"
    # New tokens are signed with the current key only.
    assert TaskTokenKeys(KEY).verify(rotating.sign(claims(), issued_at=NOW), now=NOW).attempt == 1
    with pytest.raises(InvalidTaskTokenError, match="signature is invalid"):
        TaskTokenKeys(KEY).verify(old_token, now=NOW)


def test_forged_expired_and_malformed_tokens_are_refused() -> None:
    keys = TaskTokenKeys(KEY)
    token = keys.sign(claims(), issued_at=NOW)
    with pytest.raises(InvalidTaskTokenError, match="expired"):
        keys.verify(token, now=NOW + datetime.timedelta(hours=2))
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload[:-2]}AA.{signature}"
    with pytest.raises(InvalidTaskTokenError):
        keys.verify(tampered, now=NOW)
    with pytest.raises(InvalidTaskTokenError, match="malformed"):
        keys.verify("not-a-token", now=NOW)
    unsigned = jwt.encode({"sub": TASK}, key=None, algorithm="none")
    with pytest.raises(InvalidTaskTokenError):
        keys.verify(unsigned, now=NOW)
    missing = jwt.encode({"iss": "arco", "sub": TASK, "exp": 2**40, "iat": 0}, KEY, algorithm="HS256")
    with pytest.raises(InvalidTaskTokenError, match="lacks the claim"):
        keys.verify(missing, now=NOW)


def test_short_keys_are_refused_with_how_to_make_one() -> None:
    with pytest.raises(ConfigError, match=r"at least 32 characters.*secrets\.token_urlsafe"):
        TaskTokenKeys("short")
    with pytest.raises(ConfigError, match="ARCO_TOKEN_SECRET_PREVIOUS"):
        TaskTokenKeys(KEY, "short")
    assert KEY not in repr(TaskTokenKeys(KEY))


# --- queues, options ---


def test_an_http_queue_is_queue_equals_url() -> None:
    queue = HttpQueue.parse("etl=http://127.0.0.1:9000", " s3cret ")
    assert (queue.queue, queue.url, queue.secret) == ("etl", "http://127.0.0.1:9000/dispatch", "s3cret")
    assert HttpQueue.parse("etl=https://w.example/run", "s").url == "https://w.example/run"
    assert "s3cret" not in repr(queue)
    for text in ("etl", "=http://x", "etl=ftp://x", "etl=http://", "etl=http://x/d?q=1", "e tl=http://x"):
        with pytest.raises(ConfigError, match="--http-queue"):
            HttpQueue.parse(text, "s")
    with pytest.raises(ConfigError, match="dispatch secret is empty"):
        HttpQueue.parse("etl=http://x", " ")


def test_callback_settings_need_a_token_secret_and_a_dispatch_secret() -> None:
    base = {"listen": "127.0.0.1:8780", "callback_url": None, "dispatch_secret_env": "SECRET"}
    with pytest.raises(ConfigError, match="ARCO_TOKEN_SECRET is not set"):
        callback_settings(**base, http_queues=(), env={})
    generated = callback_settings(**base, http_queues=(), env={}, generate_token_secret=True)
    assert generated.listen == ("127.0.0.1", 8780) and generated.queues == ()
    env = {"ARCO_TOKEN_SECRET": KEY}
    with pytest.raises(ConfigError, match="SECRET is not set"):
        callback_settings(**base, http_queues=("etl=http://x",), env=env)
    env["SECRET"] = "dispatch"
    with pytest.raises(ConfigError, match="given twice"):
        callback_settings(**base, http_queues=("etl=http://x", "etl=http://y"), env=env)
    settings = callback_settings(
        **{**base, "listen": "[::1]:0"},
        http_queues=("etl=http://x",),
        env={**env, "ARCO_CALLBACK_URL": "http://cb"},
    )
    assert settings.listen == ("::1", 0) and settings.callback_base_url == "http://cb"
    assert [queue.secret for queue in settings.queues] == ["dispatch"]
    for bad in ("8780", "host:", "host:99999", ":80"):
        with pytest.raises(ConfigError, match="--listen"):
            parse_listen(bad)


def test_arco_worker_callbacks_without_a_token_secret_exits_2_with_the_fix() -> None:
    result = CliRunner().invoke(cli, ["worker", "callbacks"], env={"ARCO_TOKEN_SECRET": ""})
    assert result.exit_code == 2, result.output
    assert "ARCO_TOKEN_SECRET is not set" in result.output and "Traceback" not in result.output


def test_temporal_heartbeats_are_paced_by_the_heartbeat_timeout() -> None:
    assert heartbeat_interval(3.0) == pytest.approx(1.0)
    assert heartbeat_interval(300.0) == 10.0
    assert heartbeat_interval(None) == 10.0


# --- the error answers given before Temporal is asked ---


@pytest.fixture
def app(temporal_client: Client) -> httpx.AsyncClient:
    service = CallbackService(temporal_client, TaskTokenKeys(KEY), AttemptBook())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(service)), base_url="http://cb")


def token(**changes: Any) -> str:
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    return TaskTokenKeys(KEY).sign(
        claims(expires_at=expires, **changes), issued_at=datetime.datetime.now(datetime.UTC)
    )


BEAT = {"attempt": 1, "attemptId": "att_1", "workerId": "w-1"}


async def post(
    app: httpx.AsyncClient, kind: str, body: Any, bearer: str | None
) -> tuple[int, dict[str, Any]]:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
    response = await app.post(f"/v1/tasks/{TASK}/{kind}", content=content, headers=headers)
    return response.status_code, response.json()


@pytest.mark.integration
async def test_401_invalid_token(app: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    forged = TaskTokenKeys(OLD).sign(claims(expires_at=NOW + datetime.timedelta(days=10**5)), issued_at=NOW)
    expired = TaskTokenKeys(KEY).sign(claims(), issued_at=NOW)
    other = token(task_id=task_id("run-1", "web.other"))
    for kind in ("started", "heartbeat", "completed"):
        for bearer in (None, "", forged, expired, other):
            status, body = await post(app, kind, BEAT, bearer)
            assert (status, body["error"]) == (401, "invalid_token"), (kind, body)
    response = await app.post(f"/v1/tasks/{TASK}/heartbeat", json=BEAT, headers={"Authorization": "Basic x"})
    assert response.status_code == 401 and "Bearer" in response.json()["message"]
    assert forged not in caplog.text and expired not in caplog.text


@pytest.mark.integration
async def test_400_invalid_argument(app: httpx.AsyncClient) -> None:
    bearer = token()
    cases: list[tuple[bytes | dict[str, Any], str]] = [
        (b"{", "Invalid body: body is not valid JSON"),
        (b"[]", "Invalid body: must be a JSON object, got list"),
        (
            b'{"attempt": 1, "attempt": 1, "attemptId": "att_1", "workerId": "w"}',
            "Invalid body: body has the key 'attempt' twice",
        ),
        (
            b'{"attempt": NaN, "attemptId": "att_1", "workerId": "w"}',
            "Invalid body: body is not valid JSON: NaN is not a JSON number",
        ),
        (b'{"attempt": 1, "attemptId": "\xff", "workerId": "w"}', "Invalid body: body is not UTF-8"),
        ({**BEAT, "attempt": 0}, "Invalid attempt:"),
        ({**BEAT, "attempt": "1"}, "Invalid attempt:"),
        ({"attempt": 1, "workerId": "w"}, "Invalid attemptId: Field required"),
        ({**BEAT, "progressPct": 101}, "Invalid progressPct:"),
        ({**BEAT, "heartbeatAt": "2026-01-01T00:00:00"}, "Invalid heartbeatAt:"),
    ]
    for body, message in cases:
        status, answer = await post(app, "heartbeat", body, bearer)
        assert (status, answer["error"]) == (400, "invalid_argument"), (body, answer)
        assert answer["message"].startswith(message), (body, answer)
    status, answer = await post(app, "completed", {**BEAT, "outcome": "DONE"}, bearer)
    assert (status, answer["error"]) == (400, "invalid_argument") and answer["message"].startswith(
        "Invalid outcome"
    )
    failed_with_success = {**BEAT, "outcome": "SUCCEEDED", "error": {"category": "USER_CODE", "message": "x"}}
    assert (await post(app, "completed", failed_with_success, bearer))[0] == 400


@pytest.mark.integration
async def test_409_attempt_mismatch_and_attempt_id_mismatch(app: httpx.AsyncClient) -> None:
    bearer = token()
    for kind, extra in (("started", {}), ("heartbeat", {}), ("completed", {"outcome": "SUCCEEDED"})):
        status, body = await post(app, kind, {**BEAT, **extra, "attempt": 3}, bearer)
        assert (status, body) == (
            409,
            {
                "error": "attempt_mismatch",
                "message": "Expected attempt 1, received 3",
                "expectedAttempt": 1,
                "receivedAttempt": 3,
            },
        )
        status, body = await post(app, kind, {**BEAT, **extra, "attemptId": "att-456"}, bearer)
        assert (status, body) == (
            409,
            {
                "error": "attempt_id_mismatch",
                "message": "Expected attempt_id att_1, received att-456",
                "expectedAttemptId": "att_1",
                "receivedAttemptId": "att-456",
            },
        )


@pytest.mark.integration
async def test_413_for_a_body_over_the_limit_and_404_for_an_unknown_callback(app: httpx.AsyncClient) -> None:
    status, body = await post(app, "heartbeat", b" " * MAX_CALLBACK_BODY_BYTES + b"{}", token())
    assert (status, body["error"]) == (413, "invalid_argument")
    response = await app.post(f"/v1/tasks/{TASK}/finished", json=BEAT)
    assert response.status_code == 404 and "started, heartbeat and completed" in response.json()["message"]
    assert (await app.get("/health")).json() == {"status": "ok"}


@pytest.mark.integration
async def test_404_task_not_found_for_a_run_temporal_does_not_have(app: httpx.AsyncClient) -> None:
    bearer = token(workflow_id="no-such-workflow-of-any-run")
    for kind, extra in (("started", {}), ("heartbeat", {}), ("completed", {"outcome": "FAILED"})):
        status, body = await post(app, kind, {**BEAT, **extra}, bearer)
        assert (status, body) == (404, {"error": "task_not_found", "message": f"Task not found: {TASK}"})


@pytest.mark.integration
async def test_arco_worker_callbacks_serves_until_interrupted_and_refuses_a_taken_port(
    temporal_server: TemporalDevServer,
) -> None:
    env = {
        **os.environ,
        "ARCO_TEMPORAL_ADDRESS": temporal_server.address,
        "ARCO_TOKEN_SECRET": KEY,
        "ARCO_DISPATCH_SECRET": "dispatch-secret",
    }
    args = ["-m", "arco.cli.main", "worker", "callbacks", "--listen", "127.0.0.1:0"]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        "--http-queue",
        "etl=http://127.0.0.1:9/dispatch",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=60)).decode()
        assert line.startswith("callback server on http://127.0.0.1:"), line
        assert "http-queues=etl=http://127.0.0.1:9/dispatch" in line and "dispatch-secret" not in line
        url = line.split()[3]
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{url}/health")).json() == {"status": "ok"}
            port = int(url.rsplit(":", 1)[1])
        taken = await asyncio.create_subprocess_exec(
            sys.executable,
            *args[:-1],
            f"127.0.0.1:{port}",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(taken.communicate(), timeout=60)
        assert taken.returncode == 2, output
        assert b"cannot listen on 127.0.0.1:" in output and b"Traceback" not in output
        process.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 0, rest
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.integration
async def test_a_token_remembered_after_its_first_callback_is_refused_once_it_expires(
    app: httpx.AsyncClient,
) -> None:
    # The callback server remembers tokens it verified (an attempt calls back many times with one token); what it
    # remembers must still expire, and a forged token with the same claims is never taken for the real one.
    now = datetime.datetime.now(datetime.UTC)
    expires = now.replace(microsecond=0) + datetime.timedelta(seconds=2)
    real = TaskTokenKeys(KEY).sign(claims(expires_at=expires), issued_at=now)
    forged = TaskTokenKeys(OLD).sign(claims(expires_at=expires), issued_at=now)
    status, body = await post(app, "heartbeat", BEAT, real)
    assert (status, body["error"]) == (404, "task_not_found")  # authorized: the run does not exist
    status, body = await post(app, "heartbeat", BEAT, forged)
    assert (status, body["error"]) == (401, "invalid_token")
    for _ in range(100):
        if datetime.datetime.now(datetime.UTC) > expires:
            break
        await asyncio.sleep(0.05)
    status, body = await post(app, "heartbeat", BEAT, real)
    assert (status, body["error"]) == (401, "invalid_token")
    assert "expired" in body["message"]


def test_every_http_server_of_arco_listens_on_a_tcp_protocol_socket() -> None:
    """The read API, the callback server and the HTTP worker bind through one function: a socket made with
    protocol 0 keeps Nagle's algorithm on under asyncio, and each response's body then waits 40 ms for the
    client's delayed ACK."""
    from arco.worker.runtime import listening_socket

    sock = listening_socket("127.0.0.1", 0, what="the callback server")
    try:
        assert sock.proto == socket.IPPROTO_TCP
        with pytest.raises(ConfigError, match=r"the callback server cannot listen on 127\.0\.0\.1:\d+"):
            listening_socket("127.0.0.1", sock.getsockname()[1], what="the callback server")
    finally:
        sock.close()
