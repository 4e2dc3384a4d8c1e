"""Crash safety of ingest against real services: every published message lands exactly once.

Each test runs ingest as a real process (``parkleit ingest``) against a broker of its own
(``PrivateBroker``: the shared one may have Mosquitto's default queue limits, and a killed
worker leaves its session behind), publishes a recorded QoS 1 load and then compares the
set of (bay_id, ts) published with the rows of ``bay_events`` (and the counter readings with
the ``source = 'counter'`` rows of ``lot_occupancy``). Every bay message has a unique
(bay_id, ts), so equal sets and equal counts mean: nothing lost, nothing twice.

Counter readings are cumulative: one that arrives after a newer reading of the same lot (two
workers committing side by side, messages published again) no longer changes the lot's state
(``parkleit_ingest_counter_superseded_total``) but still gets its history row. So every
reading must have its row, and each lot's newest reading must be shown in ``lot_state``.

What Mosquitto 2.0.x does, which these tests rely on or work around:
- A shared subscription (``$share/ingest/...``) of an offline persistent session keeps its
  turn in the round robin: messages are queued for that session and delivered when the
  worker comes back; they are not handed to the other members of the group.
- Shared subscriptions are not written to the persistence file (only ordinary ones are), so
  after a broker restart a worker's queued and in-flight messages survive, but its shared
  subscription exists again only once the worker has reconnected and subscribed. A message
  published in that gap reaches no one; the PUBACK says so (reason 0x10, "No matching
  subscribers"). The test publisher publishes such messages again.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import paho.mqtt.client as mqtt
import psycopg
import pytest
from _citytoml import write_city
from _helpers import ROOT, ServiceProcess, service_env, utc_now, wait_for
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.city import City, load_city
from core.db import create_database, migrate
from core.settings import Settings
from core.status import rfc3339
from parkleit.embedded import PrivateBroker, PrivatePostgres, free_port, tcp_answers
from simulators.load import run_load

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)

Spawn = Callable[..., ServiceProcess]
Key = tuple[str, datetime]

NO_MATCHING_SUBSCRIBERS = 0x10
COUNTER_EVERY = 7  # every 7th message is a garage counter reading
COUNTER_SPACING_S = 2  # between one counter reading and the next (of any lot)
SHUTDOWN_TIMEOUT_S = 5.0
WRITTEN = "parkleit_ingest_messages_written_total"
SUPERSEDED = "parkleit_ingest_counter_superseded_total"


# --------------------------------------------------------------------------- the load


class Publisher:
    """A recorded QoS 1 load, published from a thread at a fixed rate.

    Message ``i`` has the timestamp ``base + i ms``, so every (bay_id, ts) and every
    (lot_id, ts) is unique. A message counts as published once the broker acknowledged it.
    paho sends every unacknowledged QoS 1 message again after it reconnects (also those
    published while the connection was down); a PUBACK "No matching subscribers" is
    published again after a pause (see the module docstring).
    """

    MAX_OUTSTANDING = 2000
    RETRY_AFTER_S = 0.2

    def __init__(self, settings: Settings, city: City, *, count: int, rate: float) -> None:
        self.count, self.rate = count, rate
        self.bays: set[Key] = set()
        self.counters: set[Key] = set()
        self.no_subscribers = 0  # PUBACKs "No matching subscribers" (then published again)
        self.sent = 0  # messages handed to paho (first attempts)
        self.done = threading.Event()
        self._messages = self._build(city, count)
        self.number = {key: index for index, (_, _, key, _) in enumerate(self._messages)}
        self._lock = threading.Condition()
        self._pubacks: dict[int, int] = {}  # mid -> reason code, filled by paho's thread
        self._pending: dict[int, int] = {}  # mid -> message index, awaiting its PUBACK
        self._retry: list[tuple[float, int]] = []  # (when, message index)
        self._refused: list[str] = []
        self._error: BaseException | None = None
        self._stop = threading.Event()
        target = settings.mqtt
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                   client_id=f"load-{secrets.token_hex(4)}",
                                   protocol=mqtt.MQTTv5)
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        self._client.reconnect_delay_set(1, 2)
        self._client.on_publish = self._on_publish
        if target.username is not None:
            self._client.username_pw_set(target.username, target.password)
        self._client.connect(target.host, target.port, keepalive=30)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)

    def _build(self, city: City, count: int) -> list[tuple[str, str, Key, bool]]:
        bays = [bay.id for _, bay in city.bays() if bay.network == "native"]
        lots = [lot.id for lot in city.lots if lot.counting == "counter"]
        base = utc_now().replace(microsecond=0) - timedelta(hours=1)
        # A vehicle every COUNTER_SPACING_S at a lot at most, as a lane can pass them: readings
        # a restart delivers out of order are then no counter jump (ingest/_state.py).
        counters_from = base - timedelta(hours=1)
        entries = dict.fromkeys(lots, 0)
        messages = []
        for i in range(count):
            if i % COUNTER_EVERY == COUNTER_EVERY - 1:
                # Pairs of readings per lot: with two workers in turn, each gets some of each.
                lot = lots[(i // (2 * COUNTER_EVERY)) % len(lots)]
                entries[lot] += 1
                moment = counters_from + timedelta(seconds=COUNTER_SPACING_S * (i // COUNTER_EVERY))
                body: dict[str, Any] = {"entries": entries[lot], "exits": entries[lot] // 2,
                                        "ts": rfc3339(moment)}
                messages.append((f"parkleit/v1/{city.id}/lots/{lot}/counter", json.dumps(body),
                                 (lot, moment), True))
            else:
                moment = base + timedelta(milliseconds=i)
                bay = bays[i % len(bays)]
                body = {"occupied": i % 3 == 0, "seq": i, "ts": rfc3339(moment)}
                messages.append((f"parkleit/v1/{city.id}/bays/{bay}", json.dumps(body),
                                 (bay, moment), False))
        return messages

    def start(self) -> Publisher:
        self._thread.start()
        return self

    def join(self, timeout: float) -> None:
        """Wait until every message is acknowledged; re-raise what went wrong."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), (
            f"publisher not done after {timeout} s: {self.sent} of {self.count} sent, "
            f"{len(self._pending)} unacknowledged")
        if self._error is not None:
            raise self._error
        assert not self._refused, f"broker refused messages: {self._refused[:5]}"

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self._client.disconnect()
        self._client.loop_stop()

    # paho's network thread
    def _on_publish(self, _client: Any, _userdata: Any, mid: int, reason: Any,
                    _properties: Any) -> None:
        with self._lock:
            self._pubacks[mid] = int(reason.value)
            self._lock.notify_all()

    # the publisher thread
    def _run(self) -> None:
        try:
            start = time.monotonic()
            for index in range(self.count):
                if self._stop.is_set():
                    return
                self._publish(index)
                self.sent += 1
                self._settle()
                while len(self._pending) >= self.MAX_OUTSTANDING and not self._stop.is_set():
                    self._wait_and_settle()
                ahead = start + self.sent / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            while (self._pending or self._retry) and not self._stop.is_set():
                self._wait_and_settle()
        except BaseException as exc:
            self._error = exc
        finally:
            self.done.set()

    def _wait_and_settle(self) -> None:
        with self._lock:
            self._lock.wait(0.05)
        self._settle()

    def _publish(self, index: int) -> None:
        topic, payload, _key, _counter = self._messages[index]
        # Not under self._lock: paho calls on_publish while holding its own message lock.
        info = self._client.publish(topic, payload, qos=1)
        with self._lock:
            self._pending[info.mid] = index

    def _settle(self) -> None:
        """Book the PUBACKs received so far; publish again what reached no subscriber."""
        now = time.monotonic()
        with self._lock:
            for mid in [mid for mid in self._pubacks if mid in self._pending]:
                index, code = self._pending.pop(mid), self._pubacks.pop(mid)
                _topic, _payload, key, counter = self._messages[index]
                if code == NO_MATCHING_SUBSCRIBERS:
                    self.no_subscribers += 1
                    self._retry.append((now + self.RETRY_AFTER_S, index))
                elif code >= 0x80:
                    self._refused.append(f"{key}: reason {code:#x}")
                else:
                    (self.counters if counter else self.bays).add(key)
            due = [index for when, index in self._retry if when <= now]
            self._retry = [(when, index) for when, index in self._retry if when > now]
        for index in due:
            self._publish(index)


