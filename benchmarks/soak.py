"""Soak test: the whole stack under a city load with every fault on, while the broker, the
database and each service are restarted once. Nothing lost, nothing duplicated, no service left
dead, memory flat.

``python -m benchmarks.soak [--minutes 10] [--speed 10] [--json] [--keep]``

All of it private to the run:

1. starts its own PostgreSQL (``PrivatePostgres``) and Mosquitto (``PrivateBroker``, tuned
   config) on free ports, so that it can stop and start them; migrates, syncs the Zeitz
   registry (``cities/zeitz.toml`` with its signs moved to free ports), backfills three weeks
   of history up to the simulator's start and trains the forecaster;
2. starts, each as a process of its own: ``parkleit ingest``, ``simulate signs``, ``signage``,
   ``forecast serve`` and ``api``, then the city simulator (``run_city`` with every fault on,
   the ground truth in ``truth.csv``). ``--speed 10`` runs the city ten times faster than real
   time from ``(speed - 1) x minutes`` ago, so that simulated time reaches the present as the
   run ends (never ahead of it: ingest refuses readings from the future). Until then a lot
   whose newest reading is older than its stale limit is unknown (its sign line ``--``, no
   forecast); ``--speed 1`` is Zeitz as it is, some 20 messages a minute;
3. after a warm-up (a tenth of the run, at least 30 s) and spaced out over the next half, once
   each: restarts the broker, stops PostgreSQL for 10 s, stops ingest, signage, the forecaster
   and the API with SIGTERM and starts them again, and kills ingest with SIGKILL and starts it
   again; after each it times until every service answers again. The rest of the run is
   quiet, so the memory of the last processes is watched for a while;
4. every ``--sample-s``: whether each process lives, its RSS (``/proc/<pid>/status``) and
   whether it answers as its container health check asks (ingest and signage ``/metrics``,
   the API ``/healthz``, the forecaster its retained MQTT status ``online``, the sign
   simulators their HTTP port);
5. at the end stops the simulator (which waits for its PUBACKs), lets ingest drain and
   accounts for every message the simulator published and the broker acknowledged: its
   readings in ``bay_events``, ``lot_occupancy`` (counter readings) and ``sensor_health``, or
   its dead letter when it was malformed on purpose. The messages are the simulator's feed
   generated again (same city, start, seed and faults: the same messages) up to the number it
   published; the simulator's report checks the count per kind.

Mosquitto 2.0 does not persist shared subscriptions: after its restart, a message published
before ingest has subscribed again reaches no one (PUBACK 0x10, "No matching subscribers"). The
simulator publishes such messages again (``simulators._mqtt.RoutedPublisher``); the report
counts them.

It reports; it does not judge: the exit code is 0 whether or not the targets are met, 1 when
the soak itself failed (a server would not start, the simulator died, ...). ``PARKLEIT_INGEST_*``,
``PARKLEIT_SIGNAGE_*`` and ``PARKLEIT_FORECAST_*`` variables are passed on to the services.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import logging
import multiprocessing.connection
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg

from benchmarks import _common as common
from benchmarks._common import BenchError, fmt, met
from core.city import City, load_city
from core.clock import Clock
from core.db import create_database, migrate, queries
from core.mqtt import mqtt_client
from core.registry import sync_registry
from core.settings import Settings
from ingest import BayReading, CounterReading, DecodeError, Decoder, HealthReading
from parkleit.embedded import LOOPBACK, PrivateBroker, PrivatePostgres, free_port, tcp_answers
from parkleit.healthcheck import check_http
from parkleit.process import ROOT, ParkleitProcess
from simulators.city import CityFeed, CityReport, FaultConfig, SimMessage, run_city
from simulators.history import backfill_history

__all__ = ["Result", "city_toml", "main", "run"]

logger = logging.getLogger("benchmarks.soak")

CITY = ROOT / "cities" / "zeitz.toml"
SEED = 7
FAULTS = "all"
HISTORY_WEEKS = 3.0  # the gradient-boosting forecaster needs 14 days
BROKER_DOWN_S = 2.0
DATABASE_DOWN_S = 10.0
RECOVERY_TIMEOUT_S = 120.0
DRAIN_IDLE_S = 20.0  # the drain ends when nothing new arrives for this long
DRAIN_TIMEOUT_S = 180.0
PROBE_TIMEOUT_S = 2.0
TARGET_RSS_GROWTH = 0.20
INGEST_CLIENT_ID = "soak-ingest-1"
PASSED_ON = ("PARKLEIT_INGEST_", "PARKLEIT_SIGNAGE_", "PARKLEIT_FORECAST_")
# Every restart in the plan, in order: (name, what is done).
PLAN = (
    ("broker", "restart the broker (SIGTERM, down 2 s)"),
    ("ingest", "SIGTERM ingest, start it again"),
    ("database", "stop PostgreSQL (fast), down 10 s"),
    ("signage", "SIGTERM signage, start it again"),
    ("forecast", "SIGTERM the forecaster, start it again"),
    ("api", "SIGTERM the API, start it again"),
    ("ingest-kill", "kill -9 ingest, start it again"),
)
_SIGN_PORT = re.compile(r"((?:udp|http)://127\.0\.0\.1:)(\d+)")


# --------------------------------------------------------------------------- the city


def city_toml(source: Path = CITY) -> str:
    """The city config with each sign simulator port moved to a free one (http signs that
    share a server keep sharing it): the demo or another run may hold the usual ones."""
    moved: dict[str, int] = {}

    def move(match: re.Match[str]) -> str:
        port = moved.setdefault(match[2], free_port())
        return f"{match[1]}{port}"

    return _SIGN_PORT.sub(move, source.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- services


class Service:
    """One long-running ``parkleit`` subcommand as a process that can be stopped and started
    again; every generation's output goes to the same log."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path,
                 probe: Callable[[], bool], ready: str | None = None) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        self.probe = probe  # answers as its health check asks
        self.ready = ready  # a log line that says it is up (else: the probe)
        self.child: ParkleitProcess | None = None
        self.started_at = 0.0  # monotonic
        self.generations = 0
        self.deliberate = False  # stopped on purpose (until started again)
        self.unexpected: list[str] = []  # exits nobody asked for
        self._offset = 0  # of this generation's output in the log

    def start(self) -> None:
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        self.child = ParkleitProcess(self.args, self.env, self.log, name=self.name).start()
        self.started_at = time.monotonic()
        self.generations += 1
        self.deliberate = False

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return None if self.child is None else self.child.proc

    def tail(self, lines: int = 20) -> str:
        return "(not started)" if self.child is None else self.child.tail(lines)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def answers(self) -> bool:
        return self.alive and self.probe()

    def wait_ready(self, timeout: float) -> float:
        """Seconds until it is up (its ready line, else its probe); BenchError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                raise BenchError(f"{self.name} exited while starting:\n{self.tail()}")
            if self.ready is not None:
                with self.log.open("rb") as log:
                    log.seek(self._offset)
                    up = self.ready.encode() in log.read()
            else:
                up = self.probe()
            if up:
                return time.monotonic() - self.started_at
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} not up within {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.2)

    def terminate(self, timeout: float = 60.0) -> tuple[int | None, float]:
        """SIGTERM and wait: the exit code (None: killed after ``timeout``) and the seconds."""
        assert self.child is not None
        self.deliberate = True
        began = time.monotonic()
        code = self.child.stop(timeout)
        return (None if code == -signal.SIGKILL else code), time.monotonic() - began

    def kill(self) -> int | None:
        assert self.child is not None
        self.deliberate = True
        self.child.kill()
        return self.child.returncode

    def rss_kb(self) -> int | None:
        """Resident set size now (VmRSS), None when it is not running."""
        if not self.alive or self.pid is None:
            return None
        return common.status_kb(self.pid, "VmRSS")


def _http_probe(url: str) -> Callable[[], bool]:
    return lambda: check_http(url, timeout=PROBE_TIMEOUT_S) is None


class StatusWatch:
    """Subscribes to the retained ``parkleit/v1/{city}/services/+`` statuses (every service's
    last will says ``offline``), reconnecting after broker restarts."""

    def __init__(self, broker: PrivateBroker, city_id: str) -> None:
        self.status: dict[str, str] = {}
        self._lock = threading.Lock()
        topic = f"parkleit/v1/{city_id}/services/+"
        client = mqtt_client(Settings(MQTT_URL=broker.url), f"soak-watch-{secrets.token_hex(3)}")
        client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 2)
        client.connect(LOOPBACK, broker.port, keepalive=15)
        client.loop_start()
        self._client = client

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.status[msg.topic.rsplit("/", 1)[1]] = msg.payload.decode(errors="replace")

    def online(self, name: str) -> bool:
        with self._lock:
            return self.status.get(name) == "online"

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


# --------------------------------------------------------------------------- the simulator


def _simulate(mqtt_url: str, city_path: str, start: datetime, speed: float, truth: str,
              log: str, stop: ProcessEvent, out: multiprocessing.connection.Connection) -> None:
    """Child process: ``run_city`` until ``stop``; its report (or the error) to ``out``."""
    logging.basicConfig(filename=log, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def simulate() -> CityReport:
        halt = threading.Event()

        def relay() -> None:  # run_city waits on a threading.Event
            stop.wait()
            halt.set()

        threading.Thread(target=relay, name="soak-stop", daemon=True).start()
        return run_city(Settings(MQTT_URL=mqtt_url, CITY=city_path), load_city(city_path),
                        start=start, speed=speed, duration_s=0, seed=SEED,
                        faults=FaultConfig.parse(FAULTS), truth_path=Path(truth),
                        stop_event=halt)

    common.report_through(out, simulate)


class Simulator(common.Child):
    """The city simulator in a process of its own (it publishes; this one measures)."""

    def __init__(self, broker: PrivateBroker, city_path: Path, start: datetime, speed: float,
                 tmp: Path) -> None:
        self._stop = multiprocessing.get_context("spawn").Event()
        self.truth, self.log = tmp / "truth.csv", tmp / "simulator.log"
        super().__init__("city simulator", _simulate, broker.url, str(city_path), start,
                         speed, str(self.truth), str(self.log), self._stop)

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def rss_kb(self) -> int | None:
        return common.status_kb(self.process.pid, "VmRSS") if self.process.pid else None

    def stop(self, timeout: float = 150.0) -> CityReport:
        """Stop publishing; the report once every PUBACK is in (run_city waits for them)."""
        self._stop.set()
        if not self.reported(timeout):
            raise BenchError(f"the simulator did not report within {timeout:.0f} s")
        report = self.receive()
        assert isinstance(report, CityReport)
        return report


# --------------------------------------------------------------------------- sampling


@dataclass
class Sample:
    at_s: float
    pid: int | None
    alive: bool
    answers: bool
    rss_kb: int | None


class Monitor:
    """Samples every service every ``interval`` seconds in a thread of its own; notes exits
    nobody asked for."""

    def __init__(self, services: list[Service], simulator: Simulator, began: float,
                 interval: float) -> None:
        self.services, self.simulator = services, simulator
        self.began, self.interval = began, interval
        self.samples: dict[str, list[Sample]] = {s.name: [] for s in services}
        self.samples[simulator.name] = []
        self.load: list[float] = []
        self._reported: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-monitor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        at = time.monotonic() - self.began
        for service in self.services:
            process = service.process
            alive = service.alive
            if (process is not None and not alive and not service.deliberate
                    and process.pid not in self._reported):
                self._reported.add(process.pid)
                service.unexpected.append(f"pid {process.pid} exited with {process.returncode}"
                                          f" at {at:.0f} s")
                logger.error("%s exited unexpectedly (%s):\n%s", service.name,
                             process.returncode, service.tail())
            answers = alive and service.probe()
            self.samples[service.name].append(Sample(at, service.pid, alive, answers,
                                                     service.rss_kb()))
        alive = self.simulator.alive
        self.samples[self.simulator.name].append(Sample(at, self.simulator.process.pid, alive,
                                                        alive, self.simulator.rss_kb()))
        self.load.append(os.getloadavg()[0])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)


# --------------------------------------------------------------------------- accounting


@dataclass
class Accounting:
    """Every published message against the database."""

    published: int = 0
    as_readings: int = 0  # messages all of whose readings are stored
    as_dead_letters: int = 0  # malformed messages whose dead letter is stored
    lost: int = 0  # messages with a reading or dead letter missing
    lost_examples: list[str] = field(default_factory=list)
    duplicated: int = 0  # rows twice, or rows nobody published
    duplicated_examples: list[str] = field(default_factory=list)
    unexpected_dead_letters: int = 0  # dead letters of messages that were not malformed
    unexpected_reasons: list[str] = field(default_factory=list)
    dead_letter_repeats: int = 0  # occurrences above the copies published (redeliveries)
    malformed_published: int = 0
    bay_readings: int = 0
    counter_readings: int = 0
    health_readings: int = 0


Key = tuple[str, datetime]
DeadKey = tuple[str, bytes]


@dataclass
class _Expected:
    readings: list[tuple[list[tuple[str, Key]], DeadKey | None, SimMessage]]
    bays: set[Key]
    counters: set[Key]
    health: set[Key]
    dead: Counter[DeadKey]


def expected_of(city: City, messages: list[SimMessage]) -> _Expected:
    """What ingest makes of each message: its readings' keys, or its dead letter."""
    decoder = Decoder(city)
    out = _Expected([], set(), set(), set(), Counter())
    for message in messages:
        try:
            readings = decoder.decode(message.topic, message.payload, message.time)
        except DecodeError:
            dead = (message.topic, hashlib.sha256(message.payload).digest())
            out.dead[dead] += 1
            out.readings.append(([], dead, message))
            continue
        keys: list[tuple[str, Key]] = []
        for reading in readings:
            if isinstance(reading, BayReading):
                keys.append(("bay", (reading.bay_id, reading.time)))
                out.bays.add((reading.bay_id, reading.time))
            elif isinstance(reading, CounterReading):
                keys.append(("counter", (reading.lot_id, reading.time)))
                out.counters.add((reading.lot_id, reading.time))
            elif isinstance(reading, HealthReading):
                keys.append(("health", (reading.sensor_id, reading.time)))
                out.health.add((reading.sensor_id, reading.time))
        out.readings.append((keys, None, message))
    return out


