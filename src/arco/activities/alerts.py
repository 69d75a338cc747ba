"""Sending alerts from activities: deduplicated in the catalog store, retried with backoff, never blocking.

:meth:`AlertSender.send` only queues the alert; one background thread per sender claims its dedup marker and
POSTs it to every sink. The marker, ``{scope}/_alerts/{sha256(key)[:32]}-{window}.json``, is created with
``create_if_absent``, so of all control-plane workers (and all retries of an activity) exactly one sends an alert
of one key in one window. A sink that answers 429 or 5xx, or cannot be reached, is retried with exponential
backoff; a sink that refuses the alert (another 4xx) is not. When no sink took the alert the marker is removed,
so the next occurrence tries again.
"""

from __future__ import annotations

import datetime
import json
import logging
import queue
import threading
import time
from collections.abc import Callable

import httpx

from arco.catalog.storage import ObjectStore
from arco.core.alerts import Alert, AlertSettings
from arco.core.errors import ArcoError, ObjectExistsError
from arco.core.scope import Scope

__all__ = ["AlertSender", "marker_key"]

_log = logging.getLogger(__name__)

#: Alerts waiting in one sender at most; beyond, new ones are dropped with a warning (a storm is still seen).
MAX_QUEUED = 1000


def marker_key(alert: Alert, window_sec: int) -> str:
    """The dedup marker of ``alert`` in its window."""
    window = int(alert.occurred_at.timestamp()) // window_sec * window_sec
    return f"{Scope(alert.tenant_id, alert.workspace_id).prefix}/_alerts/{alert.digest()}-{window}.json"


class AlertSender:
    """Sends alerts to the configured sinks from a background thread.

    Args:
        settings: Sinks and windows.
        open_catalog: Opens the catalog store holding the dedup markers (called by the sender's thread).
        attempts: Tries per sink before giving up.
        initial_backoff_sec: Wait before the second try; doubles each time, at most ``max_backoff_sec``.
        max_backoff_sec: Longest wait between tries.
        timeout_sec: Timeout of one HTTP request.
    """

    def __init__(
        self,
        settings: AlertSettings,
        open_catalog: Callable[[], ObjectStore],
        *,
        attempts: int = 5,
        initial_backoff_sec: float = 0.5,
        max_backoff_sec: float = 30.0,
        timeout_sec: float = 10.0,
    ) -> None:
        self.settings = settings
        self._open_catalog = open_catalog
        self._attempts = attempts
        self._initial_backoff = initial_backoff_sec
        self._max_backoff = max_backoff_sec
        self._timeout = timeout_sec
        self._queue: queue.Queue[Alert] = queue.Queue(maxsize=MAX_QUEUED)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def send(self, alert: Alert) -> None:
        """Queue ``alert`` (returns at once; does nothing when no sink is configured)."""
        if not self.settings.enabled:
            return
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            _log.warning("alert queue full (%d waiting); dropped alert %s", MAX_QUEUED, alert.key)
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="arco-alerts", daemon=True)
                self._thread.start()

    def flush(self, timeout_sec: float) -> bool:
        """Wait until every queued alert was handled, at most ``timeout_sec``; whether it was."""
        deadline = time.monotonic() + timeout_sec
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def _serve(self) -> None:
        store: ObjectStore | None = None
        while True:
            try:
                alert = self._queue.get(timeout=5.0)
            except queue.Empty:
                return  # idle: the next send starts a new thread
            try:
                if store is None:
                    store = self._open_catalog()
                self._deliver(store, alert)
            except Exception:
                _log.exception("alert %s could not be handled", alert.key)
            finally:
                self._queue.task_done()

    def _deliver(self, store: ObjectStore, alert: Alert) -> None:
        key = marker_key(alert, self.settings.dedup_window_sec)
        marker = json.dumps({"key": alert.key, "claimedAt": datetime.datetime.now(datetime.UTC).isoformat()})
        try:
            store.create_if_absent(key, marker.encode())
        except ObjectExistsError:
            _log.debug("alert %s already sent in this window", alert.key)
            return
        sinks: list[tuple[str, bytes]] = []
        if self.settings.webhook_url is not None:
            sinks.append((str(self.settings.webhook_url), alert.to_json()))
        if self.settings.slack_url is not None:
            sinks.append((str(self.settings.slack_url), json.dumps({"text": alert.text()}).encode()))
        delivered = False
        with httpx.Client(timeout=self._timeout) as http:
            for url, body in sinks:
                delivered = self._post(http, url, body, alert) or delivered
        if not delivered:
            try:
                store.delete(key)  # let the next occurrence try again
            except ArcoError:
                _log.warning("alert %s: could not remove its dedup marker %s", alert.key, key)

    def _post(self, http: httpx.Client, url: str, body: bytes, alert: Alert) -> bool:
        backoff = self._initial_backoff
        for attempt in range(1, self._attempts + 1):
            problem: str
            try:
                response = http.post(url, content=body, headers={"Content-Type": "application/json"})
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return True
                problem = f"HTTP {response.status_code}"
                if response.status_code != 429 and response.status_code < 500:
                    _log.error("alert %s: sink %s refused it (%s); not retried", alert.key, url, problem)
                    return False
            if attempt < self._attempts:
                _log.info(
                    "alert %s: sink %s failed (%s); retrying in %.1f s", alert.key, url, problem, backoff
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
            else:
                _log.error(
                    "alert %s: sink %s failed %d times (%s); giving up", alert.key, url, attempt, problem
                )
        return False
