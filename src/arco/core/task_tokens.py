"""Task tokens of the HTTP worker transport: signed, expiring, bound to one attempt of one task.

A worker that receives a dispatch over HTTP authenticates its callbacks with ``Authorization: Bearer
<taskToken>``. The token is an HS256 JSON Web Token (PyJWT) whose claims bind it to the tenant, workspace, run,
task, attempt and attempt id, and name the Temporal activity that waits for the attempt (workflow id and activity
id). Temporal's own task token never leaves the control plane: the callback server addresses the activity by
workflow and activity id.

Keys rotate by configuring the new key as current and the old one as previous: tokens signed with either verify
until the previous key is dropped. Signature checks are constant-time (``hmac.compare_digest`` inside PyJWT).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import jwt

from arco.core.errors import ConfigError

__all__ = [
    "MIN_SECRET_LENGTH",
    "TOKEN_ISSUER",
    "InvalidTaskTokenError",
    "TaskTokenClaims",
    "TaskTokenKeys",
]

#: ``iss`` of every task token Arco signs.
TOKEN_ISSUER = "arco"
#: Shortest accepted signing secret (HS256 keys shorter than the 256-bit hash are weak; RFC 7518 §3.2).
MIN_SECRET_LENGTH = 32
_ALGORITHM = "HS256"
_REQUIRED = ["exp", "iat", "iss", "sub", "tid", "wid", "run", "att", "aid", "wf", "act"]


class InvalidTaskTokenError(Exception):
    """A callback's task token is missing, forged, expired or malformed (HTTP 401 ``invalid_token``).

    The message is safe to return to the caller: it never contains the token or a key.
    """


@dataclass(frozen=True, slots=True)
class TaskTokenClaims:
    """What a task token is bound to.

    Attributes:
        tenant_id: The run's tenant.
        workspace_id: The run's workspace.
        run_id: The run id.
        task_id: The opaque ``ct1_`` task id of the callback URLs.
        attempt: The attempt number, from 1.
        attempt_id: The attempt id.
        workflow_id: Id of the workflow that dispatched the attempt.
        activity_id: Id of the Temporal activity that waits for the attempt (the dispatch id).
        heartbeat_timeout_sec: The attempt's heartbeat timeout (the callback server paces Temporal heartbeats by
            it); ``None`` when the activity has none.
        expires_at: When the token stops being accepted (UTC).
        workflow_run_id: Run id of that workflow execution, so a later execution with the same workflow id is
            never addressed by an old token.
    """

    tenant_id: str
    workspace_id: str
    run_id: str
    task_id: str
    attempt: int
    attempt_id: str
    workflow_id: str
    activity_id: str
    heartbeat_timeout_sec: float | None
    expires_at: datetime.datetime
    workflow_run_id: str | None = None


class TaskTokenKeys:
    """Signs task tokens with the current key and verifies them with the current or the previous one."""

    def __init__(self, current: str, previous: str | None = None) -> None:
        """Keep the keys.

        Args:
            current: The signing key (``ARCO_TOKEN_SECRET``), at least :data:`MIN_SECRET_LENGTH` characters.
            previous: The key being rotated out (``ARCO_TOKEN_SECRET_PREVIOUS``); tokens it signed still verify.

        Raises:
            ConfigError: if a key is shorter than :data:`MIN_SECRET_LENGTH` characters.
        """
        for name, key in (("ARCO_TOKEN_SECRET", current), ("ARCO_TOKEN_SECRET_PREVIOUS", previous)):
            if key is not None and len(key.strip()) < MIN_SECRET_LENGTH:
                raise ConfigError(
                    f"{name} must be at least {MIN_SECRET_LENGTH} characters (it signs the task tokens of HTTP "
                    f"workers with HS256); generate one with: python -c 'import secrets; "
                    "print(secrets.token_urlsafe(32))'"
                )
        self._keys = [current] if previous is None else [current, previous]

    def __repr__(self) -> str:
        return f"TaskTokenKeys(keys={len(self._keys)})"

    def sign(self, claims: TaskTokenClaims, *, issued_at: datetime.datetime) -> str:
        """The token of ``claims``, signed with the current key."""
        payload: dict[str, Any] = {
            "iss": TOKEN_ISSUER,
            "sub": claims.task_id,
            "tid": claims.tenant_id,
            "wid": claims.workspace_id,
            "run": claims.run_id,
            "att": claims.attempt,
            "aid": claims.attempt_id,
            "wf": claims.workflow_id,
            "act": claims.activity_id,
            "iat": int(issued_at.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
        }
        if claims.heartbeat_timeout_sec is not None:
            payload["hb"] = claims.heartbeat_timeout_sec
        if claims.workflow_run_id is not None:
            payload["wr"] = claims.workflow_run_id
        return jwt.encode(payload, self._keys[0], algorithm=_ALGORITHM)

    def verify(self, token: str, *, now: datetime.datetime | None = None) -> TaskTokenClaims:
        """The claims of a valid token.

        Args:
            token: The bearer token of a callback.
            now: The time to check expiry against (defaults to the clock).

        Raises:
            InvalidTaskTokenError: if the token is malformed, signed by no configured key, expired, or lacks a
                claim.
        """
        leeway = 0.0
        if now is not None:
            # PyJWT compares against the clock; shift by the difference to check against `now`.
            leeway = (datetime.datetime.now(datetime.UTC) - now).total_seconds()
        for index, key in enumerate(self._keys):
            try:
                payload = jwt.decode(
                    token,
                    key,
                    algorithms=[_ALGORITHM],
                    issuer=TOKEN_ISSUER,
                    options={"require": _REQUIRED},
                    leeway=max(0.0, leeway),
                )
            except jwt.InvalidSignatureError:
                if index + 1 < len(self._keys):
                    continue
                raise InvalidTaskTokenError("task token signature is invalid") from None
            except jwt.ExpiredSignatureError:
                raise InvalidTaskTokenError(
                    "task token has expired; the attempt's time is over (a retry gets a new token)"
                ) from None
            except jwt.MissingRequiredClaimError as exc:
                raise InvalidTaskTokenError(f"task token lacks the claim {exc.claim!r}") from None
            except jwt.InvalidTokenError:
                raise InvalidTaskTokenError("task token is malformed or not an Arco task token") from None
            if now is not None and payload["exp"] <= now.timestamp():
                raise InvalidTaskTokenError(
                    "task token has expired; the attempt's time is over (a retry gets a new token)"
                )
            return _claims(payload)
        raise InvalidTaskTokenError("task token signature is invalid")  # pragma: no cover  # keys never empty


def _claims(payload: dict[str, Any]) -> TaskTokenClaims:
    try:
        heartbeat = payload.get("hb")
        workflow_run = payload.get("wr")
        if workflow_run is not None and not (isinstance(workflow_run, str) and workflow_run):
            raise TypeError
        values = (
            payload["tid"],
            payload["wid"],
            payload["run"],
            payload["sub"],
            payload["aid"],
            payload["wf"],
            payload["act"],
        )
        attempt = payload["att"]
        if not all(isinstance(value, str) and value for value in values):
            raise TypeError
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            raise TypeError
        if heartbeat is not None and (isinstance(heartbeat, bool) or not isinstance(heartbeat, int | float)):
            raise TypeError
    except (KeyError, TypeError):
        raise InvalidTaskTokenError("task token claims are malformed") from None
    tenant, workspace, run, task, attempt_ident, workflow, activity = values
    return TaskTokenClaims(
        tenant_id=tenant,
        workspace_id=workspace,
        run_id=run,
        task_id=task,
        attempt=attempt,
        attempt_id=attempt_ident,
        workflow_id=workflow,
        activity_id=activity,
        heartbeat_timeout_sec=None if heartbeat is None else float(heartbeat),
        expires_at=datetime.datetime.fromtimestamp(payload["exp"], tz=datetime.UTC),
        workflow_run_id=workflow_run,
    )
