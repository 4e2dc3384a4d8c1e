"""The live stream carries charging points' state as ``evse`` events: their current state
first, then each change from the ``parkleit_evse_state`` NOTIFY, each point read with its bays
(rules.sql evse_effective: BLOCKED, ``free``), against a real uvicorn server and PostgreSQL."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _citytoml import evse_id, write_city
from _helpers import utc_now, wait_for
from _payloads import dumps, native_bay
from test_api_stream_admin import FAST, Stream, serve

from api import create_app
from core.charging import EvseReading, EvseStatus, store_readings
from core.city import City
from core.registry import sync_registry
from core.settings import Settings
from core.status import rfc3339
from ingest import Message, Writer, prepare_connection


@pytest.fixture
def city_path(tmp_path: Path) -> Path:
    """The test city with its charging stations (overrides conftest's)."""
    return write_city(tmp_path, f"t{secrets.token_hex(4)}", chargers=True)


@pytest.fixture
def url(settings: Settings, city: City, conn: psycopg.Connection[Any]) -> Iterator[str]:
    sync_registry(conn, city)
    app = create_app(settings.model_copy(update=FAST))
    with serve(app) as base:
        wait_for(lambda: app.state.hub.connected, timeout=10)
        yield base


def _evses(stream: Stream, count: int) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    while len(found) < count:
        event = stream.next()
        if event["event"] == "evse":
            data = json.loads(event["data"])
            found[data["evse_id"]] = data
    return found


def test_evse_state_first_then_each_change(url: str, city: City,
                                           conn: psycopg.Connection[Any]) -> None:
    one, fast = evse_id(city.id, 1, 1), evse_id(city.id, 2, 1)
    first = utc_now().replace(microsecond=0) - timedelta(seconds=30)
    with conn.transaction():
        store_readings(conn, city.id, [EvseReading(one, EvseStatus.AVAILABLE, first, "mqtt")])
    streams: list[Stream] = []
    try:
        stream = Stream(f"{url}/v1/stream")
        streams.append(stream)
        # The current state: the point that reported (the hub read it, or heard it).
        assert _evses(stream, 1)[one] == {
            "evse_id": one, "status": "AVAILABLE", "since": rfc3339(first),
            "updated": rfc3339(first), "source": "mqtt", "free": True}
        later = first + timedelta(seconds=20)
        with conn.transaction():
            store_readings(conn, city.id, [
                EvseReading(one, EvseStatus.CHARGING, later, "mqtt"),
                EvseReading(fast, EvseStatus.OUTOFORDER, later, "ocpi")])
        changes = _evses(stream, 2)
        assert changes[one]["status"] == "CHARGING" and changes[one]["since"] == rfc3339(later)
        assert changes[fast]["status"] == "OUTOFORDER" and changes[fast]["source"] == "ocpi"

        # Asking for some lots asks for no charging points.
        lots_only = Stream(f"{url}/v1/stream?lots={city.id}-garage")
        streams.append(lots_only)
        assert lots_only.next()["event"] == "lot"
        assert lots_only.next(timeout=1.0, comments=True) == {"comment": "keep-alive"}
    finally:
        for stream in streams:
            stream.close()


def test_a_car_on_the_bay_blocks_the_point_on_the_stream(url: str, city: City,
                                                         conn: psycopg.Connection[Any]) -> None:
    """Only a bay changes (ingest hears it; the point reported nothing new): the stream sends
    the point as every output reads it, BLOCKED once a car has stood there longer than the
    city's limit, and not free while one stands there."""
    cid, now = city.id, utc_now().replace(microsecond=0)
    one = evse_id(cid, 1, 1)  # serves bay st-001
    with conn.transaction():
        store_readings(conn, cid, [EvseReading(one, EvseStatus.AVAILABLE,
                                               now - timedelta(hours=1), "mqtt")])
    stream = Stream(f"{url}/v1/stream")
    try:
        first = _evses(stream, 1)[one]
        assert (first["status"], first["free"]) == ("AVAILABLE", True)
        prepare_connection(conn)
        writer = Writer(city)

        def bay(at: datetime, occupied: bool) -> dict[str, Any]:
            message = Message(f"parkleit/v1/{cid}/bays/{cid}-st-001",
                              dumps(native_bay(at, occupied=occupied)), utc_now())
            assert writer.write(conn, [message], utc_now()).dead_letters == 0
            return _evses(stream, 1)[one]

        limit = city.city.charger_blocked_after_min
        parked = now - timedelta(minutes=limit + 5)
        point = bay(parked, True)
        assert (point["status"], point["free"], point["since"]) == (
            "BLOCKED", False, rfc3339(parked + timedelta(minutes=limit)))
        point = bay(now - timedelta(minutes=2), False)  # the car left
        assert (point["status"], point["free"]) == ("AVAILABLE", True)
        point = bay(now - timedelta(minutes=1), True)  # another came: the status stays
        assert (point["status"], point["free"]) == ("AVAILABLE", False)
    finally:
        stream.close()