@pytest.fixture
def publishers() -> Iterator[list[Publisher]]:
    """Publishers of this test; their threads and clients are closed at the end."""
    started: list[Publisher] = []
    yield started
    for publisher in started:
        publisher.close()


# --------------------------------------------------------------------------- services


@pytest.fixture
def server_root() -> Iterator[Path]:
    """A directory for the private servers of this test, outside ``tmp_path``.

    Run as root, Mosquitto and PostgreSQL drop to their own accounts, which must be able to
    reach their directories; but every pytest session that starts strips the group and
    other bits of ``/tmp/pytest-of-<user>`` again, so a concurrent session would lock a
    running server out of its persistence file or data directory.
    """
    root = Path(tempfile.mkdtemp(prefix="parkleit-reliability-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def broker(server_root: Path) -> Iterator[PrivateBroker]:
    """A Mosquitto of this test's own, on a fixed free port (so a restart keeps it)."""
    private = PrivateBroker(server_root / "mosquitto", port=free_port())
    private.start()
    yield private
    private.stop()


@pytest.fixture
def big_city(tmp_path: Path) -> City:
    """The test city with 204 street bays, an id of its own."""
    return load_city(str(write_city(tmp_path, f"r{secrets.token_hex(4)}", extra_bays=200)))


@pytest.fixture
def rsettings(settings: Settings, broker: PrivateBroker, big_city: City,
              tmp_path: Path) -> Settings:
    """The test's settings on its private broker and its big city."""
    return settings.model_copy(update={
        "MQTT_URL": broker.url,
        "CITY": str(tmp_path / f"{big_city.id}.toml"),
        "INGEST_CLIENT_ID": f"ingest-{big_city.id}",
    })


def start_ingest(spawn: Spawn, settings: Settings, name: str = "ingest",
                 **extra: str) -> ServiceProcess:
    process = spawn(["ingest"], service_env(settings, **extra), name=name)
    process.wait_log("connected to MQTT", timeout=30)
    return process


def load(publishers: list[Publisher], settings: Settings, city: City, *, count: int,
         rate: float) -> Publisher:
    publisher = Publisher(settings, city, count=count, rate=rate)
    publishers.append(publisher)
    return publisher.start()


# --------------------------------------------------------------------------- checks


def bay_rows(db_url: str) -> int:
    with psycopg.connect(db_url, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM bay_events").fetchone()
    assert row is not None
    return int(row[0])


def assert_exactly_once(db_url: str, publisher: Publisher, *, timeout: float = 60) -> None:
    """Every message the publisher got acknowledged is stored, each exactly once."""
    expected = len(publisher.bays) + len(publisher.counters)
    assert expected == publisher.count

    def stored() -> tuple[list[Key], list[Key]]:
        with psycopg.connect(db_url, connect_timeout=5) as conn:
            bays = conn.execute("SELECT bay_id, time FROM bay_events").fetchall()
            counters = conn.execute(
                "SELECT lot_id, time FROM lot_occupancy WHERE source = 'counter'").fetchall()
        return bays, counters

    def complete(bays: list[Key], counters: list[Key]) -> bool:
        return len(bays) + len(counters) >= expected

    deadline = time.monotonic() + timeout
    while True:
        bays, counters = stored()
        if complete(bays, counters) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    time.sleep(0.5)  # anything arriving late would be a duplicate attempt or a stray row
    bays, counters = stored()
    missing_bays, extra_bays = publisher.bays - set(bays), set(bays) - publisher.bays
    missing_counters = publisher.counters - set(counters)
    lost = sorted(publisher.number[key] for key in missing_bays)
    assert not lost, (f"{len(lost)} bay messages lost, of message numbers "
                      f"{lost[:10]}...{lost[-10:]}")
    assert not extra_bays, f"{len(extra_bays)} rows nobody published"
    assert len(bays) == len(publisher.bays)
    assert set(counters) <= publisher.counters, "counter rows nobody published"
    assert len(counters) == len(set(counters))
    newest: dict[str, datetime] = {}
    for lot, moment in publisher.counters:
        newest[lot] = max(moment, newest.get(lot, moment))
    assert set(newest.items()) <= set(counters), "a lot's newest reading has no row"
    assert not missing_counters, (
        f"{len(missing_counters)} counter readings lost, of message numbers "
        f"{sorted(publisher.number[key] for key in missing_counters)[:20]}")
    with psycopg.connect(db_url, connect_timeout=5) as conn:
        dead = conn.execute("SELECT reason, topic FROM dead_letters LIMIT 5").fetchall()
        states: dict[str, datetime] = dict(conn.execute(
            "SELECT lot_id, counter_time FROM lot_state WHERE counter_time IS NOT NULL"
        ).fetchall())
    assert dead == []
    assert states == newest  # the lots show their newest reading


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not exported"
    return float(match[1])


# --------------------------------------------------------------------------- tests


def test_kill_9_mid_load_then_restart_loses_nothing(
        spawn: Spawn, rsettings: Settings, big_city: City, db_url: str,
        publishers: list[Publisher]) -> None:
    ingest = start_ingest(spawn, rsettings)
    publisher = load(publishers, rsettings, big_city, count=10_000, rate=2000)
    wait_for(lambda: publisher.sent >= 3000 and bay_rows(db_url) >= 1000, timeout=30,
             interval=0.02)
    ingest.kill()  # SIGKILL: whatever was received but not committed is unacknowledged
    sent, at_kill = publisher.sent, bay_rows(db_url)
    time.sleep(1.0)  # the load goes on; the broker queues it for the worker's session
    assert not publisher.done.is_set(), "the load ended before the restart"
    assert bay_rows(db_url) == at_kill
    start_ingest(spawn, rsettings, name="ingest-again")  # the same client id
    publisher.join(60)
    assert_exactly_once(db_url, publisher)
    logger.info("killed at %d sent, %d bay rows; %d bay + %d counter messages stored once",
                sent, at_kill, len(publisher.bays), len(publisher.counters))


def test_broker_restart_mid_load_loses_nothing(
        spawn: Spawn, rsettings: Settings, big_city: City, db_url: str,
        broker: PrivateBroker, publishers: list[Publisher]) -> None:
    metrics_port = free_port()
    ingest = start_ingest(spawn, rsettings, PARKLEIT_INGEST_METRICS_PORT=str(metrics_port))
    publisher = load(publishers, rsettings, big_city, count=10_000, rate=2000)
    wait_for(lambda: publisher.sent >= 3000 and bay_rows(db_url) >= 1000, timeout=30,
             interval=0.02)
    sent = publisher.sent
    port = broker.port
    broker.stop()  # SIGTERM: Mosquitto saves sessions and queued messages
    time.sleep(1.0)
    assert not publisher.done.is_set(), "the load ended before the broker restart"
    broker.start()
    assert broker.port == port
    publisher.join(90)
    # Messages published again after "No matching subscribers" arrive after newer ones.
    assert_exactly_once(db_url, publisher)
    logger.info("broker stopped at %d sent; %d PUBACKs 'no matching subscribers' "
                "(published again); %d counter readings superseded; %d messages", sent,
                publisher.no_subscribers, metric(metrics_port, SUPERSEDED), publisher.count)
    assert ingest.proc is not None and ingest.proc.poll() is None
    log = ingest.log.read_text()
    assert "MQTT connection lost" in log
    assert log.count("connected to MQTT") >= 2


@pytest.fixture
def private_db(server_root: Path) -> Iterator[tuple[PrivatePostgres, str]]:
    """A PostgreSQL of this test's own (it will be stopped) with a migrated database."""
    postgres = PrivatePostgres(server_root / "postgres", port=free_port())
    admin = postgres.start()
    try:
        create_database(admin, "parkleit")
        url = urlunsplit(urlsplit(admin)._replace(path="/parkleit"))
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, use_timescaledb=False)
        yield postgres, url
    finally:
        postgres.stop("immediate")


def test_database_down_10_s_mid_load_loses_nothing(
        spawn: Spawn, rsettings: Settings, big_city: City,
        private_db: tuple[PrivatePostgres, str], publishers: list[Publisher]) -> None:
    postgres, db_url = private_db
    settings = rsettings.model_copy(update={"DATABASE_URL": db_url})
    ingest = start_ingest(spawn, settings)
    assert ingest.proc is not None
    publisher = load(publishers, settings, big_city, count=14_000, rate=800)
    wait_for(lambda: publisher.sent >= 2500 and bay_rows(db_url) >= 1000, timeout=30,
             interval=0.02)
    sent = publisher.sent
    postgres.stop("fast")
    down_until = time.monotonic() + 10
    while time.monotonic() < down_until:
        assert ingest.proc.poll() is None, "ingest exited while the database was down"
        time.sleep(0.2)
    ingest.wait_log("retrying", timeout=1)
    assert not publisher.done.is_set(), "the load ended during the outage"
    postgres.start()
    back = time.monotonic()
    publisher.join(90)
    assert_exactly_once(db_url, publisher, timeout=90)
    assert ingest.proc.poll() is None
    logger.info("database stopped at %d sent, for 10 s; all %d messages stored %.1f s after "
                "it was back; %d retries logged", sent, publisher.count,
                time.monotonic() - back, ingest.log.read_text().count("retrying"))


def test_sigterm_while_the_database_is_down_still_exits_in_time(
        spawn: Spawn, rsettings: Settings, big_city: City,
        private_db: tuple[PrivatePostgres, str], publishers: list[Publisher]) -> None:
    """Draining cannot wait for a database that is away: past the deadline ingest exits,
    unacknowledged, and after a restart the broker delivers everything again."""
    postgres, db_url = private_db
    settings = rsettings.model_copy(update={"DATABASE_URL": db_url})
    env = {"PARKLEIT_SHUTDOWN_TIMEOUT_S": "3"}
    ingest = start_ingest(spawn, settings, **env)
    publisher = load(publishers, settings, big_city, count=3000, rate=1500)
    wait_for(lambda: bay_rows(db_url) >= 300, timeout=30, interval=0.02)
    postgres.stop("fast")
    ingest.wait_log("retrying", timeout=15)
    began = time.monotonic()
    assert ingest.terminate(timeout=15) == 0
    assert time.monotonic() - began < 3 + 7  # the deadline, plus one connection attempt
    assert "gave up on" in ingest.log.read_text()
    publisher.join(60)
    postgres.start()
    start_ingest(spawn, settings, name="ingest-again")
    assert_exactly_once(db_url, publisher)


@pytest.mark.parametrize("workers", [2, 4])
def test_workers_share_the_load(
        spawn: Spawn, rsettings: Settings, big_city: City, db_url: str,
        publishers: list[Publisher], workers: int) -> None:
    """N workers on one shared subscription: each message to exactly one of them, each
    worker a fair part (Mosquitto hands a shared subscription's messages round robin)."""
    ports = {name: free_port() for name in "abcdefgh"[:workers]}
    for name, port in ports.items():
        worker = rsettings.model_copy(
            update={"INGEST_CLIENT_ID": f"{rsettings.INGEST_CLIENT_ID}-{name}"})
        start_ingest(spawn, worker, name=f"ingest-{name}",
                     PARKLEIT_INGEST_METRICS_PORT=str(port))
    publisher = load(publishers, rsettings, big_city, count=10_000, rate=4000)
    publisher.join(60)
    # The workers commit concurrently, so a lot's counter readings can land out of order.
    assert_exactly_once(db_url, publisher)
    written = wait_for(
        lambda: (lambda w: w if sum(w.values()) >= publisher.count else None)(
            {worker: metric(port, WRITTEN) for worker, port in ports.items()}), timeout=10)
    assert sum(written.values()) == publisher.count, written  # each message to one worker
    for worker, count in written.items():
        assert count >= 0.5 * publisher.count / workers, (
            f"worker {worker} wrote only {count}: {written}")
    logger.info("written per worker: %s; superseded counter readings: %d", written,
                sum(metric(port, SUPERSEDED) for port in ports.values()))


def test_sigterm_mid_load_exits_0_and_restart_loses_nothing(
        spawn: Spawn, rsettings: Settings, big_city: City, db_url: str,
        publishers: list[Publisher]) -> None:
    timeout = str(SHUTDOWN_TIMEOUT_S)
    ingest = start_ingest(spawn, rsettings, PARKLEIT_SHUTDOWN_TIMEOUT_S=timeout)
    publisher = load(publishers, rsettings, big_city, count=20_000, rate=8000)
    wait_for(lambda: publisher.sent >= 4000 and bay_rows(db_url) >= 1000, timeout=30,
             interval=0.02)
    sent = publisher.sent
    assert not publisher.done.is_set()
    began = time.monotonic()
    code = ingest.terminate(timeout=SHUTDOWN_TIMEOUT_S + 10)
    took = time.monotonic() - began
    log = ingest.log.read_text()
    assert code == 0, log[-2000:]
    assert took < SHUTDOWN_TIMEOUT_S, f"shutdown took {took:.1f} s"
    draining = re.search(r"stopping: draining (\d+) queued messages", log)
    assert draining, log[-2000:]
    start_ingest(spawn, rsettings, name="ingest-again", PARKLEIT_SHUTDOWN_TIMEOUT_S=timeout)
    publisher.join(60)
    assert_exactly_once(db_url, publisher)
    logger.info("SIGTERM at %d sent, %s queued: exit 0 after %.2f s; %d messages stored once",
                sent, draining[1], took, publisher.count)


def test_load_generator_survives_a_broker_restart(
        rsettings: Settings, big_city: City, broker: PrivateBroker) -> None:
    """``run_load`` rides out a broker restart and paho sends what was not acknowledged."""
    received: set[bytes] = set()
    subscriber = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{big_city.id}",
                             protocol=mqtt.MQTTv5)
    subscribed = threading.Event()
    subscriber.on_connect = lambda client, *_: client.subscribe(
        f"parkleit/v1/{big_city.id}/#", qos=1)
    subscriber.on_subscribe = lambda *_: subscribed.set()
    subscriber.on_message = lambda _c, _u, message: received.add(
        message.topic.encode() + b" " + message.payload)
    subscriber.reconnect_delay_set(1, 2)
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600  # a plain (not shared) subscription is persisted
    subscriber.connect("127.0.0.1", broker.port, clean_start=False, properties=properties)
    subscriber.loop_start()
    outcome: dict[str, Any] = {}

    def generate() -> None:
        try:
            outcome["report"] = run_load(rsettings, big_city, rate=2000, bays=0, duration=0,
                                         max_messages=8000)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=generate, name="run_load")
    try:
        assert subscribed.wait(10)
        thread.start()
        wait_for(lambda: len(received) >= 2000, timeout=20, interval=0.02)
        broker.stop()
        time.sleep(1.0)
        broker.start()
        thread.join(60)
        assert not thread.is_alive()
        assert "error" not in outcome, outcome.get("error")
        report = outcome["report"]
        assert (report.published, report.unacknowledged) == (8000, 0)
        wait_for(lambda: len(received) >= 8000, timeout=20)
        assert len(received) == 8000
    finally:
        subscriber.disconnect()
        subscriber.loop_stop()
        if thread.is_alive():
            thread.join(60)


