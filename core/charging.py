"""Charging points' live status: the statuses, a reading, a point's state, and how readings
are stored (whoever hears them: ingest over MQTT, the OCPP central system, the OCPI pull).

``store_readings`` writes inside the caller's transaction and NOTIFYs ``core.channels.EVSE_STATE``
for each point whose status changed; the caller publishes the returned states on their
retained topics (``core.channels.charger_state_topic``) after the commit.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

import psycopg

from core import channels
from core.city import City
from core.db import queries
from core.status import rfc3339

__all__ = [
    "SOURCES",
    "EvseReading",
    "EvseState",
    "EvseStatus",
    "PointReading",
    "Source",
    "effective_of_async",
    "effective_states",
    "effective_states_async",
    "store_readings",
    "store_readings_async",
]


class EvseStatus(StrEnum):
    """The OCPI 2.2.1 EVSE statuses (mod_locations, Status enum)."""

    AVAILABLE = "AVAILABLE"
    BLOCKED = "BLOCKED"
    CHARGING = "CHARGING"
    INOPERATIVE = "INOPERATIVE"
    OUTOFORDER = "OUTOFORDER"
    PLANNED = "PLANNED"
    REMOVED = "REMOVED"
    RESERVED = "RESERVED"
    UNKNOWN = "UNKNOWN"


Source = Literal["mqtt", "ocpp", "ocpi", "console"]
SOURCES: tuple[Source, ...] = ("mqtt", "ocpp", "ocpi", "console")


@dataclass(frozen=True, slots=True)
class EvseReading:
    """One status a charging point reported at ``ts`` (timezone-aware), heard from ``source``."""

    evse_id: str
    status: EvseStatus
    ts: datetime
    source: str

    def __post_init__(self) -> None:
        if self.ts.tzinfo is None or self.ts.utcoffset() is None:
            raise ValueError("an EVSE reading needs a timezone-aware time")
        if self.source not in SOURCES:
            raise ValueError(f"unknown source {self.source!r} (one of {', '.join(SOURCES)})")
        # A plain string of a known status is taken as that status (the caller decoded it).
        object.__setattr__(self, "status", EvseStatus(self.status))


@dataclass(frozen=True, slots=True)
class EvseState:
    """A charging point's current state: its status, since when it holds it, its newest
    reading's time and where that came from."""

    evse_id: str
    status: EvseStatus
    since: datetime
    updated: datetime
    source: str

    def as_dict(self) -> dict[str, Any]:
        """The payload of ``parkleit/v1/{city}/chargers/{evse_id}/state`` as a dict."""
        return {"evse_id": self.evse_id, "status": self.status.value,
                "since": rfc3339(self.since.astimezone(UTC)),
                "updated": rfc3339(self.updated.astimezone(UTC)),
                "source": self.source}

    def to_json(self) -> str:
        """The retained payload of ``parkleit/v1/{city}/chargers/{evse_id}/state``."""
        return json.dumps(self.as_dict())

    def notification(self, city_id: str) -> str:
        """The payload of a ``parkleit_evse_state`` NOTIFY: the state and the city id."""
        return json.dumps({"city": city_id, **self.as_dict()})

    @classmethod
    def from_notification(cls, payload: str) -> tuple[str, EvseState]:
        """The city id and state of a ``notification``; ValueError if it is not one."""
        try:
            state = json.loads(payload)
            return str(state["city"]), cls(
                str(state["evse_id"]), EvseStatus(state["status"]),
                datetime.fromisoformat(state["since"]), datetime.fromisoformat(state["updated"]),
                str(state["source"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an EVSE state notification: {exc}") from None


def _ordered(readings: Iterable[EvseReading]) -> list[dict[str, Any]]:
    """The readings as query parameters, by point and each point's oldest first: a batch that
    holds a point's readings out of order still leaves the newest as its state, and writers
    side by side lock the points' states in one order (no deadlock)."""
    return [
        {"evse_id": r.evse_id, "status": r.status.value, "ts": r.ts, "source": r.source}
        for r in sorted(readings, key=lambda reading: (reading.evse_id, reading.ts))
    ]


def _changes(rows: Iterable[tuple[Any, ...]]) -> dict[str, EvseState]:
    """The states whose status changed (or that are new), the last per point."""
    changed: dict[str, EvseState] = {}
    for evse_id, status, since, updated, source, previous in rows:
        # A point that changed earlier in the batch keeps its newest state, even one that
        # changed back.
        if previous != status or evse_id in changed:
            changed[evse_id] = EvseState(evse_id, EvseStatus(status), since, updated, source)
    return changed


def store_readings(conn: psycopg.Connection[Any], city_id: str,
                   readings: Iterable[EvseReading]) -> list[EvseState]:
    """Store charging points' readings in the caller's transaction; the states that changed.

    Every reading goes into ``evse_status`` (a redelivered one adds nothing); a point's
    ``evse_state`` takes a reading newer than it has; each point whose status changed is
    NOTIFYd on ``core.channels.EVSE_STATE``. The points must be in the registry
    (``charging_points``): an unknown EVSE id is the caller's to refuse first.
    """
    q = queries("core")
    rows: list[tuple[Any, ...]] = []
    with conn.cursor() as cur:
        for params in _ordered(readings):
            row = cur.execute(q["store_evse_reading"], params).fetchone()
            if row is not None:
                rows.append(row)
        changed = list(_changes(rows).values())
        if changed:
            cur.execute(q["notify_evse_state"], {
                "channel": channels.EVSE_STATE,
                "payloads": [state.notification(city_id) for state in changed]})
    return changed


async def store_readings_async(aconn: psycopg.AsyncConnection[Any], city_id: str,
                               readings: Iterable[EvseReading]) -> list[EvseState]:
    """``store_readings`` over an async connection (the same queries)."""
    q = queries("core")
    rows: list[tuple[Any, ...]] = []
    async with aconn.cursor() as cur:
        for params in _ordered(readings):
            await cur.execute(q["store_evse_reading"], params)
            row = await cur.fetchone()
            if row is not None:
                rows.append(row)
        changed = list(_changes(rows).values())
        if changed:
            await cur.execute(q["notify_evse_state"], {
                "channel": channels.EVSE_STATE,
                "payloads": [state.notification(city_id) for state in changed]})
    return changed


@dataclass(frozen=True, slots=True)
class PointReading:
    """A charging point read together with its bays at a moment (rules.sql ``evse_effective``):
    ``state`` carries the effective status (BLOCKED when a car has stood on its bay without
    charging long enough), ``reported`` what the point itself said, ``occupied`` whether a bay
    it serves is occupied (None: no bay, or no fresh sensor), ``free`` whether a driver can
    charge there now (AVAILABLE and its bays empty)."""

    state: EvseState
    lot_id: str
    reported: EvseStatus
    occupied: bool | None
    free: bool


def _effective_params(city: City, at: datetime,
                      only: Collection[str] | None = None) -> dict[str, Any]:
    return {"at": at, "blocked_after_s": city.city.charger_blocked_after_min * 60,
            "evse_ids": [evse.evse_id for _, evse in city.evses()
                         if only is None or evse.evse_id in only]}


def _point(row: Sequence[Any]) -> PointReading:
    evse_id, lot_id, status, reported, since, updated, source, occupied, free = row
    return PointReading(EvseState(evse_id, EvseStatus(status), since, updated, source), lot_id,
                        EvseStatus(reported), occupied, free)


def effective_states(conn: psycopg.Connection[Any], city: City,
                     at: datetime) -> dict[str, PointReading]:
    """Every charging point of ``city`` that has reported, read with its bays at ``at``."""
    if not city.chargers:
        return {}
    with conn.cursor() as cur:
        cur.execute(queries("core")["evse_effective"], _effective_params(city, at))
        return {point.state.evse_id: point for point in map(_point, cur.fetchall())}


async def effective_states_async(aconn: psycopg.AsyncConnection[Any], cities: Iterable[City],
                                 at: datetime, *,
                                 only: Collection[str] | None = None) -> dict[str, PointReading]:
    """``effective_states`` of every city of ``cities`` over an async connection (one query
    per city); ``only``: of these points alone."""
    points: dict[str, PointReading] = {}
    async with aconn.cursor() as cur:
        for city in cities:
            if city.chargers:
                await cur.execute(queries("core")["evse_effective"],
                                  _effective_params(city, at, only))
                points.update((p.state.evse_id, p) for p in map(_point, await cur.fetchall()))
    return points


async def effective_of_async(aconn: psycopg.AsyncConnection[Any], city: City, at: datetime,
                             states: Sequence[EvseState]) -> list[EvseState]:
    """``states`` just stored (``store_readings_async``'s answer) as every output shows them:
    each point read with its bays at ``at`` (BLOCKED when a car stands there without
    charging), for the caller to publish on the retained topic."""
    if not states:
        return []
    points = await effective_states_async(aconn, [city], at,
                                          only={state.evse_id for state in states})
    return [points[state.evse_id].state if state.evse_id in points else state
            for state in states]
