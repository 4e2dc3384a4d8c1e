"""Charging points' status over MQTT through ``parkleit ingest``, a real process on the real
broker and database: stored (history and current state), bad messages as dead letters with a
reason, and the retained state topic published after commit."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _citytoml import evse_id, write_city
from _helpers import ServiceProcess, Watcher, start_ingest, utc_now, wait_for

from core.channels import charger_state_topic, charger_status_topic
from core.charging import EvseReading, EvseStatus, store_readings
from core.city import City
from core.settings import Settings
from core.status import rfc3339
from simulators._mqtt import mqtt_client


@pytest.fixture
def city_path(tmp_path: Path) -> Path:
    """The test city with its charging stations (overrides conftest's)."""
    return write_city(tmp_path, f"t{secrets.token_hex(4)}", chargers=True)


def rows(db_url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(query).fetchall()


def test_charger_status_is_stored_and_its_state_published(
        spawn: Callable[..., ServiceProcess], watch: Callable[..., Watcher],
        settings: Settings, city: City, db_url: str) -> None:
    start_ingest(spawn, settings)
    cid = city.id
    watcher = watch(f"parkleit/v1/{cid}/chargers/+/state")
    one, two = evse_id(cid, 1, 1), evse_id(cid, 2, 1)
    earlier, now = utc_now() - timedelta(seconds=20), utc_now()
    good = [
        (one, {"status": "CHARGING", "ts": rfc3339(now)}),
        (one, {"status": "AVAILABLE", "ts": rfc3339(earlier)}),  # older, arrives later
        (two, {"status": "OUTOFORDER", "ts": rfc3339(now)}),
    ]
    bad = [
        ("DE*TST*E404*1", json.dumps({"status": "AVAILABLE", "ts": rfc3339(now)}).encode(),
         "unknown EVSE 'DE*TST*E404*1'"),
        (one, json.dumps({"status": "FREE", "ts": rfc3339(now)}).encode(),
         "field 'status' is not an OCPI EVSE status: 'FREE'"),
        (two, b"{not json", "not JSON"),
    ]
    client = mqtt_client(settings, f"pub-{cid}")
    try:
        for evse, body in good:
            client.publish(charger_status_topic(cid, evse), json.dumps(body), qos=1)
        # A redelivered message (same point, same time) adds nothing.
        client.publish(charger_status_topic(cid, two), json.dumps(good[2][1]), qos=1)
        for evse, payload, _ in bad:
            client.publish(charger_status_topic(cid, evse), payload, qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()

    wait_for(lambda: len(rows(db_url, "SELECT 1 FROM dead_letters")) == 3)
    wait_for(lambda: len(rows(db_url, "SELECT 1 FROM evse_status")) == 3)
    assert sorted(rows(db_url, "SELECT evse_id, status, source FROM evse_status")) == sorted([
        (one, "CHARGING", "mqtt"), (one, "AVAILABLE", "mqtt"), (two, "OUTOFORDER", "mqtt")])
    assert rows(db_url, "SELECT evse_id, status, updated FROM evse_state ORDER BY evse_id") == [
        (one, "CHARGING", now), (two, "OUTOFORDER", now)]
    reasons = {row[0]: row[1] for row in rows(db_url, "SELECT topic, reason FROM dead_letters")}
    assert reasons.keys() == {charger_status_topic(cid, evse) for evse, _, _ in bad}
    for evse, _, reason in bad:
        assert reasons[charger_status_topic(cid, evse)].startswith(reason)

    # The newest state of each point, retained: a late subscriber gets it too.
    for evse, status in ((one, "CHARGING"), (two, "OUTOFORDER")):
        topic = charger_state_topic(cid, evse)
        state = wait_for(lambda: watcher.last(topic))  # noqa: B023 (called at once)
        assert state["status"] == status and state["updated"] == rfc3339(now)
        assert state["source"] == "mqtt" and state["evse_id"] == evse
    late = watch(charger_state_topic(cid, one))
    assert wait_for(lambda: late.last(charger_state_topic(cid, one)))["status"] == "CHARGING"
    assert charger_state_topic(cid, one) in late.retained


def test_a_state_another_writer_stored_is_published_at_the_next_stale_check(
        spawn: Callable[..., ServiceProcess], watch: Callable[..., Watcher], settings: Settings,
        city: City, db_url: str) -> None:
    """An OCPI push (stored by the API, which has no MQTT client) or an OCPP status reaches
    the retained state topic by ingest's stale check, as a lot closure does."""
    watcher = watch(f"parkleit/v1/{city.id}/chargers/+/state")
    start_ingest(spawn, settings, PARKLEIT_INGEST_STALE_CHECK_S="0.5")
    point = evse_id(city.id, 2, 1)
    now = utc_now()
    with psycopg.connect(db_url) as conn, conn.transaction():
        store_readings(conn, city.id, [EvseReading(point, EvseStatus.CHARGING, now, "ocpi")])
    state = wait_for(lambda: watcher.last(charger_state_topic(city.id, point)), timeout=10)
    assert (state["status"], state["source"], state["updated"]) == (
        "CHARGING", "ocpi", rfc3339(now))