# ------------------------------------------------------- the production broker's restart


class ProductionBroker:
    """Mosquitto with deploy/mosquitto's mosquitto.conf, acl and tuning.conf (persistence,
    autosave) as docker-compose.yml mounts them: /mosquitto/ moved to ``root``, the service
    listener on ``port``, the device listener on another free port; users ``ingest`` and
    ``simulator``. ``restart`` stops it as ``docker compose restart`` does (SIGTERM: it saves
    its persistence file) and starts it again with the same config and port."""

    def __init__(self, root: Path) -> None:
        deploy = ROOT / "deploy" / "mosquitto"
        config, data = root / "config", root / "data"
        for directory in (config / "tuning", config / "conf.d", data):
            directory.mkdir(parents=True)
        shutil.copy(deploy / "acl", config / "acl")
        shutil.copy(deploy / "tuning.conf", config / "tuning" / "tuning.conf")
        self.port = free_port()
        text = (deploy / "mosquitto.conf").read_text(encoding="utf-8").replace(
            "/mosquitto/", f"{root}/")
        for shipped, port in ((1883, self.port), (1884, free_port())):
            assert f"\nlistener {shipped}\n" in text
            text = text.replace(f"\nlistener {shipped}\n", f"\nlistener {port} 127.0.0.1\n")
        (config / "mosquitto.conf").write_text(text, encoding="utf-8")
        self.passwords = {user: f"{user}-{secrets.token_hex(8)}" for user in ("ingest",
                                                                             "simulator")}
        passwords = config / "passwords"
        for user, password in self.passwords.items():
            subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if not passwords.exists()
                                                         else []), str(passwords), user,
                            password], check=True, capture_output=True, timeout=30)
        if os.geteuid() == 0:  # Mosquitto drops root: its files must be its account's
            account = pwd.getpwnam("mosquitto")
            for path in (data, passwords):
                os.chown(path, account.pw_uid, account.pw_gid)
        self.command = ["mosquitto", "-c", str(config / "mosquitto.conf")]
        self.log = root / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, user: str) -> str:
        return f"mqtt://{user}:{self.passwords[user]}@127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=log)
        process = self._process
        try:
            wait_for(lambda: tcp_answers("127.0.0.1", self.port) or process.poll() is not None,
                     timeout=15, interval=0.02)
            assert process.poll() is None, self.log.read_text(errors="replace")[-2000:]
        except AssertionError:
            self.stop()
            raise

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
        if self._process is not None:
            self._process.wait(30)
        self._process = None