def _stored(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    # Counter rows with entries: the re-zero rows ingest adds itself have none.
    q = queries("benchmarks")
    return {kind: conn.execute(q[f"soak_{name}"]).fetchall() for kind, name in (
        ("bay", "bay_events"), ("counter", "counter_readings"), ("health", "sensor_health"),
        ("dead", "dead_letters"))}


def account(expected: _Expected, stored: dict[str, Any]) -> Accounting:
    """Compare what was published with what is stored."""
    result = Accounting(published=len(expected.readings), bay_readings=len(expected.bays),
                        counter_readings=len(expected.counters),
                        health_readings=len(expected.health))
    present = {kind: {(str(a), b) for a, b in stored[kind]} for kind in ("bay", "counter",
                                                                         "health")}
    wanted = {"bay": expected.bays, "counter": expected.counters, "health": expected.health}
    dead = {(str(topic), bytes(digest)): (int(occurrences), str(reason))
            for topic, digest, occurrences, reason in stored["dead"]}
    for keys, dead_key, message in expected.readings:
        if "malformed" in message.faults:
            result.malformed_published += 1
        if dead_key is not None:
            if dead_key in dead:
                result.as_dead_letters += 1
            else:
                result.lost += 1
                result.lost_examples.append(f"dead letter of {message.topic} "
                                            f"({message.time:%H:%M:%S})")
            continue
        missing = [f"{kind} {key[0]} {key[1]:%H:%M:%S.%f}" for kind, key in keys
                   if key not in present[kind]]
        if missing:
            result.lost += 1
            result.lost_examples.append(f"{message.topic}: " + ", ".join(missing))
        else:
            result.as_readings += 1
    for kind, rows in present.items():
        twice = len(stored[kind]) - len(rows)
        extra = rows - wanted[kind]
        result.duplicated += twice + len(extra)
        result.duplicated_examples += [f"{kind} {a} {b:%H:%M:%S.%f} nobody published"
                                       for a, b in sorted(extra)[:5]]
        if twice:
            result.duplicated_examples.append(f"{kind}: {twice} rows twice")
    for dead_key, (occurrences, reason) in dead.items():
        copies = expected.dead.get(dead_key, 0)
        if not copies:
            result.unexpected_dead_letters += 1
            result.unexpected_reasons.append(f"{dead_key[0]}: {reason}")
        result.dead_letter_repeats += max(0, occurrences - copies) if copies else 0
    # A dead letter of a message not marked malformed is unexpected too (and lost as data).
    for _keys, dead_key, message in expected.readings:
        if dead_key is not None and "malformed" not in message.faults:
            result.unexpected_dead_letters += 1
            result.unexpected_reasons.append(f"{message.topic}: not malformed, refused")
    result.lost_examples = result.lost_examples[:10]
    result.duplicated_examples = result.duplicated_examples[:10]
    result.unexpected_reasons = result.unexpected_reasons[:10]
    return result


def published_messages(city: City, start: datetime, report: CityReport) -> list[SimMessage]:
    """The first ``report.published`` messages of the simulator's feed: what it sent."""
    feed = CityFeed(city, start, seed=SEED, faults=FaultConfig.parse(FAULTS))
    messages: list[SimMessage] = []
    for minute in feed:
        messages += minute.messages
        if len(messages) >= report.published:
            break
    messages = messages[:report.published]
    kinds = dict(sorted(Counter(m.kind for m in messages).items()))
    if kinds != report.by_kind:
        raise BenchError(f"the feed generated again differs from what the simulator sent: "
                         f"{kinds} != {report.by_kind}")
    return messages


def truth_deviation(truth: Path, conn: psycopg.Connection[Any]) -> tuple[float, int] | None:
    """Mean and worst |occupied - truth| over the lots with a count, at the last truth row."""
    with truth.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    last = max(row["time"] for row in rows)
    true = {row["lot_id"]: int(row["occupied"]) for row in rows if row["time"] == last}
    shown = dict(conn.execute(queries("benchmarks")["soak_lot_counts"]).fetchall())
    gaps = [abs(int(shown[lot]) - occupied) for lot, occupied in true.items() if lot in shown]
    return (sum(gaps) / len(gaps), max(gaps)) if gaps else None


# --------------------------------------------------------------------------- the result


@dataclass
class Disruption:
    name: str
    what: str
    at_s: float = 0.0
    took_s: float = 0.0  # the action itself (a stop, the time down, a start)
    exit_code: int | None = None  # of the service stopped
    recovered_s: float | None = None  # from its start until every service answered again
    error: str = ""


@dataclass
class ServiceFigures:
    name: str
    processes: int = 0
    alive_at_end: bool = False
    answering_at_end: bool = False
    answered_share: float = 0.0
    rss_warm_mb: float | None = None  # after warm-up (its first process)
    rss_end_mb: float | None = None
    rss_max_mb: float | None = None
    growth: float | None = None  # end against warm-up
    last_warm_mb: float | None = None  # its last process, after its own warm-up
    last_growth: float | None = None  # end against that
    last_watched_s: float = 0.0
    exit_at_end: int | None = None
    unexpected_exits: list[str] = field(default_factory=list)


@dataclass
class Result:
    """Every figure of one run."""

    minutes: float
    speed: float
    faults: str = FAULTS
    published: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    fault_effects: dict[str, int] = field(default_factory=dict)
    unacknowledged: int = 0
    republished: int = 0
    unrouted: int = 0
    simulated_from: str = ""
    simulated_to: str = ""
    accounting: Accounting = field(default_factory=Accounting)
    drain_s: float = 0.0
    disruptions: list[Disruption] = field(default_factory=list)
    services: list[ServiceFigures] = field(default_factory=list)
    signs_failing_at_end: list[str] = field(default_factory=list)
    forecast_lots: int = 0  # lots in the newest forecast run
    truth_mean_abs: float | None = None
    truth_worst_abs: int | None = None
    load_min: float = 0.0
    load_mean: float = 0.0
    load_max: float = 0.0
    cores: int = 0
    setup_s: float = 0.0
    elapsed_s: float = 0.0
    settings: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return common.figures(self)


# --------------------------------------------------------------------------- the run


def _env(db_url: str, broker: PrivateBroker, city_path: Path,
         ports: dict[str, int]) -> dict[str, str]:
    return common.service_env(
        PASSED_ON, DATABASE_URL=db_url, MQTT_URL=broker.url, CITY=str(city_path),
        INGEST_CLIENT_ID=INGEST_CLIENT_ID, INGEST_METRICS_PORT=str(ports["ingest"]),
        SIGNAGE_METRICS_PORT=str(ports["signage"]), API_HOST=LOOPBACK,
        API_PORT=str(ports["api"]),
        FORECAST_THREADS=os.environ.get("PARKLEIT_FORECAST_THREADS", "1"))


def _services(env: dict[str, str], tmp: Path, ports: dict[str, int], sign_port: int | None,
              watch: StatusWatch) -> list[Service]:
    def log(name: str) -> Path:
        return tmp / f"{name}.log"

    signs_probe = (lambda: tcp_answers(LOOPBACK, sign_port)) if sign_port else (lambda: True)
    return [
        Service("ingest", ["ingest"], env, log("ingest"),
                _http_probe(f"http://{LOOPBACK}:{ports['ingest']}/metrics"),
                ready="connected to MQTT"),
        Service("sign simulators", ["simulate", "signs"], env, log("signs"), signs_probe,
                ready="signs of"),
        Service("signage", ["signage"], env, log("signage"),
                _http_probe(f"http://{LOOPBACK}:{ports['signage']}/metrics"), ready="serving"),
        Service("forecast", ["forecast", "serve"], env, log("forecast"),
                lambda: watch.online("forecast"), ready="listening for lot changes"),
        Service("api", ["api"], env, log("api"),
                _http_probe(f"http://{LOOPBACK}:{ports['api']}/healthz")),
    ]


@contextlib.contextmanager
def _servers(tmp: Path) -> Iterator[tuple[PrivatePostgres, PrivateBroker, str]]:
    """PostgreSQL with a migrated database ``parkleit``, and Mosquitto; both on fixed ports."""
    postgres = PrivatePostgres(tmp / "postgres", port=free_port())
    try:
        try:
            admin = postgres.start()
        except RuntimeError as exc:
            raise BenchError(str(exc)) from None
        with common.private_broker(tmp / "broker", port=free_port()) as broker:
            create_database(admin, "parkleit")
            yield postgres, broker, common.with_database(admin, "parkleit")
    finally:
        with contextlib.suppress(RuntimeError):
            postgres.stop("fast")


def run(args: argparse.Namespace) -> Result:
    """One soak; raises BenchError when the soak itself fails."""
    began = time.monotonic()
    result = Result(minutes=args.minutes, speed=args.speed, cores=os.cpu_count() or 0)
    result.settings = common.passed_on(PASSED_ON)
    tmp = Path(tempfile.mkdtemp(prefix="parkleit-soak-"))
    tmp.chmod(0o755)  # the servers run as their own accounts when we are root
    duration = args.minutes * 60
    services: list[Service] = []
    simulator: Simulator | None = None
    watch: StatusWatch | None = None
    try:
        city_path = tmp / "zeitz.toml"
        city_path.write_text(city_toml(), encoding="utf-8")
        city = load_city(str(city_path))
        sign_ports = [int(m[2]) for m in _SIGN_PORT.finditer(city_path.read_text())
                      if m[1].startswith("http")]
        with _servers(tmp) as (postgres, broker, db_url):
            start = Clock().now() - timedelta(seconds=(args.speed - 1) * duration)
            with psycopg.connect(db_url, autocommit=True) as conn:
                migrate(conn)
                sync_registry(conn, city)
                backfill_history(conn, city, end=start - timedelta(minutes=5),
                                 weeks=HISTORY_WEEKS)
            ports = {name: free_port() for name in ("ingest", "signage", "api")}
            env = _env(db_url, broker, city_path, ports)
            _train(env, tmp)
            watch = StatusWatch(broker, city.id)
            services[:] = _services(env, tmp, ports, sign_ports[0] if sign_ports else None,
                                    watch)
            for service in services:
                service.start()
                took = service.wait_ready(120)
                logger.info("%s up in %.1f s (pid %s)", service.name, took, service.pid)
            simulator = Simulator(broker, city_path, start, args.speed, tmp)
            result.setup_s = time.monotonic() - began
            logger.info("simulating %s from %s at speed %g for %.1f min; setup took %.0f s",
                        city.id, start.isoformat(timespec="seconds"), args.speed,
                        args.minutes, result.setup_s)
            _soak(args, result, services, simulator, postgres, broker, city, db_url, start)
            for service in services:
                figures = next(f for f in result.services if f.name == service.name)
                figures.exit_at_end, _ = service.terminate()
    finally:
        for service in services:
            if service.child is not None:
                service.child.close()
        if simulator is not None:
            simulator.close()
        if watch is not None:
            watch.close()
        common.discard(tmp, args.keep)
    result.elapsed_s = time.monotonic() - began
    return result


def _train(env: dict[str, str], tmp: Path) -> None:
    """Train the forecaster once, so ``forecast serve`` starts forecasting at once."""
    began = time.monotonic()
    with (tmp / "train.log").open("ab") as out:
        done = subprocess.run([sys.executable, "-m", "parkleit", "forecast", "train"], env=env,
                              cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=900,
                              check=False)
    if done.returncode != 0:
        raise BenchError("forecast train failed:\n" + (tmp / "train.log").read_text()[-2000:])
    logger.info("forecaster trained in %.0f s", time.monotonic() - began)


def _soak(args: argparse.Namespace, result: Result, services: list[Service],
          simulator: Simulator, postgres: PrivatePostgres, broker: PrivateBroker, city: City,
          db_url: str, start: datetime) -> None:
    duration = args.minutes * 60
    t0 = time.monotonic()
    monitor = Monitor(services, simulator, t0, args.sample_s)
    warmup = max(30.0, 0.1 * duration)
    plan = [Disruption(name, what) for name, what in PLAN if name in args.restarts]
    spacing = (0.6 * duration - warmup) / max(len(plan), 1)
    by_name = {service.name: service for service in services}
    try:
        for index, disruption in enumerate(plan):
            _sleep_until(t0 + warmup + spacing * (index + 0.5), simulator)
            disruption.at_s = time.monotonic() - t0
            logger.info("disruption %d of %d at %.0f s: %s", index + 1, len(plan),
                        disruption.at_s, disruption.what)
            _disrupt_and_recover(disruption, by_name, postgres, broker)
            result.disruptions.append(disruption)
        _sleep_until(t0 + duration, simulator)
        monitor.sample()  # the last sample: the end of the run
    finally:
        monitor.close()
    for service in services:
        result.services.append(_figures(service, monitor.samples[service.name], warmup))
    result.services.append(_figures(None, monitor.samples[simulator.name], warmup,
                                    name=simulator.name))
    loads = monitor.load or [os.getloadavg()[0]]
    result.load_min, result.load_max = min(loads), max(loads)
    result.load_mean = sum(loads) / len(loads)

    _account_at_end(result, simulator, city, db_url, start)
    for service in services:
        figures = next(f for f in result.services if f.name == service.name)
        figures.alive_at_end, figures.answering_at_end = service.alive, service.answers()
        figures.unexpected_exits = list(service.unexpected)


def _disrupt_and_recover(disruption: Disruption, services: dict[str, Service],
                         postgres: PrivatePostgres, broker: PrivateBroker) -> None:
    """Carry out ``disruption`` and time until every service answers again (at most its own
    time and RECOVERY_TIMEOUT_S); a disruption that fails is noted in it, not raised."""
    began = time.monotonic()
    try:
        _disrupt(disruption, services, postgres, broker)
    except (BenchError, RuntimeError, subprocess.SubprocessError) as exc:
        disruption.error = str(exc).splitlines()[0]
        logger.error("%s failed: %s", disruption.name, exc)
    while time.monotonic() - began < disruption.took_s + RECOVERY_TIMEOUT_S:
        if all(service.answers() for service in services.values()):
            disruption.recovered_s = time.monotonic() - began
            break
        time.sleep(0.25)
    logger.info("%s: took %.1f s, exit %s, every service answering again after %s s",
                disruption.name, disruption.took_s, disruption.exit_code,
                "—" if disruption.recovered_s is None else f"{disruption.recovered_s:.1f}")


def _account_at_end(result: Result, simulator: Simulator, city: City, db_url: str,
                    start: datetime) -> None:
    """Stop the simulator and account for every message it published (waiting for ingest to
    drain), the signs failing, the forecast lots and the deviation from the ground truth."""
    logger.info("stopping the simulator; waiting for its PUBACKs")
    report = simulator.stop()
    result.published, result.by_kind = report.published, report.by_kind
    result.fault_effects = report.faults
    result.unacknowledged, result.republished = report.unacknowledged, report.republished
    result.unrouted = report.unrouted
    result.simulated_from = report.start.isoformat(timespec="seconds")
    result.simulated_to = report.end.isoformat(timespec="seconds")
    expected = expected_of(city, published_messages(city, start, report))
    drained = time.monotonic()
    with psycopg.connect(db_url, autocommit=True) as conn:
        accounting, last_change, last_lost = account(expected, _stored(conn)), drained, -1
        while accounting.lost and time.monotonic() - drained < DRAIN_TIMEOUT_S:
            if accounting.lost != last_lost:
                last_lost, last_change = accounting.lost, time.monotonic()
            elif time.monotonic() - last_change > DRAIN_IDLE_S:
                break
            time.sleep(1.0)
            accounting = account(expected, _stored(conn))
        time.sleep(1.0)  # anything arriving late would be a duplicate attempt
        result.accounting = account(expected, _stored(conn))
        result.drain_s = time.monotonic() - drained
        result.signs_failing_at_end = [
            f"{sign}: {error}" for sign, error in conn.execute(
                queries("benchmarks")["soak_signs_failing"])]
        row = conn.execute(queries("benchmarks")["soak_forecast_lots"]).fetchone()
        result.forecast_lots = int(row[0]) if row else 0
        deviation = truth_deviation(simulator.truth, conn)
        if deviation is not None:
            result.truth_mean_abs, result.truth_worst_abs = deviation


def _sleep_until(moment: float, simulator: Simulator) -> None:
    while (left := moment - time.monotonic()) > 0:
        if not simulator.alive:
            raise BenchError(f"the simulator died (exit {simulator.process.exitcode}):\n"
                             + simulator.log.read_text(errors="replace")[-2000:])
        time.sleep(min(left, 1.0))


def _disrupt(disruption: Disruption, services: dict[str, Service], postgres: PrivatePostgres,
             broker: PrivateBroker) -> None:
    began = time.monotonic()
    if disruption.name == "broker":
        broker.stop()
        time.sleep(BROKER_DOWN_S)
        broker.start()
    elif disruption.name == "database":
        postgres.stop("fast")
        time.sleep(DATABASE_DOWN_S)
        postgres.start()
    elif disruption.name == "ingest-kill":
        service = services["ingest"]
        disruption.exit_code = service.kill()
        service.start()
        service.wait_ready(120)
    else:
        service = services[disruption.name]
        disruption.exit_code, _ = service.terminate()
        service.start()
        service.wait_ready(120)
    disruption.took_s = time.monotonic() - began


def _figures(service: Service | None, samples: list[Sample], warmup: float,
             name: str = "") -> ServiceFigures:
    figures = ServiceFigures(service.name if service else name)
    if not samples:
        return figures
    figures.processes = len({s.pid for s in samples if s.pid is not None})
    figures.answered_share = sum(s.answers for s in samples) / len(samples)
    rss = [(s.at_s, s.pid, s.rss_kb) for s in samples if s.rss_kb is not None]
    if rss:
        warm = next((kb for at, _, kb in rss if at >= warmup), rss[-1][2])
        end_at, end_pid, end = rss[-1]
        figures.rss_warm_mb, figures.rss_end_mb = warm / 1024, end / 1024
        figures.rss_max_mb = max(kb for _, _, kb in rss) / 1024
        figures.growth = end / warm - 1
        last = [(at, kb) for at, pid, kb in rss if pid == end_pid]
        own = next(((at, kb) for at, kb in last if at - last[0][0] >= warmup), None)
        if own is not None and own[0] < end_at:
            figures.last_warm_mb = own[1] / 1024
            figures.last_growth = end / own[1] - 1
            figures.last_watched_s = end_at - own[0]
    return figures


# --------------------------------------------------------------------------- output


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:+.0%}"


