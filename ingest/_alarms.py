"""The alarms' evaluator: ingest raises an alarm when a cause appears and clears it when the
cause is gone, at every stale check (``INGEST_STALE_CHECK_S``).

One named query (``alarm_conditions`` in ``ingest/alarms.sql``) finds every cause from what the
parts record: sensor status (silent, stuck, battery low, a counter's jump), the gateways heard
through the sensors, the lots' state, the signs' state (signage's acks and errors), the
published forecast error, and the services whose retained status topic says ``offline``
(ingest follows those topics; the caller passes their names). Then, in the same transaction,
the causes without an open alarm are raised and the open alarms without a cause cleared; an
alarm that stays open keeps its row and its acknowledgement (acknowledged is not cleared).
Of a city's ingest workers only the leader evaluates (``IngestService``, through
``core.leader.Leadership``); evaluations that still meet (a handover, a manual run) take turns
under an advisory lock per city, and an open alarm is unique per cause, so each change happens
once and is told once, after its commit, by the one that made it: to the log, the counters and,
if configured, the webhook (``ALARM_WEBHOOK_URL``).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from core.db import queries
from core.status import rfc3339

__all__ = ["AlarmChange", "AlarmWebhook", "Thresholds", "evaluate_alarms"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Where a cause begins, besides the lots' own limits (stale_after_s, max_dwell_s, ...)."""

    gateway_silent_s: int = 3600  # nothing through a gateway for this long (4 × 900 s)
    sign_ack_s: int = 300  # a sign that confirmed nothing for this long (5 keep-alives)
    sign_failures: int = 3  # a sign that never confirmed anything after this many pushes
    forecast_horizon_min: int = 60
    forecast_error_rate: float = 0.15  # published MAE above this share of the capacity


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """An alarm raised or cleared by one evaluation."""

    event: Literal["raised", "cleared"]
    id: int
    city: str
    kind: str
    severity: str
    target: str
    since: datetime
    cleared_at: datetime | None
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The change as the webhook sends it."""
        return {"event": self.event, "id": self.id, "city": self.city, "kind": self.kind,
                "severity": self.severity, "target": self.target,
                "since": rfc3339(self.since),
                "cleared_at": None if self.cleared_at is None else rfc3339(self.cleared_at),
                "detail": self.detail}


def evaluate_alarms(conn: psycopg.Connection[Any], city: str, now: datetime,
                    thresholds: Thresholds = Thresholds(),
                    offline_services: Collection[str] = ()) -> list[AlarmChange]:
    """Raise the city's new alarms and clear the ones whose cause is gone, at ``now``, in one
    transaction; what changed (raised first). ``offline_services``: the names of the city's
    services whose status topic says offline."""
    q = queries("ingest", "alarms")
    params = {"city": city, "now": now, "gateway_silent_s": thresholds.gateway_silent_s,
              "sign_ack_s": thresholds.sign_ack_s, "sign_failures": thresholds.sign_failures,
              "forecast_horizon_min": thresholds.forecast_horizon_min,
              "forecast_error_rate": thresholds.forecast_error_rate,
              "offline_services": sorted(offline_services)}
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute(q["lock_city_alarms"], {"city": city})
        causes = cur.execute(q["alarm_conditions"], params).fetchall()
        found = {"city": city, "now": now,
                 "kind": [cause["kind"] for cause in causes],
                 "severity": [cause["severity"] for cause in causes],
                 "target": [cause["target"] for cause in causes],
                 "since": [cause["since"] for cause in causes],
                 "detail": [Jsonb(cause["detail"]) for cause in causes]}
        raised = cur.execute(q["raise_alarms"], found).fetchall()
        cleared = cur.execute(q["clear_alarms"], found).fetchall()
    changes = ([AlarmChange("raised", **row) for row in raised]
               + [AlarmChange("cleared", **row) for row in cleared])
    for change in changes:
        logger.info("alarm %s: %s %s (%s, #%d)", change.event, change.kind, change.target,
                    change.severity, change.id)
    return changes


class AlarmWebhook:
    """POSTs each evaluation's changes as one JSON document to a configured URL:
    ``{"city", "changes": [AlarmChange.to_json(), ...]}``. A failure is logged (with the URL's
    host only: a URL may carry a token) and not repeated; the alarms are in the table."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.host = urlsplit(url).hostname or "?"
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)

    def send(self, city: str, changes: list[AlarmChange]) -> bool:
        """Whether the receiver took the changes (a 2xx answer)."""
        try:
            answer = self._client.post(self.url, json={
                "city": city, "changes": [change.to_json() for change in changes]})
        except httpx.HTTPError as exc:
            logger.warning("alarm webhook at %s failed: %s", self.host, type(exc).__name__)
            return False
        if not answer.is_success:
            logger.warning("alarm webhook at %s answered %d", self.host, answer.status_code)
            return False
        return True

    def close(self) -> None:
        self._client.close()
