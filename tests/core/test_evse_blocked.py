"""Parking and charging read together (rules.sql ``evse_effective``), with real rows: a bay
occupied while its point has not been charging for the city's limit makes the point BLOCKED;
an AVAILABLE point whose bay is occupied is not free; a point with no bay, or whose bay sensor
is stale or stuck, reads its own status only."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _citytoml import evse_id, write_city

from core.charging import (
    EvseReading,
    EvseState,
    EvseStatus,
    PointReading,
    effective_of_async,
    effective_states,
    store_readings,
    store_readings_async,
)
from core.city import City
from core.registry import sync_registry

AT = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
LIMIT = timedelta(minutes=15)  # the default charger_blocked_after_min


@pytest.fixture
def city_path(tmp_path: Path) -> Path:
    return write_city(tmp_path, f"t{secrets.token_hex(4)}", chargers=True)


@pytest.fixture
def registered(conn: psycopg.Connection[Any], city: City) -> City:
    sync_registry(conn, city)
    return city


def _report(conn: psycopg.Connection[Any], city: City, point: str, status: EvseStatus,
            ts: datetime) -> None:
    with conn.transaction():
        store_readings(conn, city.id, [EvseReading(point, status, ts, "mqtt")])


def _bay(conn: psycopg.Connection[Any], bay_id: str, occupied: bool, since: datetime,
         heard: datetime | None = None) -> None:
    """The bay's current state as ingest keeps it (``bay_state``)."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO bay_state (bay_id, occupied, time, since) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (bay_id) DO UPDATE SET occupied = excluded.occupied, "
            "time = excluded.time, since = excluded.since",
            (bay_id, occupied, heard or since, since))


def _read(conn: psycopg.Connection[Any], city: City, at: datetime = AT) -> PointReading:
    return effective_states(conn, city, at)[evse_id(city.id, 1, 1)]


def test_occupied_and_not_charging_for_the_limit_is_blocked(
        conn: psycopg.Connection[Any], registered: City) -> None:
    city, point = registered, evse_id(registered.id, 1, 1)
    _report(conn, city, point, EvseStatus.AVAILABLE, AT - timedelta(hours=3))
    parked = AT - timedelta(minutes=20)
    _bay(conn, f"{city.id}-st-001", True, parked, heard=AT - timedelta(minutes=1))
    reading = _read(conn, city)
    assert (reading.state.status, reading.reported, reading.occupied, reading.free) == (
        EvseStatus.BLOCKED, EvseStatus.AVAILABLE, True, False)
    assert reading.state.since == parked + LIMIT  # blocked since the limit ran out
    # Within the limit: still AVAILABLE as reported, but not free (a car stands there).
    early = _read(conn, city, parked + LIMIT - timedelta(seconds=1))
    assert (early.state.status, early.occupied, early.free) == (
        EvseStatus.AVAILABLE, True, False)
    # The point stopped charging 10 minutes ago while the car stayed: not blocked yet.
    _report(conn, city, point, EvseStatus.CHARGING, AT - timedelta(minutes=19))
    _report(conn, city, point, EvseStatus.AVAILABLE, AT - timedelta(minutes=10))
    assert _read(conn, city).state.status is EvseStatus.AVAILABLE
    later = _read(conn, city, AT + timedelta(minutes=5))
    assert (later.state.status, later.state.since) == (EvseStatus.BLOCKED, AT + timedelta(
        minutes=5))


def test_the_limit_is_the_citys(conn: psycopg.Connection[Any], registered: City) -> None:
    city = registered.model_copy(update={"city": registered.city.model_copy(
        update={"charger_blocked_after_min": 30})})
    point = evse_id(city.id, 1, 1)
    _report(conn, city, point, EvseStatus.AVAILABLE, AT - timedelta(hours=3))
    _bay(conn, f"{city.id}-st-001", True, AT - timedelta(minutes=20), heard=AT)
    assert _read(conn, city).state.status is EvseStatus.AVAILABLE
    assert _read(conn, city, AT + timedelta(minutes=10)).state.status is EvseStatus.BLOCKED