def table(result: Result) -> str:
    """The human-readable report: each figure next to its target."""
    out = [f"parkleit soak: {result.minutes:g} min of Zeitz at speed {result.speed:g} "
           f"(simulated {result.simulated_from} .. {result.simulated_to}), faults: "
           f"{result.faults}; load average {result.load_min:.1f} .. {result.load_max:.1f} "
           f"(mean {result.load_mean:.1f}) on {result.cores} cores", "",
           *common.figure_table(_figures_met(result), measured=9, target=7),
           "", *_notes(result), "", *_disruption_table(result), "", *_service_table(result),
           "", "RSS in MB; warm = the first sample after the warm-up; a restarted service's "
           "end is its last process, whose own growth (after its own warm-up) is shown as "
           "well; 'answered' counts every sample, the disruptions included; 'took' is the "
           "disruption itself (stop, time down, start until up), 'every service answering "
           "again' counts from its start",
           f"setup {result.setup_s:.0f} s (servers, history, training, services); whole run "
           f"{result.elapsed_s:.0f} s"]
    return "\n".join(out + common.settings_line(result.settings))


def _figures_met(result: Result) -> list[tuple[str, str, str, str]]:
    """(figure, measured, target, met) of the soak."""
    a = result.accounting
    planned = len(result.disruptions)
    done = sum(1 for d in result.disruptions if not d.error and d.recovered_s is not None)
    services = [s for s in result.services if s.name != "city simulator"]
    up = sum(1 for s in services if s.answering_at_end)
    unexpected = sum(len(s.unexpected_exits) for s in services)
    flat = [s for s in services if s.growth is not None]
    return [
        ("messages published and acknowledged", f"{result.published:,}", "", ""),
        ("  stored as readings", f"{a.as_readings:,}", "", ""),
        ("  stored as dead letters (malformed on purpose)", f"{a.as_dead_letters:,}",
         f"{a.malformed_published:,}", met(a.as_dead_letters == a.malformed_published)),
        ("lost", f"{a.lost:,}", "0", met(a.lost == 0)),
        ("duplicated", f"{a.duplicated:,}", "0", met(a.duplicated == 0)),
        ("dead letters of messages not malformed", f"{a.unexpected_dead_letters:,}", "0",
         met(a.unexpected_dead_letters == 0)),
        ("not acknowledged by the broker", f"{result.unacknowledged:,}", "0",
         met(result.unacknowledged == 0)),
        ("published again (no matching subscribers)", f"{result.republished:,}", "", ""),
        ("given up (no subscriber)", f"{result.unrouted:,}", "0", met(result.unrouted == 0)),
        ("disruptions done and recovered from", f"{done}/{planned}", f"{planned}",
         met(done == planned)),
        ("services alive and answering at the end", f"{up}/{len(services)}",
         f"{len(services)}", met(up == len(services))),
        ("exits nobody asked for", f"{unexpected}", "0", met(unexpected == 0)),
        ("services with RSS growth < 20 % (end vs warm-up)",
         f"{sum(1 for s in flat if s.growth is not None and s.growth < TARGET_RSS_GROWTH)}"
         f"/{len(flat)}", f"{len(flat)}",
         met(all(s.growth is not None and s.growth < TARGET_RSS_GROWTH for s in flat))),
        ("signs failing at the end", f"{len(result.signs_failing_at_end)}", "0",
         met(not result.signs_failing_at_end)),
    ]


