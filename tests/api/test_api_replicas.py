"""Two ``parkleit api`` processes: the rate limits hold across both when they share a Redis
(``PARKLEIT_API_RATE_LIMIT_URL``), and each counts on its own while Redis is away; an admin
reload on one reaches the other; a stream client of a killed one resumes on the other."""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from _helpers import ApiServer, api_server, utc_now, wait_for
from test_api_stream_admin import counter, with_a_new_lot

from api._keys import add_key
from benchmarks._common import sse_events
from core.city import City
from core.registry import sync_registry
from core.settings import Settings
from ingest import Writer, prepare_connection
from parkleit.embedded import free_port

REDIS_URL = "redis://127.0.0.1:6379/0"
LIMITS = {"PARKLEIT_API_RATE_PER_IP": "0.2", "PARKLEIT_API_BURST_PER_IP": "6"}


@pytest.fixture
def shared_redis(tmp_path: Path) -> Iterator[str]:
    """The machine's Redis (its rate-limit keys cleared before and after), or where none
    answers a private one of Debian's ``redis-server`` on a free port."""
    with contextlib.ExitStack() as stack:
        url = REDIS_URL
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            client.ping()
        except redis.exceptions.ConnectionError:
            server = shutil.which("redis-server")
            if server is None:
                pytest.fail(f"no Redis at {REDIS_URL} and no redis-server to start one "
                            "(apt-get install redis-server)")
            port = free_port()
            process = subprocess.Popen([server, "--port", str(port), "--save", "",
                                        "--appendonly", "no", "--dir", str(tmp_path)],
                                       stdout=subprocess.DEVNULL)
            stack.callback(process.wait, 10)
            stack.callback(process.terminate)
            url = f"redis://127.0.0.1:{port}/0"
            client = redis.Redis.from_url(url, socket_connect_timeout=2)
            wait_for(lambda: _answers(client), timeout=10)
        stack.callback(client.close)

        def clear() -> None:
            for key in client.scan_iter("parkleit:rate:*"):
                client.delete(key)

        clear()
        stack.callback(clear)
        yield url


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False


@contextlib.contextmanager
def _two(settings: Settings, tmp_path: Path, **extra: str) -> Iterator[tuple[ApiServer, ...]]:
    env = {**LIMITS, **extra}
    with api_server(settings, tmp_path / f"a-{secrets.token_hex(2)}.log", **env) as first, \
            api_server(settings, tmp_path / f"b-{secrets.token_hex(2)}.log", **env) as second:
        yield first, second


def _granted(servers: tuple[ApiServer, ...], requests: int) -> int:
    """Requests to ``/v1/lots``, alternating between the servers; how many were answered
    (not 429)."""
    granted = 0
    for index in range(requests):
        answer = httpx.get(f"{servers[index % len(servers)].url}/v1/lots", timeout=10)
        assert answer.status_code in (200, 429), answer.text
        granted += answer.status_code == 200
    return granted


def test_the_address_limit_holds_across_two_processes_sharing_redis(
        settings: Settings, tmp_path: Path, shared_redis: str) -> None:
    with _two(settings, tmp_path, PARKLEIT_API_RATE_LIMIT_URL=shared_redis) as servers:
        # The health checks of the start took tokens too: a fresh bucket for the count.
        client = redis.Redis.from_url(shared_redis)
        client.delete(*client.keys("parkleit:rate:ip:*"))
        client.close()
        # A burst of 6 in all (the rate refills one token in 5 s), not 6 per process.
        assert _granted(servers, 16) in (6, 7)


def test_without_redis_each_process_counts_alone(settings: Settings, tmp_path: Path) -> None:
    # Nothing listens there: each process falls back to its own buckets, and says so.
    with _two(settings, tmp_path, PARKLEIT_API_RATE_LIMIT_URL="redis://127.0.0.1:9/0") as servers:
        granted = _granted(servers, 24)
        assert 8 <= granted <= 14  # about a burst per process, less what the start took
        assert all("Redis unavailable" in server.process.log.read_text() for server in servers)


def test_an_admin_reload_on_one_process_reaches_the_other(
        settings: Settings, tmp_path: Path, city: City, city_path: Path,
        conn: psycopg.Connection[Any]) -> None:
    """The reload's NOTIFY: every API process reads the city configs again, not only the one
    that was asked."""
    sync_registry(conn, city)
    keys = tmp_path / "api-keys"
    key = add_key(keys, "ops")
    with _two(settings, tmp_path, PARKLEIT_API_KEYS_FILE=str(keys),
              PARKLEIT_API_RATE_PER_IP="0") as (asked, other):
        new = with_a_new_lot(city_path, city.id)
        assert httpx.get(f"{other.url}/v1/lots/{new}", timeout=10).status_code == 404
        reloaded = httpx.post(f"{asked.url}/v1/admin/reload", timeout=10,
                              headers={"Authorization": f"Bearer {key}"})
        assert reloaded.status_code == 200, reloaded.text
        wait_for(lambda: httpx.get(f"{other.url}/v1/lots/{new}", timeout=10).status_code == 200,
                 timeout=10)
        assert httpx.get(f"{other.url}/v1/lots/{new}", timeout=10).json()["capacity"] == 30


def test_a_stream_client_of_a_killed_process_resumes_on_the_other_and_misses_no_change(
        settings: Settings, tmp_path: Path, city: City, conn: psycopg.Connection[Any]) -> None:
    """A client's EventSource reconnects to another process with ``Last-Event-ID``: it gets
    the current state first (so what changed while it was away is there) and every change
    after."""
    sync_registry(conn, city)
    prepare_connection(conn)
    writer, garage = Writer(city), f"{city.id}-garage"

    def count(occupied: int) -> None:
        now = utc_now()
        writer.write(conn, [counter(city, "garage", occupied, now)], now)

    count(10)
    with _two(settings, tmp_path, PARKLEIT_API_RATE_PER_IP="0") as (first, second), \
            httpx.Client(timeout=httpx.Timeout(5, read=10)) as client:
        with client.stream("GET", f"{first.url}/v1/stream?lots={garage}") as response:
            seen = next(sse_events(response))
        assert json.loads(seen["data"])["occupied"] == 10
        first.process.kill()  # the client's process is gone ...
        count(20)  # ... while the garage changes twice
        count(30)
        with client.stream("GET", f"{second.url}/v1/stream?lots={garage}",
                           headers={"Last-Event-ID": seen["id"]}) as response:
            events = sse_events(response)
            assert json.loads(next(events)["data"])["occupied"] == 30  # the state now
            count(40)  # and each change after
            assert json.loads(next(events)["data"])["occupied"] == 40
