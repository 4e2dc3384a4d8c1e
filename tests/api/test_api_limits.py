"""Request limits (``api/_limits.py``, ``api/_server.py``): a head above
``API_MAX_HEADER_BYTES`` is a 431 (414 for the target), a body above ``API_MAX_BODY_BYTES`` (any
body on a GET) a 413 before authentication and before it is read, a head or body that does not
arrive in time a 408; against a real ``parkleit api`` process, with raw sockets, as a hostile
client sends them."""

from __future__ import annotations

import json
import logging
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from _helpers import ServiceProcess, api_server
from fastapi.testclient import TestClient

from api import create_app
from api._keys import add_key
from core.city import City
from core.registry import sync_registry
from core.settings import Settings

logger = logging.getLogger(__name__)

MAX_HEAD = 16_384  # the defaults
MAX_BODY = 16_384
MIB = 1024 * 1024
TIMEOUT_S = 1.0  # API_HEADER_TIMEOUT_S and API_BODY_TIMEOUT_S of the server under test


@dataclass
class Server:
    port: int
    process: ServiceProcess
    lot: str

    def rss_mb(self) -> float:
        """The server process's resident memory."""
        assert self.process.proc is not None
        status = Path(f"/proc/{self.process.proc.pid}/status").read_text()
        [line] = [line for line in status.splitlines() if line.startswith("VmRSS:")]
        return int(line.split()[1]) / 1024

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


@pytest.fixture
def server(settings: Settings, conn: psycopg.Connection[Any], city: City,
           tmp_path: Path) -> Iterator[Server]:
    sync_registry(conn, city)
    keys = tmp_path / "api-keys"
    add_key(keys, "ops")
    with api_server(settings, tmp_path / "api.log", PARKLEIT_API_KEYS_FILE=str(keys),
                    PARKLEIT_API_RATE_PER_IP="0", PARKLEIT_API_HEADER_TIMEOUT_S=str(TIMEOUT_S),
                    PARKLEIT_API_BODY_TIMEOUT_S=str(TIMEOUT_S)) as api:
        yield Server(api.port, api.process, city.lots[0].id)


def _send(sock: socket.socket, head: bytes, filler: bytes = b"", total: int = 0) -> None:
    """Send ``head``, then ``total`` bytes of ``filler``, until the server stops reading."""
    try:
        sock.sendall(head)
        sent = 0
        while sent < total:
            sock.sendall(filler)
            sent += len(filler)
    except OSError:  # refused and closed: the rest is never read
        pass


