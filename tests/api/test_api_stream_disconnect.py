"""A stream client that goes at once is a normal event: no traceback in the server's log."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
from _citytoml import city_toml, counter_lots
from _helpers import ServiceProcess, answers_ok, service_env, wait_for

from core.city import load_city
from core.registry import sync_registry
from core.settings import Settings
from parkleit.embedded import free_port


def test_clients_that_disconnect_at_once_log_one_debug_line_and_no_traceback(
        spawn: Callable[..., ServiceProcess], settings: Settings, city_path: Path,
        conn: psycopg.Connection[Any]) -> None:
    # A city of 500 lots: a client that goes after the first bytes leaves most of the current
    # state unsent.
    city_path.write_text(city_toml(city_path.stem) + counter_lots(
        city_path.stem, [f"{n:03d}" for n in range(500)]), encoding="utf-8")
    sync_registry(conn, load_city(str(city_path)))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = spawn(["-v", "api", "--port", str(port)], service_env(settings), name="api")
    wait_for(lambda: answers_ok(f"{url}/healthz"), timeout=30, interval=0.2)
    request = b"GET /v1/stream HTTP/1.1\r\nHost: test\r\n\r\n"
    for number in range(40):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(request)
            if number % 2:
                client.recv(64)  # gone after the first bytes; else before any
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # RST
    with httpx.stream("GET", f"{url}/v1/stream", timeout=5) as response:
        assert response.status_code == 200  # the server still serves streams
    # Each stream that began (some clients went before their request was read) ended with
    # one line at debug, nothing else.

    def settled() -> bool:
        log = api.log.read_text()
        began = log.count('"GET /v1/stream HTTP/1.1" 200')
        return "Traceback" in log or (began >= 21 and log.count(
            "DEBUG api.routers.stream: stream client of") >= began)

    wait_for(settled, timeout=10)
    log = api.log.read_text()
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]

