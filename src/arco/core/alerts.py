"""Alerts: what is sent when a run fails, a freshness check fails or compaction lags, and where to (settings).

The webhook body is :class:`Alert` as camelCase JSON (docs/operations.md, Alerts); a Slack-compatible sink gets
``{"text": alert.text()}``. Alerts of one :attr:`Alert.key` are sent once per dedup window. The sinks are set at
the process edge (``ARCO_ALERT_*`` variables, :meth:`AlertSettings.from_env`); with none set nothing is sent.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError
from pydantic.alias_generators import to_camel

from arco.core.errors import ConfigError
from arco.core.scope import Scope

#: Version of the webhook body; grows when a field changes meaning (new fields may appear without it).
ALERT_BODY_VERSION = 1

AlertKind = Literal["run_failed", "freshness_violation", "compaction_lag"]

#: The environment variables of :class:`AlertSettings`.
ALERT_ENV = {
    "ARCO_ALERT_WEBHOOK_URL": "webhook_url",
    "ARCO_ALERT_SLACK_URL": "slack_url",
    "ARCO_ALERT_DEDUP_WINDOW_SEC": "dedup_window_sec",
    "ARCO_ALERT_COMPACTION_LAG_SEC": "compaction_lag_sec",
}


class Alert(BaseModel):
    """One alert: the JSON body a webhook sink receives.

    Attributes:
        version: :data:`ALERT_BODY_VERSION`.
        kind: ``run_failed``, ``freshness_violation`` or ``compaction_lag``.
        key: The deduplication key (alerts of one key are sent once per window), see :func:`run_failed`,
            :func:`freshness_violation` and :func:`compaction_lag`.
        severity: ``error`` (a run failed, a freshness check failed) or ``warning`` (compaction lags).
        tenant_id: Tenant of the scope.
        workspace_id: Workspace of the scope.
        summary: One line for a person.
        occurred_at: When Arco noticed (UTC).
        details: What the kind adds (run id, asset, lag, ...), JSON values.
    """

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    version: int = ALERT_BODY_VERSION
    kind: AlertKind
    key: str
    severity: Literal["error", "warning"]
    tenant_id: str
    workspace_id: str
    summary: str
    occurred_at: datetime.datetime
    details: dict[str, str | int | float | bool | None] = Field(default_factory=dict)

    def to_json(self) -> bytes:
        """The webhook body."""
        return self.model_dump_json(by_alias=True).encode()

    def text(self) -> str:
        """The Slack message text: ``[Arco] {severity} {tenant}/{workspace}: {summary}``."""
        return f"[Arco] {self.severity} {self.tenant_id}/{self.workspace_id}: {self.summary}"

    def digest(self) -> str:
        """A short, storage-safe digest of :attr:`key` (names the dedup marker)."""
        return hashlib.sha256(self.key.encode()).hexdigest()[:32]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def run_failed(scope: Scope, run_id: str, error_message: str | None) -> Alert:
    """A run ended FAILED. Key: ``run_failed:{tenant}:{workspace}:{runId}``."""
    return Alert(
        kind="run_failed",
        key=f"run_failed:{scope.tenant}:{scope.workspace}:{run_id}",
        severity="error",
        tenant_id=scope.tenant,
        workspace_id=scope.workspace,
        summary=f"run {run_id} failed" + (f": {error_message}" if error_message else ""),
        occurred_at=_now(),
        details={"runId": run_id, "errorMessage": error_message},
    )


def freshness_violation(
    scope: Scope, asset: str, partition: str, check_name: str, run_id: str, message: str | None
) -> Alert:
    """A freshness check failed. Key: ``freshness_violation:{tenant}:{workspace}:{asset}:{partition}:{check}``."""
    where = f"asset {asset}" + (f" partition {partition}" if partition else "")
    return Alert(
        kind="freshness_violation",
        key=f"freshness_violation:{scope.tenant}:{scope.workspace}:{asset}:{partition}:{check_name}",
        severity="error",
        tenant_id=scope.tenant,
        workspace_id=scope.workspace,
        summary=f"{where}: freshness check {check_name} failed" + (f": {message}" if message else ""),
        occurred_at=_now(),
        details={
            "asset": asset,
            "partition": partition,
            "checkName": check_name,
            "runId": run_id,
            "message": message,
        },
    )


def compaction_lag(scope: Scope, lag_seconds: float, threshold_seconds: int, pending_objects: int) -> Alert:
    """The oldest uncompacted event is older than the threshold. Key: ``compaction_lag:{tenant}:{workspace}``."""
    return Alert(
        kind="compaction_lag",
        key=f"compaction_lag:{scope.tenant}:{scope.workspace}",
        severity="warning",
        tenant_id=scope.tenant,
        workspace_id=scope.workspace,
        summary=f"compaction lags {lag_seconds:.0f} s behind the ledger (threshold {threshold_seconds} s, "
        f"{pending_objects} ledger objects pending)",
        occurred_at=_now(),
        details={
            "lagSeconds": lag_seconds,
            "thresholdSeconds": threshold_seconds,
            "pendingObjects": pending_objects,
        },
    )


class AlertSettings(BaseModel):
    """Where alerts go and how they are deduplicated (``ARCO_ALERT_*`` variables).

    Attributes:
        webhook_url: ``ARCO_ALERT_WEBHOOK_URL``: POSTed the :class:`Alert` JSON body.
        slack_url: ``ARCO_ALERT_SLACK_URL``: a Slack incoming webhook (or compatible), POSTed ``{"text": ...}``.
        dedup_window_sec: ``ARCO_ALERT_DEDUP_WINDOW_SEC``: alerts of one key are sent once per window of this
            many seconds (windows are aligned to the Unix epoch). Default one hour.
        compaction_lag_sec: ``ARCO_ALERT_COMPACTION_LAG_SEC``: a compaction that leaves its oldest pending event
            older than this alerts. Default 15 minutes.
    """

    model_config = ConfigDict(frozen=True)

    webhook_url: HttpUrl | None = None
    slack_url: HttpUrl | None = None
    dedup_window_sec: int = Field(default=3600, ge=1)
    compaction_lag_sec: int = Field(default=900, ge=1)

    @property
    def enabled(self) -> bool:
        """Whether any sink is configured."""
        return self.webhook_url is not None or self.slack_url is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AlertSettings:
        """The settings of the ``ARCO_ALERT_*`` variables of ``env`` (empty values count as unset).

        Raises:
            ConfigError: if a value is invalid; the message names the variable and what it expects.
        """
        values = {field: env[name] for name, field in ALERT_ENV.items() if env.get(name, "").strip()}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = str(error["loc"][0]) if error["loc"] else ""
            variable = next((name for name, f in ALERT_ENV.items() if f == field), field)
            raise ConfigError(
                f"{variable}={values.get(field)!r} is invalid: {error['msg']}; expected an http(s) URL for the "
                "sinks and a whole number of seconds (at least 1) for the windows (docs/operations.md, Alerts)"
            ) from None