def _notes(result: Result) -> list[str]:
    """Readings, fault effects, the drain, the ground truth and examples of what went wrong."""
    a = result.accounting
    out = [f"readings: {a.bay_readings:,} bay, {a.counter_readings:,} counter, "
           f"{a.health_readings:,} sensor health; messages by kind: "
           + ", ".join(f"{k} {v:,}" for k, v in result.by_kind.items()),
           "fault effects: " + (", ".join(f"{k} {v}" for k, v in result.fault_effects.items())
                                or "none"),
           f"dead-letter occurrences above the copies published (redelivered after a "
           f"restart): {a.dead_letter_repeats}; drained in {result.drain_s:.0f} s; "
           f"lots in the newest forecast: {result.forecast_lots} (stale lots get none)"]
    if result.truth_mean_abs is not None:
        out.append(f"lot_state against the ground truth at the end: mean |occupied - truth| "
                   f"{result.truth_mean_abs:.1f} spaces, worst {result.truth_worst_abs} "
                   "(faults on: stuck sensors, drops, counter drift)")
    for label, examples in (("lost", a.lost_examples), ("duplicated", a.duplicated_examples),
                            ("unexpected dead letters", a.unexpected_reasons),
                            ("signs failing", result.signs_failing_at_end)):
        if examples:
            out.append(f"{label}: " + "; ".join(examples))
    return out


