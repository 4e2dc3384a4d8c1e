"""Failover: the demo city with two of every service, and one of each disrupted in turn.

``python -m benchmarks.failover [--json] [--keep] [--messages 3000] [--kills-only]``

All of it private to the run: a database ``parkleit_bench_<random>`` on the server at
``PARKLEIT_BENCH_DATABASE_URL`` (an admin URL; default the local ``postgres`` database), its
own Mosquitto, the Zeitz config with its sign simulators on free ports. It starts, each as a
process of its own (``parkleit.process``): the sign simulators, two ``parkleit ingest`` workers
(one shared subscription), two ``parkleit signage`` instances (one leads, ``core.leader``) and
two ``parkleit api`` processes; a thread of its own changes the count of the Altmarkt garage
(three signs show it) twice a second over MQTT, as its counters would. Then, one after the
other:

1. **signage leader**: kill -9 the instance that leads. From ``sign_log`` (every push carries
   the term of the instance that made it): the seconds from the kill to the new term's first
   push (target 10 s), the longest time any sign went without a push or keep-alive around the
   kill (signs get a keep-alive every ``SIGNAGE_KEEPALIVE_S`` = 5 s here; reference: that plus
   the takeover), and the signs pushed by two terms at once - a push of the old term after the
   new term's first (target 0: the fencing of ``core.leader``);
2. **API process**: an SSE client reads ``/v1/stream`` of the garage from one API process, which
   is killed; like a browser's EventSource it reconnects to the other with ``Last-Event-ID``.
   Each change committed (heard here through ``parkleit_lot_state``) while the client was
   connected must have reached it, and the first event after the resume must carry the state
   of that moment: missed changes, target 0;
3. **ingest worker**: ``--messages`` bay messages (each a distinct bay and time) published at
   500/s (QoS 1); a worker is killed a second in and started again with its client id two
   seconds later (as its restart policy does). Lost (published, acknowledged by the broker, no
   row in ``bay_events``) and duplicated rows, target 0/0;
4. **database**: PostgreSQL down for 10 s (every connection cut) while ``--messages`` bay
   messages arrive, with two signage instances again (the killed leader's replacement): the
   seconds from its return to a leader's push (target 10 s), the longest time a sign went
   without a push (no leader acts without its database), the signs pushed by two terms at
   once (target 0), lost and duplicated rows (target 0/0);
5. **broker**: Mosquitto stopped for 2 s and started again while ``--messages`` bay messages
   arrive: lost and duplicated rows (target 0/0); the publisher sends again what got PUBACK
   "no matching subscribers", as an MQTT 5 sensor gateway does.

``--kills-only`` stops after the kills (1-3): the short run of tests/benchmarks (the database
outage and the broker restart of ingest are tests/system/test_reliability.py's).

It reports; it does not judge: the exit code is 0 whether or not the targets are met, 1 when
the benchmark itself failed. ``PARKLEIT_INGEST_*``, ``PARKLEIT_SIGNAGE_*``, ``PARKLEIT_API_*``
and ``PARKLEIT_LEADER_*`` variables are passed on to the services (the leadership's defaults:
a check a second, a lease of 5 s).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from benchmarks import _common as common
from benchmarks._common import BenchError, NotifyListener, Service, fmt, met
from benchmarks.soak import city_toml
from core.city import City, load_city
from core.clock import Clock
from core.db import migrate
from core.registry import sync_registry
from core.status import rfc3339
from parkleit.embedded import LOOPBACK, PrivateBroker, PrivatePostgres, free_port

__all__ = ["Result", "main", "run"]

logger = logging.getLogger("benchmarks.failover")

PASSED_ON = ("PARKLEIT_INGEST_", "PARKLEIT_SIGNAGE_", "PARKLEIT_API_", "PARKLEIT_LEADER_")
GARAGE = "zeitz-altmarkt"
KEEPALIVE_S = 5.0
CHANGE_EVERY_S = 0.5
TARGET_TAKEOVER_S = 10.0
TARGET_SIGN_GAP_S = KEEPALIVE_S + TARGET_TAKEOVER_S  # a keep-alive missed, then the takeover
PUBLISH_RATE = 500.0
NO_MATCHING_SUBSCRIBERS = 0x10
DATABASE_DOWN_S = 10.0
BROKER_DOWN_S = 2.0
CLOCK = Clock()


@dataclass
class Result:
    """The figures of one run (times in seconds)."""

    takeover_s: float | None = None
    longest_sign_gap_s: float | None = None
    signs_pushed_by_two_terms: int | None = None
    signs: int = 0
    old_term: int | None = None
    new_term: int | None = None
    stream_changes: int = 0  # changes committed while the client was connected
    stream_missed: int | None = None
    stream_resume_s: float | None = None  # from the kill to the first event on the other
    messages: int = 0  # bay messages of each ingest phase
    lost: int | None = None
    duplicated: int | None = None
    db_leads_after_s: float | None = None  # from the database's return to a leader's push
    db_longest_sign_gap_s: float | None = None
    db_signs_pushed_by_two_terms: int | None = None
    db_lost: int | None = None
    db_duplicated: int | None = None
    broker_lost: int | None = None
    broker_duplicated: int | None = None
    no_subscribers: int = 0  # PUBACKs "no matching subscribers" after the restart (sent again)
    kills_only: bool = False  # no database outage, no broker restart (their figures None)
    elapsed_s: float = 0.0
    settings: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- the load


class GarageCounter:
    """The garage's count, changed every ``CHANGE_EVERY_S`` (1, 2, 3, ...: each value once)
    from a thread of its own, as its entry and exit loops would."""

    def __init__(self, broker: PrivateBroker, city: City) -> None:
        self.topic = f"parkleit/v1/{city.id}/lots/{GARAGE}/counter"
        self._client = common.connected(broker.url, "failover-garage")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="garage", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        occupied = 0
        while not self._stop.wait(CHANGE_EVERY_S):
            occupied = occupied % 300 + 1
            body = {"occupied": occupied, "ts": rfc3339(CLOCK.now())}
            self._client.publish(self.topic, json.dumps(body), qos=1)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._client.disconnect()
        self._client.loop_stop()


class BayLoad:
    """``count`` bay messages, message ``i`` at ``base + i ms`` for bay ``i mod n`` (``base``
    ``phase`` hours ago): each (bay, time) once. A message counts as published once the broker
    acknowledged it; one that reached no subscriber (PUBACK 0x10, after a broker restart:
    docs/operations.md §3) is published again after a pause, as an MQTT 5 sensor gateway that
    reads reason codes does."""

    RESEND_AFTER_S = 0.5

    def __init__(self, broker: PrivateBroker, city: City, count: int, phase: int) -> None:
        bays = [bay.id for _, bay in city.bays() if bay.network == "native"]
        if not bays:
            raise BenchError(f"{city.id} has no native bay sensors")
        base = CLOCK.now().replace(microsecond=0) - timedelta(hours=phase)
        self.messages = [(bays[i % len(bays)], base + timedelta(milliseconds=i), i % 2 == 0)
                         for i in range(count)]
        self.city_id = city.id
        self.acknowledged: set[tuple[str, datetime]] = set()
        self.refused: list[int] = []  # reason codes >= 0x80
        self.no_subscribers = 0
        self._codes: dict[int, int] = {}
        self._lock = threading.Lock()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                   client_id=f"failover-bays-{phase}", protocol=mqtt.MQTTv5)
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        self._client.reconnect_delay_set(1, 2)
        self._client.on_publish = self._on_publish
        self._client.connect(LOOPBACK, broker.port, keepalive=30)
        self._client.loop_start()

    def _on_publish(self, _client: Any, _userdata: Any, mid: int, reason: Any,
                    _properties: Any) -> None:
        with self._lock:
            self._codes[mid] = int(reason.value)

    def _send(self, index: int) -> int:
        bay, moment, occupied = self.messages[index]
        body = {"occupied": occupied, "seq": index, "ts": rfc3339(moment)}
        mid: int = self._client.publish(f"parkleit/v1/{self.city_id}/bays/{bay}",
                                        json.dumps(body), qos=1).mid
        return mid

    def publish(self, rate: float) -> None:
        """Publish every message at ``rate`` per second; wait for their PUBACKs."""
        start, pending = time.monotonic(), {}
        for index in range(len(self.messages)):
            pending[self._send(index)] = index
            ahead = start + (index + 1) / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        deadline = time.monotonic() + 120
        while pending and time.monotonic() < deadline:
            time.sleep(self.RESEND_AFTER_S)
            with self._lock:
                answered = {mid: self._codes.pop(mid) for mid in list(pending)
                            if mid in self._codes}
            for mid, code in answered.items():
                index = pending.pop(mid)
                if code == 0:
                    bay, moment, _ = self.messages[index]
                    self.acknowledged.add((bay, moment))
                elif code == NO_MATCHING_SUBSCRIBERS:
                    self.no_subscribers += 1
                    pending[self._send(index)] = index
                else:
                    self.refused.append(code)
        if pending:
            raise BenchError(f"{len(pending)} bay messages without a PUBACK")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class StreamClient:
    """An SSE client of ``/v1/stream`` for the garage, in a thread: ``(time, data)`` of each
    lot event; on a broken stream it reconnects to ``fallback`` with ``Last-Event-ID``, as an
    EventSource behind a load balancer would."""

    def __init__(self, first: str, fallback: str) -> None:
        self.urls = [first, fallback]
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.connected_at: list[float] = []  # when each connection's first event came
        self.last_id: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sse", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for url in self.urls:
            headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
            with contextlib.suppress(httpx.HTTPError), \
                    httpx.Client(timeout=httpx.Timeout(5, read=10)) as client, client.stream(
                        "GET", f"{url}/v1/stream?lots={GARAGE}", headers=headers) as response:
                first = True
                for event in common.sse_events(response):
                    if self._stop.is_set():
                        return
                    if event.get("event") != "lot":
                        continue
                    now = time.time()
                    if first:
                        self.connected_at.append(now)
                        first = False
                    self.last_id = event.get("id", self.last_id)
                    self.events.append((now, json.loads(event["data"])))
            if self._stop.is_set():
                return
            time.sleep(0.5)  # the EventSource's retry

    def close(self) -> None:
        self._stop.set()
        self._thread.join(15)


class AckSampler:
    """Every sign's last acknowledged push (``sign_state.last_ack``: a change or a keep-alive;
    ``sign_log`` has rows for changes only), read four times a second from a thread: the
    moments of the pushes each sign confirmed. Rides out a database that is away."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.acks: dict[str, set[datetime]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="acks", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psycopg.OperationalError), psycopg.connect(
                    self.db_url, autocommit=True, connect_timeout=2) as conn:
                while not self._stop.wait(0.25):
                    for sign_id, last_ack in conn.execute(
                            "SELECT sign_id, last_ack FROM sign_state "
                            "WHERE last_ack IS NOT NULL").fetchall():
                        self.acks.setdefault(sign_id, set()).add(last_ack)
            self._stop.wait(0.25)

    def acked_since(self, moment: datetime) -> set[str]:
        """The signs that confirmed a push after ``moment``."""
        return {sign for sign, acks in list(self.acks.items()) if max(acks) > moment}

    def longest_gap(self, disrupted: datetime, ended: datetime) -> float:
        """The longest time any sign went without a confirmed push, from its last one before
        ``disrupted`` until ``ended``."""
        longest = 0.0
        for acks in list(self.acks.values()):
            ordered = sorted(acks)
            before = [moment for moment in ordered if moment <= disrupted]
            points = [*before[-1:], *(m for m in ordered if m > disrupted), ended]
            longest = max([longest] + [(b - a).total_seconds()
                                       for a, b in itertools.pairwise(points)])
        return longest

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


