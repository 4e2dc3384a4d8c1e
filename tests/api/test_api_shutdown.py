"""``parkleit api`` starts and stops: one lifespan opens what the app holds in order and closes
it in reverse; SIGTERM stops it at once, even with event streams open."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from _helpers import ServiceProcess, answers_ok, service_env, wait_for
from fastapi.testclient import TestClient
from starlette.datastructures import State

from api import KeyFileError, create_app
from api._hub import Hub
from api._keys import KeyStore
from api._ratelimit import TokenBuckets
from api._statemetrics import CityGauges
from core.city import City
from core.settings import Settings
from parkleit.embedded import free_port


def test_sigterm_ends_open_streams_and_exits_at_once(
        spawn: Callable[..., ServiceProcess], settings: Settings) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = spawn(["api", "--port", str(port)], service_env(settings), name="api")
    wait_for(lambda: answers_ok(f"{url}/healthz"), timeout=30, interval=0.2)
    opened, ended = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def read() -> None:
        try:
            with httpx.stream("GET", f"{url}/v1/stream",
                              timeout=httpx.Timeout(5, read=60)) as response:
                for _ in response.iter_lines():
                    opened.set()
            ended.set()  # the server ended the stream properly (not a dropped connection)
        except httpx.HTTPError as exc:
            failures.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert opened.wait(10), "the stream did not open"
    began = time.monotonic()
    assert api.terminate(timeout=30) == 0
    took = time.monotonic() - began
    reader.join(5)
    log = api.log.read_text()
    # uvicorn's graceful timeout is 20 s: a stream that never ends would hold it that long.
    assert took < 5, f"SIGTERM took {took:.1f} s; log:\n{log[-2000:]}"
    assert ended.is_set() and not failures, failures
    assert "Traceback" not in log and "timeout graceful shutdown exceeded" not in log


def test_a_stream_opened_while_draining_ends_after_the_current_state(
        settings: Settings, city: City) -> None:
    hub = Hub(settings, State({"city": city}), cast(Any, None))  # no database needed here
    kept = hub.subscribe(None, None)
    hub.end_streams()
    late = hub.subscribe(None, None)
    assert kept.closed and late.closed and not hub.subscribers


def test_the_lifespan_opens_what_the_app_holds_and_closes_it_in_reverse(
        settings: Settings) -> None:
    app = create_app(settings)
    with TestClient(app) as client:
        state = app.state
        pool, hub = state.pool, state.hub
        assert isinstance(state.api_keys, KeyStore)
        assert isinstance(state.key_buckets, TokenBuckets)
        assert isinstance(state.city_gauges, CityGauges)
        assert not pool.closed and hub.pool is pool
        wait_for(lambda: hub.connected, timeout=10)
        assert client.get("/healthz").status_code == 200
    assert not hub.alive and not hub.connected and pool.closed


def test_a_bad_key_file_stops_the_start_before_the_pool_opens(
        settings: Settings, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("ops:not-a-hash\n")
    app = create_app(settings.model_copy(update={"API_KEYS_FILE": keys}))
    with pytest.raises(KeyFileError), TestClient(app):
        pass
    assert not hasattr(app.state, "pool") and not hasattr(app.state, "hub")
