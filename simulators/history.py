"""``parkleit simulate history``: weeks of lot occupancy, straight into the database."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from core.city import City
from core.db import queries

from .demand import CitySimulation

__all__ = ["HistoryReport", "backfill_history"]

logger = logging.getLogger(__name__)

SAMPLE_EVERY_MIN = 5


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
    simulation = CitySimulation(city, start, seed=seed)
    lots = [(lot.id, lot.capacity) for lot in city.lots]
    q = queries("simulators")
    rows = 0
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(q["create_history_staging"])
        with cur.copy(q["copy_history"]) as copy:
            while simulation.now < end:
                minute = simulation.step()
                if (minute.time.timestamp() // 60) % SAMPLE_EVERY_MIN:
                    continue
                for (lot_id, capacity), occupied in zip(lots, minute.occupied, strict=True):
                    copy.write_row((minute.time, lot_id, occupied, capacity - occupied,
                                    capacity))
                    rows += 1
        cur.execute(q["insert_history"])
        inserted = max(cur.rowcount, 0)
    report = HistoryReport(rows, inserted, start, end, time.monotonic() - began)
    logger.info("history of %s from %s to %s: %d rows (%d new) in %.1f s", city.id,
                start.isoformat(), end.isoformat(), rows, inserted, report.elapsed_s)
    return report