@pytest.fixture
def production_broker(server_root: Path) -> Iterator[ProductionBroker]:
    if shutil.which("mosquitto") is None or shutil.which("mosquitto_passwd") is None:
        pytest.fail("needs mosquitto and mosquitto_passwd (Debian: package mosquitto)")
    broker = ProductionBroker(server_root / "production")
    broker.start()
    yield broker
    broker.stop()


def test_the_production_broker_restarted_mid_load_loses_nothing(
        spawn: Spawn, settings: Settings, big_city: City, db_url: str, tmp_path: Path,
        production_broker: ProductionBroker, publishers: list[Publisher]) -> None:
    """docker-compose.yml's Mosquitto (auth, ACL, persistence with autosave) restarted while
    ingest runs and sensors publish: the messages published while it was down (held by the
    publisher's client) and those queued for ingest's session when it stopped arrive once
    after the reconnection. What it takes: a clean stop (Mosquitto saves its sessions), and a
    publisher that sends again what arrived before ingest had subscribed again (PUBACK 0x10:
    Mosquitto does not persist shared subscriptions; docs/operations.md §3)."""
    city_file = str(tmp_path / f"{big_city.id}.toml")
    ingest_settings = settings.model_copy(update={
        "MQTT_URL": production_broker.url("ingest"), "CITY": city_file,
        "INGEST_CLIENT_ID": f"ingest-{big_city.id}"})
    sensors = settings.model_copy(update={"MQTT_URL": production_broker.url("simulator"),
                                          "CITY": city_file})
    ingest = start_ingest(spawn, ingest_settings)
    publisher = load(publishers, sensors, big_city, count=6000, rate=1000)
    wait_for(lambda: publisher.sent >= 1500 and bay_rows(db_url) >= 500, timeout=30,
             interval=0.02)
    production_broker.stop()
    sent_at_stop = publisher.sent
    time.sleep(2.0)  # the sensors go on publishing into their client's queue
    published_while_down = publisher.sent - sent_at_stop
    assert published_while_down > 0, "nothing published while the broker was down"
    assert not publisher.done.is_set(), "the load ended before the broker came back"
    production_broker.start()
    publisher.join(90)
    assert_exactly_once(db_url, publisher)
    logger.info("production broker down at %d sent, %d published while it was down; %d PUBACKs"
                " 'no matching subscribers' (published again)", sent_at_stop,
                published_while_down, publisher.no_subscribers)
    assert ingest.returncode is None
    assert ingest.log.read_text().count("connected to MQTT") >= 2
