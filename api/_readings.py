"""Lots' latest counts as ``lot_state`` holds them, and what of them the open-data formats publish.

The status is the one ingest gives (``ingest.lot_status``), worked out again at the time of the
request: a count that was fresh when written may be stale when read. A lot ingest last found
closed stays closed: that may be an operator's closure, which only ingest knows of (ingest
re-derives every status every ``INGEST_STALE_CHECK_S``, so a closure by opening hours outlasts
the opening time by at most that). Numbers are published only for a lot that is open and counted
recently; a closed or stale lot gets no number, never a guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection

from core.city import City, Lot, OpeningHours
from core.db import load_sql
from ingest import lot_status

__all__ = ["LotReading", "Published", "publish", "read_lot_readings"]


@dataclass(frozen=True, slots=True)
class LotReading:
    """A lot's newest count: its free spaces and when they were counted (None: never), and
    whether ingest last derived the status closed."""

    free: int | None
    updated: datetime | None
    closed: bool = False


@dataclass(frozen=True, slots=True)
class Published:
    """What the formats say of one lot now: its status and, when known, its count."""

    status: str  # open, almost_full, full, closed or unknown (as ingest.lot_status)
    free: int | None
    occupied: int | None
    updated: datetime | None  # when ``free`` was counted; None with the numbers


_NEVER = LotReading(None, None)
_COUNTED = frozenset({"open", "almost_full", "full"})


def publish(lot: Lot, reading: LotReading | None, now: datetime, tz: ZoneInfo) -> Published:
    """The status of ``lot`` at ``now`` and the numbers that may go with it."""
    reading = reading or _NEVER
    status = "closed" if reading.closed else lot_status(
        lot, OpeningHours(lot.opening_hours), reading.free, reading.updated, now, tz)
    if status not in _COUNTED or reading.free is None:
        return Published(status, None, None, None)
    # Ingest keeps counts within [0, capacity]; a capacity lowered in the config since the
    # last count must still not yield negative occupied spaces.
    free = min(max(reading.free, 0), lot.capacity)
    return Published(status, free, lot.capacity - free, reading.updated)


@cache
def _lot_readings_sql() -> str:
    return load_sql("api", "lot_readings")


async def read_lot_readings(conn: AsyncConnection[Any],
                            cities: Iterable[City]) -> Mapping[str, LotReading]:
    """The newest count of each lot of ``cities`` that has one, keyed by lot id."""
    cursor = await conn.execute(_lot_readings_sql(),
                                {"lot_ids": [lot.id for city in cities for lot in city.lots]})
    return {lot_id: LotReading(free, updated, closed) for lot_id, free, updated, closed in
            await cursor.fetchall()}
