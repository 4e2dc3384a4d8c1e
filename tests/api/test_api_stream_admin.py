"""The live stream and the admin endpoints against a real uvicorn server and PostgreSQL."""

from __future__ import annotations

import itertools
import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import fastapi.routing
import httpx
import psycopg
import pytest
import uvicorn
from _citytoml import city_toml, counter_lots
from _helpers import utc_now, wait_for
from fastapi import FastAPI
from fastapi.sse import format_sse_event
from fastapi.testclient import TestClient

import api._hub
from api import create_app
from api._keys import add_key
from core import channels
from core.city import City, Sign
from core.db import queries
from core.registry import sync_registry
from core.settings import Settings
from core.status import LotStatus
from ingest import Message, Writer, prepare_connection
from parkleit.cli import main
from signage import Ack, SignageService, SignContent
from signage._drivers import Drivers

FAST = {"API_STREAM_HEARTBEAT_S": 0.3, "API_STREAM_STALE_CHECK_S": 0.2}


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def counter(city: City, lot: str, occupied: int, moment: datetime) -> Message:
    return Message(f"parkleit/v1/{city.id}/lots/{city.id}-{lot}/counter",
                   json.dumps({"occupied": occupied, "ts": iso(moment)}).encode(), moment)


class Stream:
    """An SSE client in a thread of its own: events (and comments) into a queue."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url, self.headers = url, headers or {}
        self.events: queue.Queue[dict[str, str]] = queue.Queue()
        self.status: int | None = None
        self.media_type = ""
        self.retry: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with httpx.Client(timeout=httpx.Timeout(5, read=10)) as client, \
                client.stream("GET", self.url, headers=self.headers) as response:
            self.status, self.media_type = response.status_code, response.headers["content-type"]
            fields: dict[str, str] = {}
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith(":"):
                    self.events.put({"comment": line[1:].strip()})
                elif line:
                    name, _, value = line.partition(":")
                    fields[name] = fields.get(name, "") + value.removeprefix(" ")
                elif fields:
                    self.events.put(fields)
                    fields = {}
            self.events.put({"end": ""})

    def next(self, timeout: float = 2.0, *, comments: bool = False) -> dict[str, str]:
        """The next event (comments and bare ``retry`` hints skipped unless asked for)."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            self.retry = event.get("retry", self.retry)
            if comments or "event" in event or "end" in event:
                return event

    def lots(self, count: int, timeout: float = 2.0) -> dict[str, dict[str, Any]]:
        """The next ``count`` lot events: lot id -> data."""
        found = {}
        for _ in range(count):
            event = self.next(timeout)
            assert event["event"] == "lot", event
            data = json.loads(event["data"])
            found[data["lot_id"]] = data
        return found

    def close(self) -> None:
        self._stop.set()  # seen at the next line (a heartbeat at the latest)
        self._thread.join(5)


