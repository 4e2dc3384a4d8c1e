"""Time ranges and buckets of occupancy history, shared by the history route and the export:
their ``from`` and ``to`` parameters, the range's checks and alignment, its parts and queries."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import Query
from psycopg import sql

from api._http import bad_parameter
from api._input import Moment
from core.db import queries

__all__ = ["BUCKET", "MAX_RANGE", "PARALLEL_ABOVE", "Resolution", "To", "from_query",
           "history_parts", "history_range", "newest_data", "points_query", "query_name"]

Resolution = Literal["raw", "15m", "1h", "1d"]
BUCKET = {"raw": timedelta(0), "15m": timedelta(minutes=15), "1h": timedelta(hours=1),
          "1d": timedelta(days=1)}
# Answers stay bounded (15m: ~38,400 buckets, 1h: ~9600, 1d: ~3650 per lot); a year at 15m
# is one request (benchmarks/api.py times it).
MAX_RANGE = {"raw": timedelta(days=400), "15m": timedelta(days=400),
             "1h": timedelta(days=400), "1d": timedelta(days=3660)}
# A longer range is read as two halves at once, each on a connection of its own: PostgreSQL
# runs a query on one core, and without TimescaleDB a year at 15m is 105,000 readings to
# aggregate and 35,000 buckets to write as JSON, which takes one core about 60 ms.
PARALLEL_ABOVE = timedelta(days=62)
_MOMENT = "RFC 3339 with offset, 1970 to 2199"
To = Annotated[Moment | None, Query(description=f"{_MOMENT}; default now.")]


def from_query(default: str) -> Any:
    """The ``from`` parameter (``Annotated[Moment | None, from_query("7 days")]``) of a range
    that begins ``default`` before ``to`` unless it is given."""
    return Query(alias="from", description=f"{_MOMENT}; default `to` - {default}.")


def query_name(resolution: Resolution) -> str:
    """The named query in ``api/queries.sql`` for ``resolution``."""
    return f"occupancy_{resolution}"


@functools.cache
def points_query(resolution: Literal["15m", "1h", "1d"]) -> sql.Composed:
    """The newest bucket of ``query_name(resolution)`` and its buckets as the JSON text of the
    history route's points (``api/history.sql``)."""
    buckets = queries("api")[query_name(resolution)].rstrip().rstrip(";")
    history = queries("api", "history")
    return sql.SQL(history["history_of"]).format(buckets=sql.SQL(buckets),
                                                 points=sql.SQL(history["history_points"]))


def history_range(start: datetime | None, end: datetime | None, resolution: Resolution, *,
                  now: datetime, default: timedelta, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """``[from, to)`` in UTC, ``from`` aligned down to its bucket; a 422 problem naming the
    parameter for an empty range or one longer than ``MAX_RANGE`` (the times are in
    ``api._input.Moment``'s range already)."""
    end = (end or now).astimezone(UTC)
    start = (start or end - default).astimezone(UTC)
    if start >= end:
        bad_parameter("from", "must be before to")
    if end - start > MAX_RANGE[resolution]:
        bad_parameter("from", f"range longer than {MAX_RANGE[resolution].days} days for "
                      f"resolution {resolution}")
    return _align(start, resolution, tz), end


def history_parts(start: datetime, end: datetime, resolution: Resolution,
                  tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` as the ranges to read at once: two halves cut at a bucket boundary
    (for 1d a local midnight) when it is longer than ``PARALLEL_ABOVE``, else itself."""
    middle = _align(start + (end - start) / 2, resolution, tz)
    if end - start <= PARALLEL_ABOVE or not start < middle < end:
        return [(start, end)]
    return [(start, middle), (middle, end)]


def _align(moment: datetime, resolution: Resolution, tz: ZoneInfo) -> datetime:
    if resolution == "raw":
        return moment
    if resolution == "1d":
        return datetime.combine(moment.astimezone(tz).date(), time(0), tz).astimezone(UTC)
    seconds = BUCKET[resolution].total_seconds()
    return datetime.fromtimestamp(moment.timestamp() // seconds * seconds, UTC)


def newest_data(last_bucket: datetime | None, resolution: Resolution,
                now: datetime) -> datetime | None:
    """The latest time a reading in the answer can have been taken (its Last-Modified)."""
    if last_bucket is None:
        return None
    return min(now, last_bucket + BUCKET[resolution])