def test_occupied_and_charging_is_charging(conn: psycopg.Connection[Any],
                                           registered: City) -> None:
    city, point = registered, evse_id(registered.id, 1, 1)
    _report(conn, city, point, EvseStatus.CHARGING, AT - timedelta(hours=2))
    _bay(conn, f"{city.id}-st-001", True, AT - timedelta(hours=2, minutes=1),
         heard=AT - timedelta(minutes=2))
    reading = _read(conn, city)
    assert (reading.state.status, reading.occupied, reading.free) == (
        EvseStatus.CHARGING, True, False)
    assert reading.state.since == AT - timedelta(hours=2)


def test_available_with_a_free_bay_is_free(conn: psycopg.Connection[Any],
                                           registered: City) -> None:
    city, point = registered, evse_id(registered.id, 1, 1)
    _report(conn, city, point, EvseStatus.AVAILABLE, AT - timedelta(hours=2))
    _bay(conn, f"{city.id}-st-001", False, AT - timedelta(hours=1), heard=AT - timedelta(minutes=3))
    reading = _read(conn, city)
    assert (reading.state.status, reading.occupied, reading.free) == (
        EvseStatus.AVAILABLE, False, True)


def test_a_stale_or_stuck_sensor_leaves_the_points_own_status(
        conn: psycopg.Connection[Any], registered: City) -> None:
    city, point = registered, evse_id(registered.id, 1, 1)
    lot = city.lot(f"{city.id}-street")
    _report(conn, city, point, EvseStatus.AVAILABLE, AT - timedelta(hours=3))
    # Heard last more than four staleness limits ago: its "occupied" is not believed.
    heard = AT - timedelta(seconds=4 * lot.stale_after_s + 1)
    _bay(conn, f"{city.id}-st-001", True, heard - timedelta(hours=1), heard=heard)
    reading = _read(conn, city)
    assert (reading.state.status, reading.occupied, reading.free) == (
        EvseStatus.AVAILABLE, None, True)
    # Occupied for longer than the lot's max dwell (stuck): neither.
    stuck_since = AT - timedelta(hours=lot.max_dwell_h + 1)
    _bay(conn, f"{city.id}-st-001", True, stuck_since, heard=AT - timedelta(minutes=1))
    reading = _read(conn, city)
    assert (reading.state.status, reading.occupied, reading.free) == (
        EvseStatus.AVAILABLE, None, True)


def test_a_point_without_a_bay_reads_its_own_status(conn: psycopg.Connection[Any],
                                                    registered: City) -> None:
    city = registered
    _report(conn, city, evse_id(city.id, 1, 2), EvseStatus.AVAILABLE, AT - timedelta(hours=1))
    _report(conn, city, evse_id(city.id, 2, 1), EvseStatus.OUTOFORDER, AT - timedelta(hours=1))
    _bay(conn, f"{city.id}-st-001", True, AT - timedelta(hours=1))  # another point's bay
    points = effective_states(conn, city, AT)
    assert evse_id(city.id, 1, 1) not in points  # nothing reported: no state
    two, fast = points[evse_id(city.id, 1, 2)], points[evse_id(city.id, 2, 1)]
    assert (two.state.status, two.occupied, two.free, two.lot_id) == (
        EvseStatus.AVAILABLE, None, True, f"{city.id}-street")
    assert (fast.state.status, fast.free, fast.lot_id) == (
        EvseStatus.OUTOFORDER, False, f"{city.id}-garage")


def test_what_a_status_writer_publishes_is_the_effective_state(
        conn: psycopg.Connection[Any], registered: City, db_url: str) -> None:
    """The OCPP and OCPI services publish ``effective_of_async`` of what they stored."""
    city, point, other = registered, evse_id(registered.id, 1, 1), evse_id(registered.id, 1, 2)
    _bay(conn, f"{city.id}-st-001", True, AT - timedelta(minutes=20), heard=AT)

    async def store() -> list[EvseState]:
        aconn = await psycopg.AsyncConnection.connect(db_url)
        async with aconn, aconn.transaction():
            changed = await store_readings_async(aconn, city.id, [
                EvseReading(point, EvseStatus.AVAILABLE, AT - timedelta(hours=1), "ocpp"),
                EvseReading(other, EvseStatus.AVAILABLE, AT - timedelta(hours=1), "ocpp")])
            return await effective_of_async(aconn, city, AT, changed)

    published = {state.evse_id: state for state in asyncio.run(store())}
    assert (published[point].status, published[point].since) == (
        EvseStatus.BLOCKED, AT - timedelta(minutes=20) + LIMIT)
    assert published[other].status is EvseStatus.AVAILABLE  # no bay: as reported
