"""The OCPI pull against the simulated OCPI server over real HTTP, with the real PostgreSQL and
Mosquitto; the pull's clock is the ``now`` each round is given."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from _helpers import Watcher, synchronous, waited
from _ocpipeer import peer_points, write_peer_city

from core.channels import charger_state_topic
from core.charging import EvseStatus
from core.city import City, load_city
from core.ocpi import authorization
from core.registry import sync_registry
from core.settings import Settings
from ingest import evaluate_alarms
from ocpi import OcpiService, PeerPull
from simulators.ocpi import OcpiSimulator, ServerThread

T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
TOKEN = "a-token-of-the-peer-" + "x" * 12


@pytest.fixture
def peer_server(tmp_path: Path) -> Any:
    """The simulated peer serving the test city's OCPI stations, one Location a page."""
    city_id = f"t{secrets.token_hex(4)}"
    draft = load_city(str(write_peer_city(tmp_path, city_id, "http://127.0.0.1:1/x")))
    simulator = OcpiSimulator(draft, draft.ocpi_peers[0], TOKEN, start=T0 - timedelta(hours=1),
                              max_limit=1)
    with ServerThread(simulator) as server:
        yield city_id, server


def _city(tmp_path: Path, city_id: str, url: str) -> City:
    return load_city(str(write_peer_city(tmp_path, city_id, url)))


async def _service(db_url: str, mqtt_url: str, city: City) -> OcpiService:
    settings = Settings(DATABASE_URL=db_url, MQTT_URL=mqtt_url)
    service = OcpiService(settings, city)
    await service.open()
    return service


@pytest.fixture
def watcher(mqtt_url: str) -> Any:
    watcher = Watcher(Settings(MQTT_URL=mqtt_url), "parkleit/v1/+/chargers/#")
    yield watcher
    watcher.close()


def _states(conn: psycopg.Connection[Any]) -> dict[str, tuple[str, datetime, str]]:
    rows = conn.execute("SELECT evse_id, status, updated, source FROM evse_state").fetchall()
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


@synchronous
async def test_pull_pages_into_the_tables_and_the_retained_states(
        peer_server: Any, tmp_path: Path, db_url: str, mqtt_url: str,
        conn: psycopg.Connection[Any], watcher: Watcher) -> None:
    city_id, server = peer_server
    city = _city(tmp_path, city_id, server.url)
    sync_registry(conn, city)
    first, second = peer_points(city_id)
    server.simulator.set_status(first, EvseStatus.CHARGING, T0 - timedelta(minutes=5))
    service = await _service(db_url, mqtt_url, city)
    try:
        pull = PeerPull(service, city.ocpi_peers[0], TOKEN, T0)
        requests = server.simulator.requests
        assert await pull.poll(T0) == 1.0  # the pull interval: it worked
        assert server.simulator.requests - requests == 2  # two pages, one Location each
        states = _states(conn)
        assert states == {
            first: ("CHARGING", T0 - timedelta(minutes=5), "ocpi"),
            second: ("AVAILABLE", T0 - timedelta(hours=1), "ocpi")}
        history = conn.execute("SELECT count(*) FROM evse_status WHERE source = 'ocpi'"
                               ).fetchone()
        assert history == (2,)
        topic = charger_state_topic(city_id, first)
        await waited(lambda: watcher.last(topic) is not None, 10)
        assert watcher.last(topic)["status"] == "CHARGING"
        # The same answer again adds nothing; a change is one row more.
        await pull.poll(T0 + timedelta(seconds=1))
        server.simulator.set_status(first, EvseStatus.AVAILABLE, T0 + timedelta(seconds=2))
        await pull.poll(T0 + timedelta(seconds=3))
        assert conn.execute("SELECT count(*) FROM evse_status").fetchone() == (3,)
        await waited(lambda: watcher.last(topic)["status"] == "AVAILABLE", 10)
    finally:
        await service.close()


def test_the_server_refuses_a_wrong_token(peer_server: Any) -> None:
    _, server = peer_server
    for header in (None, authorization("wrong"), "Basic " + TOKEN):
        answer = httpx.get(server.url, headers={"Authorization": header} if header else {})
        assert answer.status_code == 401
        assert answer.json()["status_code"] == 2000
    answer = httpx.get(server.url, headers={"Authorization": authorization(TOKEN)})
    assert answer.status_code == 200 and answer.json()["status_code"] == 1000
    assert 'rel="next"' in answer.headers["link"] and answer.headers["x-total-count"] == "2"