def _answer(sock: socket.socket, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of the one response on ``sock`` (read until it closes)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:  # after the answer: the client was still sending
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    assert head, "no answer"
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in
               (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def _refusal(answer: tuple[int, dict[str, str], bytes], status: int) -> dict[str, Any]:
    code, headers, body = answer
    assert code == status, (code, body[:300])
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert headers["x-content-type-options"] == "nosniff"
    problem: dict[str, Any] = json.loads(body)
    assert problem["status"] == status and problem["detail"]
    return problem


def _hostile(server: Server, head: bytes, filler: bytes, total: int
             ) -> tuple[tuple[int, dict[str, str], bytes], float]:
    """Send a request of ``head`` and ``total`` bytes more from a thread, while this one
    reads the answer; the answer and the seconds it took."""
    sock = server.connect()
    began = time.perf_counter()
    sender = threading.Thread(target=_send, args=(sock, head, filler, total), daemon=True)
    sender.start()
    try:
        answer = _answer(sock)
        took = time.perf_counter() - began
    finally:
        sock.close()
        sender.join(30)
    return answer, took


def _head(target: str, port: int, size: int | None = None) -> bytes:
    """A GET of ``target``, padded with an ``X-Pad`` header to ``size`` bytes of head."""
    head = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    if size is not None:
        pad = size - len(head) - len("X-Pad: \r\n\r\n")
        head += f"X-Pad: {'p' * pad}\r\n"
    return f"{head}\r\n".encode()


# -- against the server --------------------------------------------------------------------

def test_a_50_mib_header_is_refused_unread_and_the_server_stays_fast(server: Server) -> None:
    healthz = f"http://127.0.0.1:{server.port}/healthz"
    with httpx.Client(timeout=10) as client:
        idle = []
        for _ in range(20):
            began = time.perf_counter()
            assert client.get(healthz).status_code == 200
            idle.append(time.perf_counter() - began)
        before = server.rss_mb()
        during: list[float] = []
        for _ in range(3):
            stop = threading.Event()

            def poll(client: httpx.Client = client, stop: threading.Event = stop) -> None:
                while not stop.is_set():
                    began = time.perf_counter()
                    assert client.get(healthz).status_code == 200
                    during.append(time.perf_counter() - began)

            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            head = f"GET /v1/lots HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAccept: "
            answer, took = _hostile(server, head.encode(), b"a" * MIB, 50 * MIB)
            time.sleep(0.2)
            stop.set()
            poller.join(10)
            problem = _refusal(answer, 431)
            assert str(MAX_HEAD) in problem["detail"]
            assert took < 2.0
    grown = server.rss_mb() - before
    logger.info("healthz idle p50 %.1f ms, max %.1f ms; during three 50 MiB headers p50 %.1f "
                "ms, max %.1f ms (%d requests); server memory %.0f MB, then +%.1f MB",
                statistics.median(idle) * 1000, max(idle) * 1000,
                statistics.median(during) * 1000, max(during) * 1000, len(during), before, grown)
    assert max(during) < 1.0
    assert grown < 10


def test_a_50_mb_body_without_a_key_is_refused_before_it_is_read(server: Server) -> None:
    before = server.rss_mb()
    start = b'{"reason": "'
    head = (f"POST /v1/admin/lots/{server.lot}/close HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(start) + 50 * MIB}\r\n\r\n").encode()
    answer, took = _hostile(server, head + start, b"x" * MIB, 50 * MIB)
    problem = _refusal(answer, 413)  # not the 401 of a request that was read and parsed
    assert str(MAX_BODY) in problem["detail"]
    # The same without a declared length: read only up to the bound.
    chunked = (f"POST /v1/admin/lots/{server.lot}/close HTTP/1.1\r\n"
               f"Host: 127.0.0.1:{server.port}\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    chunk = b"%x\r\n%s\r\n" % (MIB, b"x" * MIB)
    answer, _ = _hostile(server, chunked, chunk, 50 * MIB)
    _refusal(answer, 413)
    grown = server.rss_mb() - before
    logger.info("a 50 MB body refused in %.0f ms; server memory +%.1f MB", took * 1000, grown)
    assert grown < 10


def test_a_body_or_a_head_that_never_finishes_is_cut_off(server: Server) -> None:
    body = (f"POST /v1/admin/lots/{server.lot}/close HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nContent-Length: 100\r\n\r\n"
            '{"reason"').encode()
    with server.connect() as sock:
        began = time.perf_counter()
        _send(sock, body)
        problem = _refusal(_answer(sock, timeout=TIMEOUT_S + 5), 408)
        assert TIMEOUT_S <= time.perf_counter() - began < TIMEOUT_S + 2
        assert "body" in problem["detail"]
    began = time.perf_counter()  # the head's time runs from the connection on
    with server.connect() as sock:
        _send(sock, f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nX-A: ".encode())
        problem = _refusal(_answer(sock, timeout=TIMEOUT_S + 5), 408)
        assert TIMEOUT_S <= time.perf_counter() - began < TIMEOUT_S + 2
        assert "head" in problem["detail"]
    # A connection that sends nothing at all is closed, without an answer.
    with server.connect() as sock:
        sock.settimeout(TIMEOUT_S + 5)
        assert sock.recv(100) == b""
    # A client sending at a normal pace is not hurried.
    with server.connect() as sock:
        for piece in (b"GET /healthz HTTP/1.1\r\n", f"Host: 127.0.0.1:{server.port}\r\n".encode(),
                      b"Connection: close\r\n\r\n"):
            sock.sendall(piece)
            time.sleep(TIMEOUT_S / 4)
        assert _answer(sock)[0] == 200


def test_the_server_and_the_app_draw_the_line_at_the_same_byte(server: Server) -> None:
    for size, status in ((MAX_HEAD, 200), (MAX_HEAD + 1, 431), (4 * MAX_HEAD, 431)):
        with server.connect() as sock:
            sock.sendall(_head("/healthz", server.port, size))
            code = _answer(sock)[0] if status != 200 else _status(sock)
            assert code == status, size
    # A target over the bound: from the app when it came whole, from the server when it did not.
    with server.connect() as sock:
        _send(sock, _head("/v1/lots?city=" + "z" * MAX_HEAD, server.port))
        assert "target" in _refusal(_answer(sock), 414)["detail"]
    answer, _ = _hostile(server, b"GET /v1/lots?city=", b"z" * MIB, 50 * MIB)
    assert "target" in _refusal(answer, 414)["detail"]


def _status(sock: socket.socket) -> int:
    """The status of a response on a connection kept open."""
    sock.settimeout(10)
    data = b""
    while b"\r\n" not in data:
        data += sock.recv(65536)
    return int(data.split(b" ", 2)[1])


# -- in the app (any ASGI server) -------------------------------------------------------------

@pytest.fixture
def client(settings: Settings, tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    keys = tmp_path / "api-keys"
    key = add_key(keys, "ops")
    app = create_app(settings.model_copy(update={"API_KEYS_FILE": keys, "API_MAX_BODY_BYTES": 2048,
                                                 "API_MAX_HEADER_BYTES": 4096}))
    with TestClient(app) as test_client:
        yield test_client, key


def test_the_app_refuses_what_a_server_lets_through(client: tuple[TestClient, str]) -> None:
    api, key = client
    assert api.get("/healthz", headers={"X-Pad": "p" * 3000}).status_code == 200
    big = api.get("/healthz", headers={"X-Pad": "p" * 4096})
    assert big.status_code == 431 and big.headers["connection"] == "close"
    assert big.headers["content-type"] == "application/problem+json"
    assert api.get("/v1/lots", params={"city": "z" * 4096}).status_code == 414
    # A GET takes no body; a POST a bounded one, declared or chunked, with or without a key.
    assert api.request("GET", "/v1/lots", content=b"x").status_code == 413
    for headers in ({}, {"X-API-Key": key}):
        assert api.post("/v1/admin/lots/nowhere/close", headers=headers,
                        content=b"x" * 2049).status_code == 413
        chunks = iter([b'{"reason": "', b"x" * 2048, b'"}'])
        assert api.post("/v1/admin/lots/nowhere/close", headers=headers,
                        content=chunks).status_code == 413
    # Within the bounds the route reads the body as sent.
    gone = api.post("/v1/admin/lots/nowhere/close", headers={"X-API-Key": key},
                    json={"reason": "x" * 500})
    assert gone.status_code == 404
    chunks = iter([b'{"reason": ', b'"Bau"}'])
    gone = api.post("/v1/admin/lots/nowhere/close", content=chunks,
                    headers={"X-API-Key": key, "Content-Type": "application/json"})
    assert gone.status_code == 404