@dataclass
class Live:
    """A running API server and what the tests need around it."""

    url: str
    app: FastAPI
    city: City
    key: str
    conn: psycopg.Connection[Any]
    writer: Writer
    streams: list[Stream]

    def stream(self, query: str = "", headers: dict[str, str] | None = None) -> Stream:
        stream = Stream(f"{self.url}/v1/stream{query}", headers)
        self.streams.append(stream)
        return stream

    def lot(self, name: str) -> str:
        return f"{self.city.id}-{name}"

    def close_streams(self) -> None:
        for stream in self.streams:
            stream.close()

    def count(self, name: str, occupied: int, moment: datetime | None = None) -> None:
        """A counter reading of lot ``name`` through ingest's writer; wait until streamed."""
        now = utc_now()
        self.writer.write(self.conn, [counter(self.city, name, occupied, moment or now)], now)
        hub = self.app.state.hub
        wait_for(lambda: (held := hub.lots.get(self.lot(name))) is not None
                 and held[0].occupied == occupied, timeout=2)

    def status(self, name: str) -> str:
        row = self.conn.execute("SELECT status FROM lot_state WHERE lot_id = %s",
                                (self.lot(name),)).fetchone()
        assert row is not None
        return str(row[0])

    def admin(self, method: str, path: str, key: str | None = None,
              **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.request(method, f"{self.url}/v1/admin{path}", headers=headers,
                             timeout=10, **kwargs)


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` in uvicorn on a free port in a thread; its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), timeout=10)
        assert server.started, "the server did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def keys_file(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "api-keys"
    return path, add_key(path, "ops")


@pytest.fixture
def make_live(settings: Settings, city: City, conn: psycopg.Connection[Any],
              keys_file: tuple[Path, str]) -> Iterator[Callable[..., Live]]:
    sync_registry(conn, city)
    prepare_connection(conn)
    with ExitStack() as stack:

        def start(**overrides: Any) -> Live:
            app = create_app(settings.model_copy(update={
                "API_KEYS_FILE": keys_file[0], **FAST, **overrides}))
            live = Live(stack.enter_context(serve(app)), app, city, keys_file[1], conn,
                        Writer(city), [])
            stack.callback(live.close_streams)
            wait_for(lambda: app.state.hub.connected, timeout=10)
            return live

        yield start


@pytest.fixture
def live(make_live: Callable[..., Live]) -> Live:
    return make_live()


def test_current_state_first_then_each_change_within_a_second_and_heartbeats(
        live: Live) -> None:
    now = utc_now()
    live.count("garage", 10, now)
    stream = live.stream()
    events = [stream.next() for _ in live.city.lots]
    assert stream.status == 200 and stream.media_type.startswith("text/event-stream")
    assert stream.retry == "3000"
    current = {json.loads(e["data"])["lot_id"]: json.loads(e["data"]) for e in events}
    assert set(current) == {lot.id for lot in live.city.lots}
    assert current[live.lot("garage")] == {
        "lot_id": live.lot("garage"), "free": 90, "occupied": 10, "capacity": 100,
        "status": "open", "updated": iso(now), "quality": 1.0}
    assert current[live.lot("small")]["status"] == "unknown"  # never counted

    later = utc_now()
    live.writer.write(live.conn, [counter(live.city, "garage", 100, later)], later)
    committed = time.monotonic()
    change = stream.next(timeout=1.0)
    assert time.monotonic() - committed < 1.0
    assert change["event"] == "lot" and int(change["id"]) > max(int(e["id"]) for e in events)
    assert json.loads(change["data"])["status"] == "full"

    # Nothing changes: comment lines keep the connection open.
    assert stream.next(timeout=1.0, comments=True) == {"comment": "keep-alive"}


def test_filter_reconnect_and_a_stale_count_turns_unknown_without_a_message(
        live: Live) -> None:
    stale_after = live.city.lot(live.lot("small")).stale_after_s
    # Stale in three seconds: time enough to see it open first on a busy machine.
    almost_stale = utc_now() - timedelta(seconds=stale_after - 3)
    live.count("small", 3, almost_stale)
    assert live.status("small") == "open"
    stream = live.stream(f"?lots={live.lot('small')}", {"Last-Event-ID": "12345"})
    assert stream.lots(1)[live.lot("small")]["status"] == "open"
    live.count("garage", 1)  # filtered out
    # No NOTIFY: the stream judges staleness on its own timer. Stale is not free: an unknown
    # status comes with no numbers (core.status).
    assert stream.lots(1, timeout=6)[live.lot("small")] == {
        "lot_id": live.lot("small"), "free": None, "occupied": None, "capacity": 10,
        "status": "unknown", "updated": iso(almost_stale), "quality": 0.0}

    refused = httpx.get(f"{live.url}/v1/stream?lots=nowhere,{live.lot('small')}", timeout=5)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert "nowhere" in refused.json()["detail"]


def test_a_client_that_does_not_read_is_dropped_and_holds_up_no_one(
        make_live: Callable[..., Live]) -> None:
    live = make_live(API_STREAM_MAX_LAG_S=1.0)
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    stuck.connect(("127.0.0.1", int(live.url.rsplit(":", 1)[1])))
    stuck.sendall(b"GET /v1/stream HTTP/1.1\r\nHost: test\r\n\r\n")
    sign = f"{live.city.id}-vms-1"
    fast = live.stream(f"?signs={sign}")
    hub = live.app.state.hub
    wait_for(lambda: len(hub.subscribers) == 2, timeout=5)
    notify = queries("signage")["notify"]
    try:
        # One sign: both clients hold one pending event at most; the stuck one stops taking
        # them once sockets and buffers are full (several MB), the fast one sees each. Its
        # oldest pending event then waits beyond API_STREAM_MAX_LAG_S, and it is dropped.
        deadline = time.monotonic() + 60
        for number in itertools.count():
            assert time.monotonic() < deadline, "the stuck client was never dropped"
            text = f"{number:05d}" + "x" * 7000
            live.conn.execute(notify, {"channel": channels.SIGN_CONTENT, "payloads": [json.dumps({
                "sign_id": sign, "city": live.city.id, "shown_since": None,
                "content": {"lines": [{"label": "", "arrow": "none", "text": text}]}})]})
            event = fast.next(timeout=2.0)
            assert json.loads(event["data"])["content"]["lines"][0]["text"] == text
            if hub.dropped:
                break
        assert hub.dropped == 1 and len(hub.subscribers) == 1
        assert hub.streams_per_address["127.0.0.1"] == 2  # its connection is still open
    finally:
        stuck.close()
    wait_for(lambda: hub.streams_per_address["127.0.0.1"] == 1, timeout=5)


def test_a_commit_of_more_notifies_than_a_client_holds_is_coalesced_not_dropped(
        make_live: Callable[..., Live], city_path: Path) -> None:
    """A resync of a city of 1,500 lots: each lot twice in one commit."""
    many = [f"{i:04d}" for i in range(1500)]
    city_path.write_text(city_toml(city_path.stem) + counter_lots(city_path.stem, many),
                         encoding="utf-8")
    live = make_live()
    hub = live.app.state.hub
    stream = live.stream()
    stream.lots(len(hub.lots))  # the current state first (the lots with a lot_state row)
    now = utc_now()
    payloads = [LotStatus(live.lot(f"x{n}"), free, 50 - free, 50, "open", moment, 1.0
                          ).notification(live.city.id)
                for free, moment in ((1, now - timedelta(seconds=5)), (2, now)) for n in many]
    live.conn.execute(queries("signage")["notify"], {"channel": channels.LOT_STATE,
                                                     "payloads": payloads})
    newest: dict[str, dict[str, Any]] = {}
    while len(newest) < len(many) or any(lot["free"] != 2 for lot in newest.values()):
        event = stream.next(timeout=5)
        assert event["event"] == "lot", event  # not the end of the stream
        data = json.loads(event["data"])
        newest[data["lot_id"]] = data
    assert list(newest) == [live.lot(f"x{n}") for n in many]  # in order of first arrival
    assert newest[live.lot("x1499")] == {
        "lot_id": live.lot("x1499"), "free": 2, "occupied": 48, "capacity": 50,
        "status": "open", "updated": iso(now), "quality": 1.0}
    assert hub.dropped == 0 and len(hub.subscribers) == 1
    live.count("garage", 7)  # and the stream goes on
    assert stream.lots(1)[live.lot("garage")]["occupied"] == 7


def test_streams_per_client_address_are_capped_with_a_429_problem(
        make_live: Callable[..., Live]) -> None:
    live = make_live(API_STREAM_MAX_PER_IP=3)
    hub = live.app.state.hub
    streams = [live.stream(f"?lots={live.lot('garage')}") for _ in range(3)]
    wait_for(lambda: hub.streams_per_address["127.0.0.1"] == 3, timeout=5)
    refused = httpx.get(f"{live.url}/v1/stream", timeout=5)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["status"] == 429 and "at most 3" in refused.json()["detail"]
    # The address the rate limits count: uvicorn (by default) believes a loopback proxy.
    other = live.stream(headers={"X-Forwarded-For": "192.0.2.7"})
    assert other.next()["event"] == "lot" and other.status == 200
    streams[0].close()
    wait_for(lambda: hub.streams_per_address["127.0.0.1"] == 2, timeout=5)
    again = live.stream()
    assert again.next()["event"] == "lot" and again.status == 200


def test_each_event_is_encoded_once_whatever_the_number_of_clients(
        live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    encoded: list[str] = []

    def counting(encode: Callable[..., bytes]) -> Callable[..., bytes]:
        def count(**fields: Any) -> bytes:
            if fields.get("data_str") is not None:
                encoded.append(fields["data_str"])
            return encode(**fields)
        return count

    # Wherever an event's SSE frame could be written: the hub, or FastAPI per client.
    for module in (fastapi.routing, api._hub):
        monkeypatch.setattr(module, "format_sse_event",
                            counting(getattr(module, "format_sse_event", format_sse_event)),
                            raising=False)
    streams = [live.stream(f"?lots={live.lot('garage')}") for _ in range(8)]
    for stream in streams:
        stream.lots(1)
    encoded.clear()
    live.count("garage", 42)
    for stream in streams:
        assert stream.lots(1)[live.lot("garage")]["occupied"] == 42
    assert len(encoded) == 1


def test_admin_needs_a_valid_key_and_never_keeps_or_logs_it(
        live: Live, keys_file: tuple[Path, str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    path = f"{live.url}/v1/admin/lots/{live.lot('garage')}/close"
    missing = httpx.post(path, json={"reason": "works"}, timeout=10)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 401
    wrong = live.admin("POST", f"/lots/{live.lot('garage')}/close", key="ops.not-the-key",
                       json={"reason": "works"})
    assert wrong.status_code == 403 and wrong.json()["status"] == 403
    assert live.status("garage") != "closed"
    ok = httpx.post(path, json={"reason": "works"}, headers={"X-API-Key": live.key}, timeout=10)
    assert ok.status_code == 200 and ok.json()["closure"]["closed_by"] == "ops"
    text = keys_file[0].read_text()
    assert live.key not in text and live.key.split(".")[1] not in text
    assert text.startswith("ops:scrypt$")
    assert live.key.split(".")[1] not in caplog.text
    audit = live.conn.execute("SELECT key_name, action, target, detail::text FROM "
                              "admin_audit").fetchall()
    assert audit == [("ops", "close_lot", live.lot("garage"),
                      '{"until": null, "reason": "works"}')]
    assert live.key.split(".")[1] not in json.dumps(audit)


def test_a_closure_reaches_lot_state_and_the_stream_and_ingest_keeps_it(live: Live) -> None:
    now = utc_now()
    live.count("garage", 10, now)
    stream = live.stream(f"?lots={live.lot('garage')}")
    assert stream.lots(1)[live.lot("garage")]["status"] == "open"
    until = now + timedelta(hours=2)
    closed = live.admin("POST", f"/lots/{live.lot('garage')}/close",
                        json={"reason": "Bauarbeiten", "until": iso(until)})
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    assert stream.lots(1)[live.lot("garage")]["status"] == "closed"
    assert live.status("garage") == "closed"
    public = httpx.get(f"{live.url}/v1/lots/{live.lot('garage')}", timeout=5).json()
    assert (public["status"], public["free"]) == ("closed", None)
    # Ingest derives closed too: new counts and its stale check leave the closure in force.
    later = now + timedelta(seconds=5)
    live.writer.write(live.conn, [counter(live.city, "garage", 20, later)], later)
    assert live.status("garage") == "closed"
    live.writer.refresh(live.conn, later + timedelta(seconds=1))
    assert live.status("garage") == "closed"
    # ... until ``until`` has passed.
    live.writer.refresh(live.conn, until + timedelta(seconds=1))
    assert live.status("garage") == "unknown"  # the count is stale by then
    assert [stream.lots(1)[live.lot("garage")]["status"] for _ in range(2)] == [
        "closed", "unknown"]  # ingest's NOTIFYs

    live.admin("POST", f"/lots/{live.lot('garage')}/close", json={"reason": "Markt"})
    assert stream.lots(1)[live.lot("garage")]["status"] == "closed"
    opened = live.admin("POST", f"/lots/{live.lot('garage')}/open")
    assert opened.status_code == 200 and opened.json() == {
        "lot_id": live.lot("garage"), "status": "open", "closure": None}
    assert stream.lots(1)[live.lot("garage")]["status"] == "open"
    assert live.status("garage") == "open"
    public = httpx.get(f"{live.url}/v1/lots/{live.lot('garage')}", timeout=5).json()
    assert (public["status"], public["free"]) == ("open", 80)

    gone = live.admin("POST", "/lots/nowhere/close", json={"reason": "x"})
    assert gone.status_code == 404 and gone.json()["status"] == 404
    past = live.admin("POST", f"/lots/{live.lot('garage')}/close",
                      json={"reason": "x", "until": iso(now - timedelta(hours=1))})
    assert past.status_code == 422 and "until" in past.json()["detail"]


class Recorder:
    """A sign driver that keeps what it was asked to show."""

    def __init__(self) -> None:
        self.shown: list[SignContent] = []

    async def push(self, sign: Sign, content: SignContent) -> Ack:
        self.shown.append(content)
        return Ack()

    async def close(self) -> None:
        pass


def test_a_sign_override_is_shown_streamed_and_cleared(live: Live, settings: Settings) -> None:
    recorder = Recorder()
    service = SignageService(settings.model_copy(update={
        "SIGNAGE_METRICS_PORT": 0, "SIGNAGE_RESYNC_S": 30.0}), live.city,
        drivers=Drivers({"http": lambda: recorder}))
    runner = threading.Thread(target=service.run, daemon=True)
    runner.start()
    sign = f"{live.city.id}-vms-1"
    try:
        wait_for(lambda: recorder.shown, timeout=10)
        assert recorder.shown[-1].lines[0].text == "--"  # the garage was never counted
        stream = live.stream(f"?signs={sign}")
        body = {"lines": [{"text": "Umleitung"}], "reason": "Stadtfest",
                "until": iso(utc_now() + timedelta(hours=1))}
        set_at = time.monotonic()
        override = live.admin("POST", f"/signs/{sign}/override", json=body)
        assert override.status_code == 200, override.text
        assert override.json()["lines"] == [
            {"label": "Zentrum", "arrow": "left", "text": "Umleitung"}]
        wait_for(lambda: recorder.shown[-1].lines[0].text == "Umleitung", timeout=2)
        assert time.monotonic() - set_at < 1.5
        shown = [json.loads(stream.next(timeout=3)["data"])["content"]["lines"][0]["text"]
                 for _ in range(2)]  # the rendered content may come first
        assert "Umleitung" in shown

        cleared = live.admin("DELETE", f"/signs/{sign}/override")
        assert cleared.status_code == 200 and cleared.json()["lines"] is None
        wait_for(lambda: recorder.shown[-1].lines[0].text == "--", timeout=2)

        too_long = live.admin("POST", f"/signs/{sign}/override", json={
            **body, "lines": [{"text": "x" * 30}]})
        assert too_long.status_code == 422
        two = live.admin("POST", f"/signs/{sign}/override", json={
            **body, "lines": [{"text": "a"}, {"text": "b"}]})
        assert two.status_code == 422 and "1 lines" in two.json()["detail"]
    finally:
        service.stop()
        runner.join(15)
    assert service.exit_code == 0


def with_a_new_lot(city_path: Path, city_id: str) -> str:
    """Write the test city's config with one more lot (a counter lot of 30); its id."""
    city_path.write_text(city_toml(city_id) + f"""
[[lots]]
id = "{city_id}-new"
name = "Neuer Parkplatz"
kind = "surface"
counting = "counter"
capacity = 30
latitude = 51.054
longitude = 12.144
""", encoding="utf-8")
    return f"{city_id}-new"


def test_reload_takes_a_changed_config_and_refuses_a_broken_one(
        live: Live, city_path: Path) -> None:
    with_a_new_lot(city_path, live.city.id)
    reloaded = live.admin("POST", "/reload")
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json() == {"cities": [{"city": live.city.id, "lots": 5, "signs": 1}]}
    assert live.conn.execute("SELECT capacity FROM lots WHERE lot_id = %s",
                             (live.lot("new"),)).fetchone() == (30,)
    stream = live.stream(f"?lots={live.lot('new')}")
    assert stream.lots(1)[live.lot("new")]["capacity"] == 30

    city_path.write_text("[city]\nid = 'broken", encoding="utf-8")
    refused = live.admin("POST", "/reload")
    assert refused.status_code == 422 and "old ones stay" in refused.json()["detail"]
    assert len(live.app.state.cities.all[0].lots) == 5


def test_rate_limits_answer_429_with_retry_after(settings: Settings,
                                                 keys_file: tuple[Path, str]) -> None:
    limited = settings.model_copy(update={
        "API_KEYS_FILE": keys_file[0], "API_RATE_PER_IP": 0.1, "API_BURST_PER_IP": 6,
        "API_RATE_PER_KEY": 0.1, "API_BURST_PER_KEY": 2})
    with TestClient(create_app(limited)) as client:
        headers = {"X-API-Key": keys_file[1]}
        answers = [client.post("/v1/admin/lots/nowhere/open", headers=headers).status_code
                   for _ in range(3)]
        assert answers == [404, 404, 429]  # the key's bucket
        answers = [client.get("/openapi.json").status_code for _ in range(4)]
        assert answers == [200, 200, 200, 429]  # the address's bucket: 6 in all
        too_many = client.get("/openapi.json")
        assert too_many.status_code == 429 and int(too_many.headers["retry-after"]) >= 1
        assert too_many.headers["content-type"] == "application/problem+json"
        assert too_many.json()["status"] == 429


def test_keys_are_added_by_the_cli_and_revoked_without_a_restart(
        settings: Settings, keys_file: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, ops = keys_file
    assert main(["api", "add-key", "night-shift", "--file", str(path)]) == 0
    night = capsys.readouterr().out.strip()
    assert night.startswith("night-shift.") and night not in path.read_text()
    assert main(["api", "add-key", "night-shift", "--file", str(path)]) == 2
    with TestClient(create_app(settings.model_copy(update={"API_KEYS_FILE": path}))) as client:
        def answer(key: str) -> int:
            response = client.post("/v1/admin/lots/nowhere/open", headers={"X-API-Key": key})
            return int(response.status_code)

        assert (answer(ops), answer(night)) == (404, 404)  # past the key check
        path.write_text("".join(line + "\n" for line in path.read_text().splitlines()
                                if not line.startswith("ops:")))
        assert (answer(ops), answer(night)) == (403, 404)
        path.write_text("ops:not-a-hash\n")
        assert answer(night) == 503
