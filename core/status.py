"""A lot's status and public figures: defined once, used by every output.

The status words, how a lot's status follows from its count and the clock (``lot_status``),
and which numbers go with a status (``public_numbers``): a lot that is not counted right now
(``closed`` or ``unknown``) publishes no free or occupied spaces, never a stale number or a
guess. JSON, GeoJSON, CSV, the live stream, the retained MQTT status, ParkAPI, DATEX II, the
signs and the pages all take their figures from here, so they agree by construction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from core.city import Lot, OpeningHours

__all__ = [
    "COUNTED",
    "STATUSES",
    "LotReading",
    "LotStatus",
    "Published",
    "Status",
    "lot_status",
    "public_numbers",
    "publish",
    "rfc3339",
]

Status = Literal["open", "almost_full", "full", "closed", "unknown"]
STATUSES: tuple[Status, ...] = ("open", "almost_full", "full", "closed", "unknown")
# The statuses that come with a count.
COUNTED: frozenset[str] = frozenset({"open", "almost_full", "full"})


def rfc3339(moment: datetime) -> str:
    """An aware datetime as RFC 3339 in UTC with ``Z`` (as every output writes times)."""
    return moment.isoformat().replace("+00:00", "Z")


def lot_status(lot: Lot, hours: OpeningHours, free: int | None, updated: datetime | None,
               now: datetime, tz: ZoneInfo, *, closed: bool = False) -> Status:
    """``open``, ``almost_full``, ``full``, ``closed`` or ``unknown`` for a lot right now.

    ``closed``: an operator closure is in force (table ``lot_closures``).
    """
    if closed or not hours.is_open(now, tz):
        return "closed"
    if free is None or updated is None or now - updated > timedelta(seconds=lot.stale_after_s):
        return "unknown"
    if lot.capacity == 0:
        return "full"
    occupancy = 1 - free / lot.capacity
    if free <= 0 or occupancy >= lot.full_at:
        return "full"
    if occupancy >= lot.almost_full:
        return "almost_full"
    return "open"


def public_numbers(status: str, free: int | None,
                   capacity: int) -> tuple[int | None, int | None]:
    """The free and occupied spaces a lot in ``status`` publishes: none unless it is counted.

    Occupied is what is not offered as free: the capacity less the free spaces (a bay whose
    sensor is stuck counts neither free nor occupied when ingest counts, so it is here among
    the occupied ones). Counts are kept within [0, capacity]: a capacity lowered in the config
    since the last count must not yield negative spaces.
    """
    if status not in COUNTED or free is None:
        return None, None
    free = min(max(free, 0), max(capacity, 0))
    return free, max(capacity, 0) - free


@dataclass(frozen=True, slots=True)
class LotReading:
    """A lot's newest count: its free spaces and when they were counted (None: never), and
    whether ingest last derived the status closed (opening hours or an operator's closure)."""

    free: int | None
    updated: datetime | None
    closed: bool = False


@dataclass(frozen=True, slots=True)
class Published:
    """What the outputs say of one lot now: its status and, when counted, its numbers."""

    status: Status
    free: int | None
    occupied: int | None
    updated: datetime | None  # when ``free`` was counted; None with the numbers


_NEVER = LotReading(None, None)


def publish(lot: Lot, reading: LotReading | None, now: datetime, tz: ZoneInfo) -> Published:
    """The status of ``lot`` at ``now`` and the numbers that may go with it.

    A lot ingest last found closed stays closed (that may be an operator's closure, which only
    ingest knows of); otherwise the status is worked out again at ``now``: a count that was
    fresh when written may be stale when read.
    """
    reading = reading or _NEVER
    status: Status = "closed" if reading.closed else lot_status(
        lot, OpeningHours(lot.opening_hours), reading.free, reading.updated, now, tz)
    free, occupied = public_numbers(status, reading.free, lot.capacity)
    return Published(status, free, occupied, None if free is None else reading.updated)


@dataclass(frozen=True, slots=True)
class LotStatus:
    """A lot's state as ingest derived it: its count (free, occupied: what ingest counted),
    status, when counted and the data quality. What it publishes (``as_dict``) has the
    numbers only where the status comes with a count (``public_numbers``)."""

    lot_id: str
    free: int | None
    occupied: int | None
    capacity: int
    status: str
    updated: datetime | None
    quality: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The payload of ``parkleit/v1/{city}/lots/{lot_id}/status`` as a dict."""
        free, occupied = public_numbers(self.status, self.free, self.capacity)
        return {
            "free": free, "occupied": occupied, "capacity": self.capacity,
            "status": self.status,
            "updated": rfc3339(self.updated) if self.updated else None,
            "quality": self.quality,
        }

    def to_json(self) -> str:
        """The payload of ``parkleit/v1/{city}/lots/{lot_id}/status``."""
        return json.dumps(self.as_dict())

    def notification(self, city_id: str) -> str:
        """The payload of a ``parkleit_lot_state`` NOTIFY: the status, lot and city ids."""
        return json.dumps({"lot_id": self.lot_id, "city": city_id, **self.as_dict()})

    @classmethod
    def from_notification(cls, payload: str) -> tuple[str, LotStatus]:
        """The city id and status of a ``notification``; ValueError if it is not one."""
        try:
            state = json.loads(payload)
            updated = state["updated"]
            quality = state.get("quality")
            return str(state["city"]), cls(
                str(state["lot_id"]), _optional_int(state["free"]),
                _optional_int(state["occupied"]), int(state["capacity"]), str(state["status"]),
                None if updated is None else datetime.fromisoformat(updated),
                None if quality is None else float(quality))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a lot status notification: {exc}") from None


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