@synchronous
async def test_a_wrong_token_pulls_nothing(peer_server: Any, tmp_path: Path, db_url: str,
                                           mqtt_url: str, conn: psycopg.Connection[Any]) -> None:
    city_id, server = peer_server
    city = _city(tmp_path, city_id, server.url)
    sync_registry(conn, city)
    service = await _service(db_url, mqtt_url, city)
    try:
        pull = PeerPull(service, city.ocpi_peers[0], "not-their-token", T0)
        await pull.poll(T0)
        assert pull.failures == 1 and _states(conn) == {}
    finally:
        await service.close()


@pytest.mark.parametrize("mode", ["down", "garbage", "envelope", "gone"])
@synchronous
async def test_down_or_garbage_is_unknown_after_the_staleness_limit(
        mode: str, peer_server: Any, tmp_path: Path, db_url: str, mqtt_url: str,
        conn: psycopg.Connection[Any], watcher: Watcher) -> None:
    city_id, server = peer_server
    url = "http://127.0.0.1:1/ocpi/cpo/2.2.1/locations" if mode == "gone" else server.url
    city = _city(tmp_path, city_id, url)
    sync_registry(conn, city)
    service = await _service(db_url, mqtt_url, city)
    first, second = peer_points(city_id)
    try:
        pull = PeerPull(service, city.ocpi_peers[0], TOKEN, T0)
        if mode != "gone":
            await pull.poll(T0)  # a good answer at T0
            server.simulator.mode = mode
        assert set(_states(conn)) == ({first, second} if mode != "gone" else set())
        waits = [await pull.poll(T0 + timedelta(seconds=s)) for s in (10, 30, 59)]
        assert pull.failures == 3 and waits[0] < waits[2]  # backing off
        assert all(state[0] != "UNKNOWN" for state in _states(conn).values())
        await pull.poll(T0 + timedelta(seconds=60))  # the limit: 60 s without a good answer
        at = T0 + timedelta(seconds=60)
        assert _states(conn) == {first: ("UNKNOWN", at, "ocpi"),
                                 second: ("UNKNOWN", at, "ocpi")}
        await pull.poll(T0 + timedelta(seconds=90))  # stored once, not at every failure
        assert conn.execute("SELECT count(*) FROM evse_status WHERE status = 'UNKNOWN'"
                            ).fetchone() == (2,)
        topic = charger_state_topic(city_id, first)
        await waited(lambda: (watcher.last(topic) or {}).get("status") == "UNKNOWN", 10)
        # The console's alarm: the charger data source is silent, one per point.
        evaluate_alarms(conn, city_id, at)
        raised = conn.execute("SELECT target, since FROM alarms WHERE kind = "
                              "'charger_source_silent' AND cleared_at IS NULL ORDER BY target"
                              ).fetchall()
        assert raised == [(first, at), (second, at)]
        if mode == "gone":
            return
        # Back: what they say holds from now on, though their last_updated is older.
        server.simulator.mode = "ok"
        await pull.poll(T0 + timedelta(seconds=120))
        back = T0 + timedelta(seconds=120)
        assert _states(conn) == {first: ("AVAILABLE", back, "ocpi"),
                                 second: ("AVAILABLE", back, "ocpi")}
        evaluate_alarms(conn, city_id, back)
        assert conn.execute("SELECT count(*) FROM alarms WHERE kind = 'charger_source_silent' "
                            "AND cleared_at IS NULL").fetchone() == (0,)
    finally:
        await service.close()


@synchronous
async def test_an_evse_we_do_not_know_is_dead_lettered(
        peer_server: Any, tmp_path: Path, db_url: str, mqtt_url: str,
        conn: psycopg.Connection[Any]) -> None:
    city_id, server = peer_server
    city = _city(tmp_path, city_id, server.url)
    sync_registry(conn, city)
    service = await _service(db_url, mqtt_url, city)
    try:
        pull = PeerPull(service, city.ocpi_peers[0], TOKEN, T0)
        strange = {"id": "x", "evses": [{"uid": "DE*TST*E999*1", "status": "CHARGING",
                                         "last_updated": "2026-05-04T09:00:00Z"}]}
        await pull.store([strange, {"evses": "none"}], T0)
        rows = conn.execute("SELECT topic, reason FROM dead_letters ORDER BY reason").fetchall()
        assert [row[0] for row in rows] == ["ocpi/stadtwerke/locations"] * 2
        assert "not a list" in rows[0][1] and "unknown EVSE 'DE*TST*E999*1'" in rows[1][1]
        assert _states(conn) == {}
    finally:
        await service.close()


