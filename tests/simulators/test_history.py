"""``simulate history``: plausible weeks of occupancy in the database, reproducibly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from core.city import load_city
from core.registry import sync_registry
from simulators.history import backfill_history, history_rows

END = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday, 01:00 in Zeitz


def test_backfill_is_complete_bounded_and_idempotent(conn: psycopg.Connection[Any]) -> None:
    city = load_city("zeitz")
    sync_registry(conn, city)
    first = backfill_history(conn, city, end=END, weeks=1, seed=7)
    per_lot = 7 * 24 * 12
    assert first.rows == first.inserted == per_lot * len(city.lots)
    assert conn.execute(
        "SELECT count(*) FROM lot_occupancy WHERE occupied < 0 OR occupied > capacity "
        "OR free <> capacity - occupied OR source <> 'history'").fetchone() == (0,)
    snapshot = conn.execute("SELECT * FROM lot_occupancy ORDER BY lot_id, time").fetchall()
    again = backfill_history(conn, city, end=END, weeks=1, seed=7)
    assert again.inserted == 0
    assert conn.execute("SELECT * FROM lot_occupancy ORDER BY lot_id, time").fetchall() == (
        snapshot)
    busiest = conn.execute(
        "SELECT lot_id, max(occupied::real / capacity) FROM lot_occupancy GROUP BY 1").fetchall()
    assert all(0.1 < peak <= 1.0 for _, peak in busiest), busiest


def test_same_seed_same_history_other_seed_other(conn: psycopg.Connection[Any]) -> None:
    city = load_city("zeitz")
    sync_registry(conn, city)
    backfill_history(conn, city, end=END, weeks=0.5, seed=1)
    one = conn.execute("SELECT lot_id, time, occupied FROM lot_occupancy ORDER BY 1, 2").fetchall()
    conn.execute("DELETE FROM lot_occupancy")
    backfill_history(conn, city, end=END, weeks=0.5, seed=1)
    assert conn.execute(
        "SELECT lot_id, time, occupied FROM lot_occupancy ORDER BY 1, 2").fetchall() == one
    conn.execute("DELETE FROM lot_occupancy")
    backfill_history(conn, city, end=END, weeks=0.5, seed=2)
    assert conn.execute(
        "SELECT lot_id, time, occupied FROM lot_occupancy ORDER BY 1, 2").fetchall() != one


def test_history_rows_are_the_rows_backfill_writes(conn: psycopg.Connection[Any]) -> None:
    city = load_city("zeitz")
    sync_registry(conn, city)
    report = backfill_history(conn, city, end=END, weeks=0.1, seed=3)
    stored = conn.execute("SELECT time, lot_id, occupied, free, capacity FROM lot_occupancy "
                          "ORDER BY time, lot_id").fetchall()
    rows = sorted(history_rows(city, END - timedelta(weeks=0.1), END, seed=3))
    assert len(rows) == report.rows > 0
    assert [tuple(row) for row in rows] == stored
    quarter = list(history_rows(city, END - timedelta(hours=2), END, seed=3, every_min=15))
    assert {row.time.minute for row in quarter} == {0, 15, 30, 45}
    assert len(quarter) == 8 * len(city.lots)
