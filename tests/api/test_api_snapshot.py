"""The lots' snapshot (``api._snapshot``): answers from memory, never older than the database
by more than the NOTIFY's way, and right when time alone changes a lot."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _helpers import utc_now, wait_for
from _payloads import counter_topic, dumps, iso
from fastapi.testclient import TestClient

from api import create_app
from api._keys import add_key
from core.city import City
from core.registry import sync_registry
from core.settings import Settings
from ingest import Message, Writer, prepare_connection

Conn = psycopg.Connection[Any]


@pytest.fixture
def writer(conn: Conn, city: City) -> Writer:
    sync_registry(conn, city)
    prepare_connection(conn)
    return Writer(city)


def count(conn: Conn, writer: Writer, city: City, lot: str, occupied: int,
          moment: datetime) -> None:
    """A counter reading of ``lot`` through ingest's writer (which NOTIFYs at commit)."""
    now = utc_now()
    writer.write(conn, [Message(counter_topic(city.id, lot),
                                dumps({"occupied": occupied, "ts": iso(moment)}), now)], now)


def garage(client: TestClient, city: City) -> dict[str, Any]:
    lot: dict[str, Any] = client.get(f"/v1/lots/{city.id}-garage").json()
    return lot


def test_answers_come_from_memory_until_the_database_says_otherwise(
        api_client: TestClient, conn: Conn, city: City, writer: Writer) -> None:
    count(conn, writer, city, "garage", 40, utc_now())
    hub = api_client.app.state.hub  # type: ignore[attr-defined]
    wait_for(lambda: hub.connected, timeout=10)
    wait_for(lambda: garage(api_client, city)["free"] == 60, timeout=5)
    views = hub.views
    # Its time limit out of the way: a busy machine may take seconds for these requests.
    views.max_age = timedelta(minutes=10)
    views.invalidate(wait=True)
    first = api_client.get("/v1/lots")
    reads = views.reads
    for path in ("/v1/lots", "/v1/lots?format=geojson", "/v1/lots?format=csv",
                 f"/v1/lots/{city.id}-garage", "/v1/parkapi", "/v1/datex2/parking-status"):
        assert api_client.get(path).status_code == 200
    assert api_client.get("/v1/lots").headers["etag"] == first.headers["etag"]
    assert views.reads == reads  # nothing changed: not one read of the database

    count(conn, writer, city, "garage", 55, utc_now())  # NOTIFY at commit
    wait_for(lambda: garage(api_client, city)["free"] == 45, timeout=5)
    assert views.reads > reads
    changed = api_client.get("/v1/lots", headers={"If-None-Match": first.headers["etag"]})
    assert changed.status_code == 200 and changed.headers["etag"] != first.headers["etag"]


def test_time_alone_turns_a_count_stale_without_any_message(
        api_client: TestClient, conn: Conn, city: City, writer: Writer) -> None:
    lot = city.lot(f"{city.id}-garage")
    # Stale in two seconds, and no message will come to say so.
    counted = utc_now() - timedelta(seconds=lot.stale_after_s - 2)
    count(conn, writer, city, "garage", 30, counted)
    hub = api_client.app.state.hub  # type: ignore[attr-defined]
    wait_for(lambda: hub.connected, timeout=10)
    wait_for(lambda: garage(api_client, city)["free"] == 70, timeout=5)
    assert garage(api_client, city)["status"] == "open"
    turned = wait_for(lambda: (shown := garage(api_client, city))["status"] == "unknown"
                      and shown, timeout=6)
    assert turned["free"] is None and turned["stale"] is True
    assert utc_now() - counted > timedelta(seconds=lot.stale_after_s)  # not before its time


@pytest.mark.usefixtures("writer")
def test_a_stream_of_changes_is_read_in_the_background_and_no_request_waits(
        db_url: str, city: City) -> None:
    """Changes heard make one read in the background (more heard during it, one more after
    it), while requests take the views held: at 20 changes a second, waiting for a read was
    most of /v1/lots's slowest answers. A write of this process's (``wait``) makes the next
    request wait for a read begun after it."""
    from psycopg_pool import AsyncConnectionPool

    from api._snapshot import LotViews
    from core.city import Cities

    views, cities, now = LotViews(utc_now), Cities([city]), utc_now()
    views.listening = True
    heard_during_a_read = [True]

    class ChangingPool(AsyncConnectionPool):
        def connection(self, *args: Any, **kwargs: Any) -> Any:
            if views.reads and heard_during_a_read:
                heard_during_a_read.pop()
                views.invalidate()  # a change heard while the background read runs
            return super().connection(*args, **kwargs)

    async def settled(reads: int) -> int:
        deadline = asyncio.get_running_loop().time() + 10
        while views.reads < reads and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # no read beyond those
        return views.reads

    async def run() -> None:
        async with ChangingPool(db_url, min_size=1, max_size=4, open=False) as pool:
            first = await views.get(pool, cities, now)
            assert views.reads == 1
            for _ in range(20):
                views.invalidate()  # twenty changes heard
            answers = await asyncio.gather(*(views.get(pool, cities, now) for _ in range(20)))
            assert all(answer is first for answer in answers) and views.reads == 1
            # One read for the twenty changes, one more for the change heard during it.
            assert await settled(3) == 3
            views.invalidate(wait=True)
            await views.get(pool, cities, now)
            assert views.reads == 4
            await views.close()

    asyncio.run(run())


