"""``parkleit simulate history``: weeks of lot occupancy, straight into the database.

``history_rows`` yields the rows without a database (the forecast benchmark uses it);
``backfill_history`` writes the same rows into ``lot_occupancy``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import psycopg

from core.city import City
from core.db import queries

from .demand import CitySimulation

__all__ = ["HistoryReport", "HistoryRow", "backfill_history", "history_rows"]

logger = logging.getLogger(__name__)

SAMPLE_EVERY_MIN = 5


class HistoryRow(NamedTuple):
    """One lot at one time, in the column order of ``lot_occupancy``'s COPY."""

    time: datetime  # UTC
    lot_id: str
    occupied: int
    free: int
    capacity: int


def history_rows(city: City, start: datetime, end: datetime, *, seed: int = 1,
                 every_min: int = SAMPLE_EVERY_MIN) -> Iterator[HistoryRow]:
    """Simulate ``city`` from ``start`` and yield every lot's occupancy at each whole
    ``every_min`` minutes (of UTC, so of local time too) before ``end``, time by time."""
    if every_min < 1:
        raise ValueError(f"every_min must be >= 1: {every_min}")
    simulation = CitySimulation(city, start, seed=seed)
    lots = [(lot.id, lot.capacity) for lot in city.lots]
    while simulation.now < end:
        minute = simulation.step()
        if (minute.time.timestamp() // 60) % every_min:
            continue
        for (lot_id, capacity), occupied in zip(lots, minute.occupied, strict=True):
            yield HistoryRow(minute.time, lot_id, occupied, capacity - occupied, capacity)


@dataclass(frozen=True, slots=True)
class HistoryReport:
    """What a backfill wrote."""

    rows: int
    inserted: int
    start: datetime
    end: datetime
    elapsed_s: float


def backfill_history(conn: psycopg.Connection[tuple[object, ...]], city: City, *,
                     end: datetime, weeks: float, seed: int = 1) -> HistoryReport:
    """Simulate ``weeks`` up to ``end`` and store every lot's occupancy each 5 minutes.

    Rows use ``source = 'history'``; a row that exists already (same lot and time) is kept,
    so running it twice changes nothing. One transaction, loaded with COPY.
    """
    began = time.monotonic()
    step = timedelta(minutes=SAMPLE_EVERY_MIN)
    end = datetime.fromtimestamp(end.timestamp() // step.total_seconds()
                                 * step.total_seconds(), end.tzinfo)
    start = end - timedelta(weeks=weeks)
    q = queries("simulators")
    rows = 0
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(q["create_history_staging"])
        with cur.copy(q["copy_history"]) as copy:
            for row in history_rows(city, start, end, seed=seed):
                copy.write_row(row)
                rows += 1
        cur.execute(q["insert_history"])
        inserted = max(cur.rowcount, 0)
    report = HistoryReport(rows, inserted, start, end, time.monotonic() - began)
    logger.info("history of %s from %s to %s: %d rows (%d new) in %.1f s", city.id,
                start.isoformat(), end.isoformat(), rows, inserted, report.elapsed_s)
    return report