def _disruption_table(result: Result) -> list[str]:
    out = [f"{'disruption':<40}  {'at (s)':>6}  {'took (s)':>8}  {'exit':>4}  "
           "every service answering again (s)", f"{'-' * 40}  {'-' * 6}  {'-' * 8}  ----  "
           + "-" * 33]
    for d in result.disruptions:
        exit_code = "—" if d.exit_code is None else str(d.exit_code)
        out.append(f"{d.what:<40}  {d.at_s:>6.0f}  {d.took_s:>8.1f}  {exit_code:>4}  "
                   f"{fmt(d.recovered_s, 1)}{'  ' + d.error if d.error else ''}")
    return out


def _service_table(result: Result) -> list[str]:
    out = [f"{'service':<15}  {'procs':>5}  {'answered':>8}  {'RSS warm':>8}  "
           f"{'RSS end':>7}  {'growth':>6}  {'RSS max':>7}  {'last process':>22}  "
           "exit at end", f"{'-' * 15}  {'-' * 5}  {'-' * 8}  {'-' * 8}  {'-' * 7}  "
           f"{'-' * 6}  {'-' * 7}  {'-' * 22}  -----------"]
    for s in result.services:
        last = (f"{fmt(s.last_warm_mb, 1)} → {fmt(s.rss_end_mb, 1)} "
                f"{_pct(s.last_growth)} in {s.last_watched_s:.0f} s"
                if s.last_growth is not None else "—")
        exit_code = "—" if s.exit_at_end is None else str(s.exit_at_end)
        out.append(f"{s.name:<15}  {s.processes:>5}  {s.answered_share:>8.0%}  "
                   f"{fmt(s.rss_warm_mb, 1):>8}  {fmt(s.rss_end_mb, 1):>7}  "
                   f"{_pct(s.growth):>6}  {fmt(s.rss_max_mb, 1):>7}  {last:>22}  {exit_code}")
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = common.bench_parser("soak", "The whole stack under a city load with faults while "
                                 "the broker, the database and each service are restarted "
                                 "once.")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the run")
    parser.add_argument("--speed", type=float, default=10.0,
                        help="simulated time per real time; the simulator starts "
                        "(speed - 1) x minutes ago and reaches the present at the end")
    parser.add_argument("--sample-s", type=float, default=5.0,
                        help="seconds between samples of the services")
    parser.add_argument("--restarts", default=",".join(name for name, _ in PLAN),
                        type=lambda text: [part.strip() for part in text.split(",")
                                           if part.strip()],
                        help="which disruptions, in the plan's order (default all: "
                        + ", ".join(name for name, _ in PLAN) + ")")
    common.add_keep(parser, "logs, truth.csv, servers")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    unknown = set(args.restarts) - {name for name, _ in PLAN}
    if args.minutes <= 0 or args.speed < 1 or args.sample_s <= 0 or unknown:
        return common.refuse("soak", "--minutes and --sample-s must be > 0, --speed >= 1, "
                             f"--restarts from {', '.join(name for name, _ in PLAN)}")
    return common.run_main(lambda: run(args), as_json=args.json, to_json=Result.as_dict,
                           table=table, log=logger, what="soak")


if __name__ == "__main__":
    sys.exit(main())