@pytest.mark.usefixtures("writer")
def test_without_the_listen_connection_every_request_reads_the_database(
        api_client: TestClient) -> None:
    hub = api_client.app.state.hub  # type: ignore[attr-defined]
    wait_for(lambda: hub.connected, timeout=10)
    hub.views.listening = False  # as while the hub reconnects after losing the database
    reads = hub.views.reads
    api_client.get("/v1/lots")
    api_client.get("/v1/lots")
    assert hub.views.reads == reads + 2


@pytest.mark.parametrize("query", [
    "", "?limit=2", "?limit=2&offset=1", "?format=geojson", "?format=csv", "?city={city}",
    "?city={city}&limit=1&offset=2&format=json"])
def test_the_lot_list_fast_path_answers_as_the_route_does(
        api_client: TestClient, conn: Conn, city: City, writer: Writer, query: str) -> None:
    """Plain ``GET /v1/lots`` is answered before routing (``LotsFastPath``); a parameter the
    fast path does not know (and the route ignores) sends the same request through the route:
    both answers must be the same but for the Link header, which repeats the query."""
    count(conn, writer, city, "garage", 40, utc_now())
    hub = api_client.app.state.hub  # type: ignore[attr-defined]
    wait_for(lambda: hub.connected, timeout=10)
    wait_for(lambda: garage(api_client, city)["free"] == 60, timeout=5)
    path = "/v1/lots" + query.format(city=city.id)
    routed_path = path + ("&" if "?" in path else "?") + "via=route"
    metrics = api_client.app.state.metrics  # type: ignore[attr-defined]
    before = metrics.requests.labels("GET", "/v1/lots", "200")._value.get()
    for encoding in ("gzip", "identity"):
        fast = api_client.get(path, headers={"Accept-Encoding": encoding})
        routed = api_client.get(routed_path, headers={"Accept-Encoding": encoding})
        assert fast.status_code == routed.status_code == 200
        assert fast.content == routed.content
        assert {k: v for k, v in fast.headers.items() if k != "link"} == {
            k: v for k, v in routed.headers.items() if k != "link"}
    # Both counted under the route's template, not as unmatched.
    assert metrics.requests.labels("GET", "/v1/lots", "200")._value.get() == before + 4


def test_the_fast_path_leaves_bad_or_unknown_requests_to_the_route(
        api_client: TestClient) -> None:
    for query, status in (("?limit=0", 422), ("?limit=²", 422), ("?format=xml", 422),
                          ("?city=nowhere", 422), ("?limit=1&limit=2", 200)):
        assert api_client.get(f"/v1/lots{query}").status_code == status, query


def test_a_client_sees_its_own_write_in_its_next_answer(
        settings: Settings, conn: Conn, city: City, writer: Writer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The views are read again in the background when the LISTEN connection hears a change;
    a write answered by this process makes the next request wait for a read begun after it
    (``SeesOwnWrites``): no polling here, the very next answer shows the write."""
    keys = tmp_path / "api-keys"
    headers = {"X-API-Key": add_key(keys, "ops")}
    count(conn, writer, city, "garage", 40, utc_now())
    app = create_app(settings.model_copy(update={"API_KEYS_FILE": keys, "API_RATE_PER_KEY": 0,
                                                 "API_RATE_PER_IP": 0}))
    lot = f"{city.id}-garage"
    with TestClient(app) as api:
        hub = app.state.hub
        wait_for(lambda: hub.connected, timeout=10)
        wait_for(lambda: garage(api, city)["free"] == 60, timeout=5)
        hub.views.max_age = timedelta(minutes=10)  # no read for time's sake alone

        async def slow_background_read() -> None:
            await asyncio.sleep(30)  # the NOTIFY's read comes too late for the next request

        monkeypatch.setattr(hub.views, "_refreshing", slow_background_read)
        for _ in range(5):
            assert api.post(f"/v1/admin/lots/{lot}/close", headers=headers,
                            json={"reason": "Markt"}).status_code == 200
            assert garage(api, city)["status"] == "closed"
            assert api.post(f"/v1/admin/lots/{lot}/open", headers=headers).status_code == 200
            assert garage(api, city)["status"] == "open"