# --------------------------------------------------------------------------- the run


class Stack:
    """The services of the run, each a ``parkleit`` process with its log in ``tmp``."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp, self.env = tmp, env
        self.processes: list[Service] = []
        self.api_ports = [free_port(), free_port()]

    def start(self, name: str, args: list[str], **extra: str) -> Service:
        env = self.env | {f"PARKLEIT_{key}": value for key, value in extra.items()}
        service = Service(name, ["parkleit", *args], env, self.tmp / f"{name}.log")
        self.processes.append(service)
        return service

    def ingest(self, number: int) -> Service:
        service = self.start(f"ingest-{number}", ["ingest"],
                             INGEST_CLIENT_ID=f"failover-ingest-{number}",
                             INGEST_METRICS_PORT="0")
        service.wait_log("connected to MQTT", 60)
        return service

    def signage(self, number: int) -> Service:
        service = self.start(f"signage-{number}", ["signage"])
        service.wait_log("serving", 60)
        return service

    def close(self) -> None:
        for service in self.processes:
            service.close()


def run(args: argparse.Namespace) -> Result:
    began = time.monotonic()
    result = Result(messages=args.messages, kills_only=args.kills_only,
                    settings=common.passed_on(PASSED_ON))
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(common.workdir("parkleit-failover-", args.keep))
        tmp.chmod(0o755)  # the servers run as their own accounts when we are root
        city_path = tmp / "zeitz.toml"
        city_path.write_text(city_toml(), encoding="utf-8")
        city = load_city(str(city_path))
        result.signs = len(city.signs)
        postgres, db_url = stack.enter_context(common.private_postgres(tmp / "postgres"))
        with psycopg.connect(db_url, autocommit=True) as conn:
            migrate(conn)
            sync_registry(conn, city)
        broker = stack.enter_context(common.private_broker(tmp / "broker", port=free_port()))
        env = common.service_env(
            PASSED_ON, DATABASE_URL=db_url, MQTT_URL=broker.url, CITY=str(city_path),
            SIGNAGE_KEEPALIVE_S=str(KEEPALIVE_S), SIGNAGE_METRICS_PORT="0", API_HOST=LOOPBACK,
            API_RATE_PER_IP="0")
        services = Stack(tmp, env)
        stack.callback(services.close)
        listener = NotifyListener(db_url)
        stack.callback(listener.close)
        services.start("signs", ["simulate", "signs"]).wait_log("signs of", 60)
        ingest = [services.ingest(1), services.ingest(2)]
        signage = [services.signage(1), services.signage(2)]
        apis = [services.start(f"api-{n}", ["api", "--port", str(port)])
                for n, port in enumerate(services.api_ports, 1)]
        for port in services.api_ports:
            _wait_http(f"http://{LOOPBACK}:{port}/healthz", 60)
        garage = GarageCounter(broker, city)
        stack.callback(garage.close)
        acks = AckSampler(db_url)
        stack.callback(acks.close)
        logger.info("stack up in %.0f s", time.monotonic() - began)
        _signage_leader(result, db_url, signage, city, acks)
        if not args.kills_only:  # two again for the database outage: the killed one's successor
            signage.append(services.signage(3))
        _api_process(result, listener, apis, services.api_ports)
        listener.close()  # before the database goes away

        def kill_a_worker() -> None:
            ingest[0].kill()
            logger.info("killed ingest worker 1")
            time.sleep(2.0)
            services.ingest(1)  # its client id again: its session and queued messages

        result.lost, result.duplicated, _ = _bay_phase(
            broker, city, db_url, args.messages, 1, kill_a_worker)
        if not args.kills_only:
            _database_cut(result, postgres, broker, city, db_url, signage, acks, args.messages)
            _broker_restart(result, broker, city, db_url, args.messages)
    result.elapsed_s = time.monotonic() - began
    return result


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise BenchError(f"{url} did not answer within {timeout:.0f} s")


def _sign_log(db_url: str, since: datetime) -> list[tuple[datetime, str, int | None]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT time, sign_id, term FROM sign_log WHERE time >= %s "
                            "ORDER BY time", (since,)).fetchall()


def _leader(db_url: str, signage: list[Service]) -> tuple[int, Service] | None:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT term, holder FROM leader_terms WHERE service = 'signage'"
                           ).fetchone()
    if row is None:
        return None
    term, holder = row
    leading = [s for s in signage if s.returncode is None
               and holder.endswith(f"-{s.process.pid}")]
    return (int(term), leading[0]) if leading else None


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(psycopg.OperationalError):  # the database coming back
            value = predicate()
            if value:
                return value
        time.sleep(0.1)
    raise BenchError(f"{what} not within {timeout:.0f} s")


@dataclass
class SignFigures:
    """What the signs saw of one disruption."""

    old_term: int
    new_term: int = 0
    leads_after_s: float = 0.0  # from ``since`` to the new term's first push
    longest_gap_s: float = 0.0  # of any sign without a push, around the disruption
    two_terms: int = 0  # signs pushed by the old term after the new term's first push


def _steady_leader(db_url: str, signage: list[Service], city: City,
                   acks: AckSampler) -> tuple[int, Service]:
    """The leader, once every sign has confirmed a push of the last keep-alive cycle."""
    term, leader = _wait(lambda: _leader(db_url, signage), 30, "a signage leader")
    since = CLOCK.now()
    signs = {sign.id for sign in city.signs}
    _wait(lambda: acks.acked_since(since) >= signs, 3 * KEEPALIVE_S, "a push to every sign")
    return term, leader


def _sign_figures(db_url: str, city: City, acks: AckSampler, old_term: int,
                  disrupted: datetime, since: datetime) -> SignFigures:
    """Wait for the new term's first push after ``since`` (``sign_log``); then two keep-alive
    cycles more for the gaps."""
    figures = SignFigures(old_term)
    first_new = _wait(lambda: next((moment for moment, _, term in _sign_log(db_url, since)
                                    if term is not None and term > old_term), None), 60,
                      "a push of a new term")
    figures.leads_after_s = (first_new - since).total_seconds()
    time.sleep(2 * KEEPALIVE_S)  # the new leader's keep-alives
    ended = CLOCK.now()
    figures.longest_gap_s = acks.longest_gap(disrupted, ended)
    rows = _sign_log(db_url, disrupted - timedelta(seconds=3 * KEEPALIVE_S))
    figures.new_term = max(term or 0 for _, _, term in rows)
    for sign in {sign.id for sign in city.signs}:
        mine = [(moment, term or 0) for moment, sign_id, term in rows if sign_id == sign]
        new = [moment for moment, term in mine if term > old_term]
        if new and any(moment >= new[0] for moment, term in mine if term <= old_term):
            figures.two_terms += 1
    return figures


def _signage_leader(result: Result, db_url: str, signage: list[Service], city: City,
                    acks: AckSampler) -> None:
    """Kill -9 the signage leader: takeover, the longest gap of a sign, overlapping terms."""
    old_term, leader = _steady_leader(db_url, signage, city, acks)
    killed_at = CLOCK.now()
    leader.kill()
    logger.info("killed the signage leader (term %d)", old_term)
    figures = _sign_figures(db_url, city, acks, old_term, killed_at, killed_at)
    result.takeover_s, result.longest_sign_gap_s = figures.leads_after_s, figures.longest_gap_s
    result.signs_pushed_by_two_terms = figures.two_terms
    result.old_term, result.new_term = old_term, figures.new_term
    logger.info("signage: takeover %.1f s, longest gap %.1f s", result.takeover_s,
                result.longest_sign_gap_s)


def _database_cut(result: Result, postgres: PrivatePostgres, broker: PrivateBroker, city: City,
                  db_url: str, signage: list[Service], acks: AckSampler, count: int) -> None:
    """PostgreSQL down for ``DATABASE_DOWN_S`` (every connection cut) while sensors publish:
    the signs (a leader acts again after it is back), ingest (lost and duplicated rows)."""
    old_term, _ = _steady_leader(db_url, signage, city, acks)
    marks: dict[str, datetime] = {}

    def cut() -> None:
        marks["down"] = CLOCK.now()
        postgres.stop("fast")
        logger.info("database stopped")
        time.sleep(DATABASE_DOWN_S)
        try:
            postgres.start()
        except RuntimeError as exc:
            raise BenchError(str(exc)) from None
        marks["up"] = CLOCK.now()

    result.db_lost, result.db_duplicated, _ = _bay_phase(broker, city, db_url, count, 2, cut)
    figures = _sign_figures(db_url, city, acks, old_term, marks["down"], marks["up"])
    result.db_leads_after_s, result.db_longest_sign_gap_s = (figures.leads_after_s,
                                                             figures.longest_gap_s)
    result.db_signs_pushed_by_two_terms = figures.two_terms
    logger.info("database cut: a leader pushes %.1f s after it is back, longest sign gap "
                "%.1f s", figures.leads_after_s, figures.longest_gap_s)


def _broker_restart(result: Result, broker: PrivateBroker, city: City, db_url: str,
                    count: int) -> None:
    """The broker stopped for ``BROKER_DOWN_S`` and started again while sensors publish:
    lost and duplicated rows, and the messages sent again after PUBACK 0x10."""

    def restart() -> None:
        broker.stop()
        logger.info("broker stopped")
        time.sleep(BROKER_DOWN_S)
        broker.start()

    result.broker_lost, result.broker_duplicated, result.no_subscribers = _bay_phase(
        broker, city, db_url, count, 3, restart)


def _api_process(result: Result, listener: NotifyListener, apis: list[Service],
                 ports: list[int]) -> None:
    """Kill -9 the API process an SSE client reads from; it resumes on the other."""
    first, second = (f"http://{LOOPBACK}:{port}" for port in ports)
    client = StreamClient(first, second)
    try:
        _wait(lambda: len(client.events) >= 6, 30, "stream events")
        killed = time.time()
        apis[0].kill()
        logger.info("killed API process 1")
        _wait(lambda: len(client.connected_at) >= 2, 30, "the stream's resumption")
        time.sleep(5)
        ended = time.time()
    finally:
        client.close()
    resumed = client.connected_at[1]
    result.stream_resume_s = resumed - killed
    truth = [(moment, json.loads(payload)) for moment, payload in list(listener.notes)]
    truth = [(moment, state) for moment, state in truth if state.get("lot_id") == GARAGE]
    received = {state["occupied"] for _, state in client.events}
    connected = [(moment, state) for moment, state in truth
                 if client.connected_at[0] <= moment < ended - 1
                 and not killed - 0.5 <= moment < resumed]
    result.stream_changes = len(connected)
    missed = sum(1 for _, state in connected if state["occupied"] not in received)
    # The first event after the resumption carries the state of that moment, or a newer one.
    before = [state["occupied"] for moment, state in truth if moment < resumed - 0.5]
    first_after = next(state for moment, state in client.events if moment >= resumed)
    stale = bool(before) and first_after["occupied"] not in (
        {before[-1]} | {state["occupied"] for moment, state in truth if moment >= resumed - 0.5})
    result.stream_missed = missed + int(stale)
    logger.info("stream: %d changes while connected, %d missed", len(connected),
                result.stream_missed)


def _bay_phase(broker: PrivateBroker, city: City, db_url: str, count: int, phase: int,
               disrupt: Any) -> tuple[int, int, int]:
    """Publish ``count`` bay messages at ``PUBLISH_RATE``, ``disrupt()`` a second in: the
    lost and duplicated rows, and the PUBACKs "no matching subscribers" (sent again)."""
    load = BayLoad(broker, city, count, phase)
    failed: list[BaseException] = []

    def publish() -> None:
        try:
            load.publish(PUBLISH_RATE)
        except BaseException as exc:  # re-raised below
            failed.append(exc)

    publisher = threading.Thread(target=publish, name="bays", daemon=True)
    try:
        publisher.start()
        time.sleep(1.0)
        disrupt()
        publisher.join(180)
        if publisher.is_alive():
            raise BenchError("the bay messages were not all acknowledged in time")
        if failed:
            raise failed[0]
    finally:
        load.close()
    first, last = load.messages[0][1], load.messages[-1][1]

    def stored() -> list[tuple[str, datetime]]:
        with psycopg.connect(db_url) as conn:
            return conn.execute("SELECT bay_id, time FROM bay_events WHERE time BETWEEN %s "
                                "AND %s", (first, last)).fetchall()

    deadline = time.monotonic() + 90
    rows = _wait(stored, 30, "the database")
    while len(set(rows)) < len(load.acknowledged) and time.monotonic() < deadline:
        time.sleep(0.5)
        rows = stored()
    time.sleep(1.0)
    rows = stored()
    lost = len(load.acknowledged - set(rows)) + len(load.refused)
    duplicated = len(rows) - len(set(rows))
    logger.info("%d bay messages: %d lost, %d duplicated, %d sent again after 'no matching "
                "subscribers'", count, lost, duplicated, load.no_subscribers)
    return lost, duplicated, load.no_subscribers


# --------------------------------------------------------------------------- output


Row = tuple[str, str, str, str, str]  # figure, measured, target, met, reference


def table(result: Result) -> str:
    """The figures next to their targets (the outages' only where they were run)."""
    r = result
    rows = _kill_rows(r) if r.kills_only else _kill_rows(r) + _outage_rows(r)
    done = "killed" if r.kills_only else "disrupted"
    lines = [f"failover: two of every service, one {done} at a time ({r.elapsed_s:.0f} s)",
             "", *common.figure_table(rows, measured=9, target=8, reference="reference",
                                      rule=9),
             *common.settings_line(r.settings)]
    return "\n".join(lines)


def _kill_rows(r: Result) -> list[Row]:
    return [
        ("kill -9 signage leader: new leader pushes", f"{fmt(r.takeover_s, 1)} s",
         f"<= {TARGET_TAKEOVER_S:.0f} s", _at_most(r.takeover_s, TARGET_TAKEOVER_S),
         f"terms {r.old_term} -> {r.new_term}"),
        ("  longest time a sign had no push", f"{fmt(r.longest_sign_gap_s, 1)} s",
         f"<= {TARGET_SIGN_GAP_S:.0f} s", _at_most(r.longest_sign_gap_s, TARGET_SIGN_GAP_S),
         f"keep-alive every {KEEPALIVE_S:.0f} s, {r.signs} signs"),
        ("  signs pushed by two terms at once", fmt(r.signs_pushed_by_two_terms), "0",
         _at_most(r.signs_pushed_by_two_terms, 0), ""),
        ("kill -9 API process: SSE changes missed", fmt(r.stream_missed), "0",
         _at_most(r.stream_missed, 0),
         f"{r.stream_changes} changes; resumed after {fmt(r.stream_resume_s, 1)} s"),
        ("kill -9 ingest worker: lost / duplicated", *_none_lost(r.lost, r.duplicated),
         f"{r.messages} messages at {PUBLISH_RATE:.0f}/s"),
    ]


def _outage_rows(r: Result) -> list[Row]:
    db_gap_target = DATABASE_DOWN_S + TARGET_SIGN_GAP_S
    return [
        (f"database down {DATABASE_DOWN_S:.0f} s: a leader pushes",
         f"{fmt(r.db_leads_after_s, 1)} s", f"<= {TARGET_TAKEOVER_S:.0f} s",
         _at_most(r.db_leads_after_s, TARGET_TAKEOVER_S), "after it is back"),
        ("  longest time a sign had no push", f"{fmt(r.db_longest_sign_gap_s, 1)} s",
         f"<= {db_gap_target:.0f} s", _at_most(r.db_longest_sign_gap_s, db_gap_target),
         "no leader without its database"),
        ("  signs pushed by two terms at once", fmt(r.db_signs_pushed_by_two_terms), "0",
         _at_most(r.db_signs_pushed_by_two_terms, 0), ""),
        ("  ingest lost / duplicated", *_none_lost(r.db_lost, r.db_duplicated),
         f"{r.messages} messages"),
        (f"broker restart ({BROKER_DOWN_S:.0f} s): lost / dup.",
         *_none_lost(r.broker_lost, r.broker_duplicated),
         f"{r.no_subscribers} sent again after PUBACK 0x10"),
    ]


def _at_most(value: float | None, limit: float) -> str:
    return met(None if value is None else value <= limit)


def _none_lost(lost: int | None, duplicated: int | None) -> tuple[str, str, str]:
    return (f"{fmt(lost)} / {fmt(duplicated)}", "0 / 0",
            met(None if lost is None or duplicated is None else lost == duplicated == 0))


def main(argv: list[str] | None = None) -> int:
    parser = common.bench_parser("failover", "Kill -9 each of two signage, API and ingest "
                                 "processes in turn, then cut the database and restart the "
                                 "broker: takeover, gaps, missed and lost figures.")
    common.add_keep(parser, "the services' logs")
    parser.add_argument("--messages", type=int, default=3000,
                        help="bay messages published while an ingest worker is killed (and "
                        "again in each outage)")
    parser.add_argument("--kills-only", action="store_true",
                        help="only the kills (signage leader, API process, ingest worker): no "
                        "database outage, no broker restart")
    args = parser.parse_args(argv)
    if not 1000 <= args.messages <= 100_000:
        return common.refuse("failover", "--messages must be 1000..100000")
    return common.run_main(lambda: run(args), as_json=args.json, to_json=common.figures,
                           table=table, log=logger, quiet=("httpx",),
                           what="failover benchmark")


if __name__ == "__main__":
    raise SystemExit(main())
