"""Ingest throughput: messages/s from MQTT to committed rows, next to a do-nothing subscriber.

``python -m benchmarks.ingest [--json] [--messages 200000] [--bays 2000] [--workers 1]``

What it does, all of it private to the run:

1. starts its own Mosquitto with the project's tuned config (``deploy/mosquitto/tuning.conf``),
   creates a database ``parkleit_bench_<random>`` on the PostgreSQL server at
   ``PARKLEIT_BENCH_DATABASE_URL`` (an admin URL; default the local ``postgres`` database),
   migrates it and syncs a synthetic city: ``--bays`` native bays in lots of 40, plus three
   counter-counted garages;
2. reference: a do-nothing paho-mqtt subscriber (MQTT v5, QoS 1, automatic acks) on the same
   broker receives the same load; its sustained messages/s is the ceiling of this machine,
   broker and publisher;
3. starts ``--workers`` ``parkleit ingest`` processes (one shared subscription) and publishes
   ``--messages`` messages as fast as the broker takes them (``simulators.load.run_load`` in
   a process of its own; every message a distinct (sensor, ts) and ``ts`` = publish time);
4. waits until every message is committed, then reports the written rate (messages / time
   from the first publish to the last commit), lost and duplicated messages, redeliveries,
   publish-to-commit latency and the peak RSS of the ingest processes;
5. stops the broker and the workers and drops the database.

Commit times: ``bay_events.received`` is ``now()`` of the inserting transaction, i.e. when it
began. The benchmark also LISTENs to ``parkleit_lot_state``, which ingest NOTIFYs inside each
batch transaction and PostgreSQL delivers at commit; a notification names a lot and its newest
reading, which identifies the transaction, so most transactions get their real commit time.
The rest get their start plus the median start-to-commit time of the others. Latency counts
from ``ts``, which the publisher sets before its client queues the message (up to 5,000
unacknowledged), so under a saturating load it includes that queue; the reference samples
the same publish-to-receive latency for comparison.

The publisher is one Python process; when it is slower than the subscriber, both rates are
its rate. ``--backlog`` publishes everything into the subscribers' persistent sessions first
and then measures how fast they drain it, with no publisher sharing the CPU; ``--rate N``
publishes at a fixed rate in both runs, for latency below saturation.

It reports; it does not judge: the exit code is 0 whether or not the targets are met, 1 when
the benchmark itself failed (a worker died, the database or broker would not start, ...).
Environment variables ``PARKLEIT_INGEST_*`` (e.g. ``PARKLEIT_INGEST_BATCH_SIZE``) are passed
on to the workers, so settings can be compared without editing code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import multiprocessing.connection
import re
import secrets
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from benchmarks import _common as common
from benchmarks._common import BenchError, Latency, NotifyListener, Service, fmt, met
from core.city import City, load_city
from core.db import migrate, queries
from core.registry import sync_registry
from core.settings import Settings
from parkleit.embedded import LOOPBACK, PrivateBroker, free_port

__all__ = ["BenchError", "Result", "city_toml", "main", "run"]

logger = logging.getLogger("benchmarks.ingest")

CITY_ID = "bench"
BAYS_PER_LOT = 40
COUNTER_LOTS = 3

LATENCY_SAMPLE_EVERY = 10
TARGET_RATE = 5000.0
TARGET_RATIO = 0.5
PASSED_ON = ("PARKLEIT_INGEST_",)  # variables passed on to the workers

_METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)$")


# --------------------------------------------------------------------------- the city


def city_toml(city_id: str, bays: int, *, per_lot: int = BAYS_PER_LOT,
              counter_lots: int = COUNTER_LOTS) -> str:
    """A synthetic city: ``bays`` native bays in lots of ``per_lot``, plus counter garages."""
    parts = [f'[city]\nid = "{city_id}"\nname = "Benchmarkstadt"\ntimezone = "Europe/Berlin"\n']
    sizes = [per_lot] * (bays // per_lot) + ([bays % per_lot] if bays % per_lot else [])
    for index, size in enumerate(sizes):
        lot_id = f"{city_id}-l{index:03d}"
        parts.append(
            f'[[lots]]\nid = "{lot_id}"\nname = "Parkplatz {index}"\nkind = "surface"\n'
            f'counting = "bays"\ncapacity = {size}\n'
            f"latitude = {51.0 + index * 1e-4:.6f}\nlongitude = {12.1 + index * 1e-4:.6f}\n"
            f'bay_groups = [{{ prefix = "{lot_id}", count = {size} }}]\n'
        )
    for index in range(counter_lots):
        parts.append(
            f'[[lots]]\nid = "{city_id}-garage{index}"\nname = "Parkhaus {index}"\n'
            f'kind = "garage"\ncounting = "counter"\ncapacity = 500\n'
            f"latitude = {51.1 + index * 1e-3:.6f}\nlongitude = {12.2 + index * 1e-3:.6f}\n"
            "counter_modulus = 65536\n"
        )
    return "\n".join(parts)


# --------------------------------------------------------------------------- the publisher


def _publisher(mqtt_url: str, city_path: str, bays: int, messages: int, rate: float,
               seed: int, out: multiprocessing.connection.Connection) -> None:
    """Child process: ``run_load`` as fast as the broker takes it; the report goes to ``out``."""
    from simulators.load import run_load

    def load() -> dict[str, Any]:
        settings = Settings(MQTT_URL=mqtt_url, CITY=city_path)
        city = load_city(city_path)
        began = time.time()
        report = run_load(settings, city, rate=rate, bays=bays, duration=0, seed=seed,
                          max_messages=messages)
        return {"published": report.published, "bay_messages": report.bay_messages,
                "counter_messages": report.counter_messages, "began": began,
                "unacknowledged": getattr(report, "unacknowledged", 0),
                "ended": time.time(), "elapsed_s": report.elapsed_s}

    common.report_through(out, load)


class Publisher(common.Child):
    """``run_load`` in a process of its own, so it does not share a GIL with measuring."""

    def __init__(self, mqtt_url: str, city_path: Path, bays: int, messages: int,
                 rate: float, seed: int) -> None:
        super().__init__("publisher", _publisher, mqtt_url, str(city_path), bays, messages,
                         rate, seed)
        self.report: dict[str, Any] | None = None

    def poll(self) -> dict[str, Any] | None:
        """The publisher's report once it is done; raises BenchError if it failed."""
        if self.report is None and (self.reported() or not self.process.is_alive()):
            self.report = self.receive()
        return self.report

    def wait(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (report := self.poll()) is None:
            if time.monotonic() > deadline:
                raise BenchError(f"the publisher did not finish within {timeout:.0f} s")
            time.sleep(0.05)
        return report


# --------------------------------------------------------------------------- reference


class NullSubscriber:
    """A do-nothing subscriber: MQTT v5, QoS 1, automatic acks; counts and timestamps.

    ``persistent`` keeps its session (and so its subscription and queued messages) at the
    broker while it is disconnected; a new instance with the same ``client_id`` takes it over.
    """

    def __init__(self, host: str, port: int, filters: list[str], client_id: str, *,
                 persistent: bool = False, subscribe: bool = True) -> None:
        self.count = 0
        self.latencies: list[float] = []
        self.first: float | None = None
        self.last: float | None = None
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        props = None
        if persistent:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 3600
        self.client.connect(host, port, keepalive=30, clean_start=not persistent,
                            properties=props)
        self.client.loop_start()
        if subscribe:
            self.client.subscribe([("$share/reference/" + f, SubscribeOptions(qos=1))
                                   for f in filters])
            if not self._subscribed.wait(10):
                self.close()
                raise BenchError("the reference subscriber got no SUBACK")

    def _on_message(self, _client: Any, _userdata: Any, msg: Any) -> None:
        now = time.time()
        if self.first is None:
            self.first = now
        self.last = now
        self.count += 1
        if self.count % LATENCY_SAMPLE_EVERY == 0:  # publish-to-receive, for a baseline
            with contextlib.suppress(ValueError, KeyError, TypeError):
                sent = datetime.fromisoformat(json.loads(msg.payload)["ts"]).timestamp()
                self.latencies.append(now - sent)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def measure_reference(broker: PrivateBroker, city: City, city_path: Path, *, bays: int,
                      messages: int, seed: int, idle_timeout: float, backlog: bool,
                      rate: float = 0.0) -> dict[str, Any]:
    """Sustained messages/s of a do-nothing subscriber under the same load.

    With ``backlog`` the messages are published first, while the subscriber is away, and
    the figure is how fast it drains them.
    """
    filters = [f"parkleit/v1/{city.id}/bays/+", f"parkleit/v1/{city.id}/lots/+/counter"]
    client_id = f"bench-reference-{secrets.token_hex(3)}"
    subscriber = NullSubscriber(LOOPBACK, broker.port, filters, client_id,
                                persistent=backlog)
    publisher = Publisher(broker.url, city_path, bays, messages, 0.0 if backlog else rate, seed)
    report: dict[str, Any] | None = None
    try:
        if backlog:
            subscriber.close()
            report = publisher.wait(3600)
            subscriber = NullSubscriber(LOOPBACK, broker.port, filters, client_id,
                                        persistent=True, subscribe=False)
        seen, progress_at = -1, time.monotonic()
        while True:
            report = report or publisher.poll()
            if report is not None and subscriber.count >= report["published"]:
                break
            if subscriber.count != seen:
                seen, progress_at = subscriber.count, time.monotonic()
            elif time.monotonic() - progress_at > idle_timeout:
                raise BenchError(f"the reference subscriber stalled at {seen} messages")
            time.sleep(0.05)
    finally:
        publisher.close()
        subscriber.close()
    assert subscriber.first is not None and subscriber.last is not None
    span = max(subscriber.last - subscriber.first, 1e-9)
    return {"messages": subscriber.count, "rate": subscriber.count / span, "elapsed_s": span,
            "publisher_rate": report["published"] / max(report["elapsed_s"], 1e-9),
            "latency": Latency.of([] if backlog else subscriber.latencies)}


# --------------------------------------------------------------------------- ingest workers


class Worker(Service):
    """One ``parkleit ingest`` process, with its metrics port."""

    def __init__(self, index: int, env: dict[str, str], log: Path) -> None:
        self.index, self.metrics_port, self.peak_rss_kb = index, free_port(), 0
        env = {**env, "PARKLEIT_INGEST_CLIENT_ID": f"bench-ingest-{index + 1}",
               "PARKLEIT_INGEST_METRICS_PORT": str(self.metrics_port)}
        super().__init__(f"ingest worker {index + 1}", ["parkleit", "ingest"], env, log)

    def metrics(self) -> dict[str, float]:
        """Its Prometheus metrics (label-less sums per name)."""
        url = f"http://{LOOPBACK}:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        found: dict[str, float] = {}
        for line in text.splitlines():
            match = _METRIC_LINE.match(line)
            if match and not line.startswith("#"):
                found[match[1]] = found.get(match[1], 0.0) + float(match[2])
        return found

    def read_peak_rss(self) -> int:
        """VmHWM of the process in kB (the kernel's peak resident set size)."""
        self.peak_rss_kb = common.status_kb(self.process.pid, "VmHWM") or self.peak_rss_kb
        return self.peak_rss_kb


def _metric(workers: list[Worker], name: str) -> float:
    return sum(w.metrics().get(name, 0.0) for w in workers)


# --------------------------------------------------------------------------- the run


@dataclass
class Result:
    """Every figure of one run."""

    messages: int
    bays: int
    workers: int
    mode: str = "live"
    rate: float = 0.0
    reference_rate: float | None = None
    ratio: float | None = None
    lost: int = 0
    duplicated: int = 0
    redelivered: int = 0
    superseded: int = 0
    latency: Latency = field(default_factory=Latency)  # publish → commit
    reference: Latency = field(default_factory=Latency)  # publish → receive
    peak_rss_mb: float = 0.0
    elapsed_s: float = 0.0
    published: int = 0
    bay_messages: int = 0
    counter_messages: int = 0
    rows: int = 0
    unacknowledged: int = 0
    publisher_rate: float = 0.0
    reference_publisher_rate: float | None = None
    latency_exact_share: float = 0.0
    dead_letters: int = 0
    db_errors: int = 0
    queue_full: int = 0
    peak_rss_mb_per_worker: list[float] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return common.figures(self)


def _counts(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    row = conn.execute(queries("benchmarks")["ingest_rows_written"]).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _wait_subscribed(workers: list[Worker], broker: PrivateBroker, city: City,
                     timeout: float) -> None:
    """Publish probes (unknown bay: dead letters) until every worker has received one."""
    client = common.connected(broker.url, "bench-probe")
    try:
        deadline = time.monotonic() + timeout
        probe = 0
        while True:
            received = [w.metrics().get("parkleit_ingest_messages_received_total", 0.0)
                        for w in workers]
            if all(received):
                return
            for w in workers:
                w.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"not every ingest worker received a probe within "
                                 f"{timeout:.0f} s (received: {received})")
            probe += 1
            client.publish(f"parkleit/v1/{city.id}/bays/bench-probe",
                           json.dumps({"probe": probe}), qos=1).wait_for_publish(5)
            time.sleep(0.1)
    finally:
        client.disconnect()
        client.loop_stop()


def _latency(conn: psycopg.Connection[Any], notes: list[tuple[float, str]]) -> dict[str, Any]:
    """Publish-to-commit percentiles over bay events, and the first publish / last commit."""
    rows = []
    for arrival, payload in notes:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            body = json.loads(payload)
            if body.get("updated"):
                rows.append((datetime.fromtimestamp(arrival, UTC), body["lot_id"],
                             datetime.fromisoformat(body["updated"])))
    conn.execute(queries("benchmarks")["notes_table"])
    with conn.cursor() as cur, cur.copy(queries("benchmarks")["notes_copy"]) as copy:
        for row in rows:
            copy.write_row(row)
    conn.execute(queries("benchmarks")["commit_times"])
    offset_row = conn.execute(queries("benchmarks")["commit_offset"]).fetchone()
    assert offset_row is not None
    found = conn.execute(queries("benchmarks")["publish_to_commit"],
                         {"offset": float(offset_row[0])}).fetchone()
    assert found is not None
    (p50, p99), worst, exact, first, last, first_received = found
    return {"latency": Latency(float(p50) * 1000, None, float(p99) * 1000, float(worst) * 1000),
            "exact": float(exact or 0.0),
            "first_publish": first, "last_commit": last, "first_received": first_received}


def run(args: argparse.Namespace) -> Result:
    """One benchmark run; raises BenchError when the benchmark itself fails."""
    result = Result(messages=args.messages, bays=args.bays, workers=args.workers,
                    mode="backlog" if args.backlog else "live")
    result.settings = common.passed_on(PASSED_ON)
    with (common.workdir("parkleit-bench-", args.keep) as tmp,
          common.private_broker(tmp / "broker") as broker,
          common.killed_at_end(list[Worker]()) as workers):
        city_path = tmp / f"{CITY_ID}.toml"
        city_path.write_text(city_toml(CITY_ID, args.bays), encoding="utf-8")
        city = load_city(str(city_path))
        logger.info("broker %s (%s, tuned config)", broker.url, broker.backend)
        with common.database(common.admin_url()) as db_url:
            with psycopg.connect(db_url, autocommit=True) as conn:
                migrate(conn)
                sync_registry(conn, city)
            logger.info("city %s: %d lots, %d bays", city.id, len(city.lots),
                        sum(1 for _ in city.bays()))
            if not args.no_reference:
                _reference_phase(args, result, broker, city, city_path)
            env = common.service_env(PASSED_ON, DATABASE_URL=db_url, MQTT_URL=broker.url,
                                     CITY=str(city_path))
            try:
                _ingest_phase(args, result, broker, city, city_path, db_url, env, tmp, workers)
            finally:
                common.stop_all(workers)
    return result


def _reference_phase(args: argparse.Namespace, result: Result, broker: PrivateBroker,
                     city: City, city_path: Path) -> None:
    logger.info("reference: do-nothing subscriber, %d messages", args.messages)
    ref = measure_reference(broker, city, city_path, bays=args.bays, messages=args.messages,
                            seed=args.seed + 1, idle_timeout=args.idle_timeout,
                            backlog=args.backlog, rate=args.rate)
    result.reference_rate = ref["rate"]
    result.reference_publisher_rate = ref["publisher_rate"]
    result.reference = ref["latency"]
    logger.info("reference: %.0f msg/s received (publisher %.0f msg/s)",
                ref["rate"], ref["publisher_rate"])


def _start_workers(args: argparse.Namespace, env: dict[str, str], tmp: Path,
                   workers: list[Worker], round_: int = 1) -> None:
    workers[:] = [Worker(i, env, tmp / f"ingest-{i + 1}.{round_}.log")
                  for i in range(args.workers)]
    for worker in workers:
        worker.wait_log("connected to MQTT", 60)


def _ingest_phase(args: argparse.Namespace, result: Result, broker: PrivateBroker, city: City,
                  city_path: Path, db_url: str, env: dict[str, str], tmp: Path,
                  workers: list[Worker]) -> None:
    """Start the workers (``workers`` is filled in for the caller to stop), load, measure."""
    _start_workers(args, env, tmp, workers)
    _wait_subscribed(workers, broker, city, 30)
    listener = NotifyListener(db_url)
    publisher: Publisher | None = None
    try:
        if args.backlog:
            for worker in workers:  # their sessions stay; the broker queues for them
                worker.stop()
            logger.info("ingest stopped; publishing %d messages into its session",
                        args.messages)
        publisher = Publisher(broker.url, city_path, args.bays, args.messages, args.rate,
                              args.seed)
        if args.backlog:
            publisher.wait(3600)
            _start_workers(args, env, tmp, workers, 2)
            logger.info("%d ingest worker(s) restarted: draining the backlog", len(workers))
        else:
            logger.info("%d ingest worker(s) subscribed; publishing %d messages",
                        len(workers), args.messages)
        _measure_ingest(args, result, publisher, db_url, workers, listener)
    finally:
        listener.close()
        if publisher is not None:
            publisher.close()


def _wait_written(args: argparse.Namespace, conn: psycopg.Connection[Any],
                  publisher: Publisher, workers: list[Worker]) -> dict[str, Any]:
    """Poll until every published message is committed (or nothing moves); the load report."""
    report: dict[str, Any] | None = None
    last_seen, progress_at = (-1, -1.0), time.monotonic()
    last_log = time.monotonic()
    while True:
        for worker in workers:
            worker.check_alive()
        report = report or publisher.poll()
        rows = sum(_counts(conn))
        written = superseded = 0.0
        if report is not None:  # (scraping costs the workers CPU: only near the end)
            written = _metric(workers, "parkleit_ingest_messages_written_total")
            superseded = _metric(workers, "parkleit_ingest_counter_superseded_total")
        if (rows, written) != last_seen:
            last_seen, progress_at = (rows, written), time.monotonic()
        if report is not None:
            published = report["published"]
            # ``written`` counts after commit; superseded counter readings may have no row.
            if rows >= published or (written >= published and rows + superseded >= published):
                return report
            stalled = time.monotonic() - progress_at
            if written >= published and stalled > 2:
                return report  # all committed at least once; the shortfall is real
            if stalled > args.idle_timeout:
                logger.warning("no progress for %.0f s; %d of %d messages written",
                               stalled, rows, published)
                for worker in workers:
                    logger.warning("log of ingest worker %d:\n%s", worker.index + 1,
                                   worker.tail())
                return report
        if time.monotonic() - last_log > 5:
            last_log = time.monotonic()
            logger.info("%d rows written%s", rows, "" if report else
                        " (publisher still running)")
        time.sleep(0.5)


def _measure_ingest(args: argparse.Namespace, result: Result, publisher: Publisher,
                    db_url: str, workers: list[Worker], listener: NotifyListener) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        report = _wait_written(args, conn, publisher, workers)
        # What the workers know; read before they stop.
        time.sleep(0.5)  # a last notification or two
        result.peak_rss_mb_per_worker = [w.read_peak_rss() / 1024 for w in workers]
        result.peak_rss_mb = max(result.peak_rss_mb_per_worker)
        written = _metric(workers, "parkleit_ingest_messages_written_total")
        result.superseded = int(_metric(workers, "parkleit_ingest_counter_superseded_total"))
        result.dead_letters = int(_metric(workers, "parkleit_ingest_dead_letters_total"))
        result.db_errors = int(_metric(workers, "parkleit_ingest_database_errors_total"))
        result.queue_full = int(_metric(workers, "parkleit_ingest_queue_full_total"))
        listener.close()

        result.published = published = report["published"]
        result.bay_messages = report["bay_messages"]
        result.counter_messages = report["counter_messages"]
        result.unacknowledged = int(report.get("unacknowledged", 0))
        result.publisher_rate = published / max(report["elapsed_s"], 1e-9)
        result.redelivered = int(written) - published
        row = conn.execute(queries("benchmarks")["ingest_rows_distinct"]).fetchone()
        assert row is not None
        bay_rows, bay_distinct, counter_rows, counter_distinct = (int(v) for v in row)
        distinct = bay_distinct + counter_distinct
        result.rows = bay_rows + counter_rows
        # A superseded counter reading (older than one the lot already applied) changes no
        # state and need not have a history row: the newer cumulative reading includes it.
        result.lost = (max(0, result.bay_messages - bay_distinct)
                       + max(0, result.counter_messages - counter_distinct - result.superseded))
        result.duplicated = (result.rows - distinct
                             + max(0, bay_distinct - result.bay_messages)
                             + max(0, counter_distinct - result.counter_messages))
        if not bay_distinct:
            return  # no bay event written: no commit times, rate 0
        lat = _latency(conn, listener.notes)
        result.latency_exact_share = lat["exact"]
        if args.backlog:  # from the start of the first transaction: no publisher involved
            span = (lat["last_commit"] - lat["first_received"]).total_seconds()
        else:
            span = (lat["last_commit"] - lat["first_publish"]).total_seconds()
            result.latency = lat["latency"]
        result.elapsed_s = span
        result.rate = distinct / max(span, 1e-9)
        if result.reference_rate:
            result.ratio = result.rate / result.reference_rate


# --------------------------------------------------------------------------- output


def table(result: Result) -> str:
    """The human-readable report: each figure next to its target and its reference."""
    backlog = result.mode == "backlog"
    span = "first commit to last commit" if backlog else "first publish to last commit"
    ratio_ok = None if result.ratio is None else result.ratio >= TARGET_RATIO
    # (figure, measured, target, met, reference: the do-nothing subscriber's figure)
    lines = [
        ("messages written / s", fmt(result.rate), f"≥ {TARGET_RATE:,.0f}",
         met(result.rate >= TARGET_RATE), f"{fmt(result.reference_rate)} received / s"),
        ("ratio to the reference", fmt(result.ratio, 2), f"≥ {TARGET_RATIO:.2f}",
         met(ratio_ok), ""),
        ("lost", f"{result.lost:,}", "0", met(result.lost == 0), ""),
        ("duplicated", f"{result.duplicated:,}", "0", met(result.duplicated == 0), ""),
        ("redelivered", f"{result.redelivered:,}", "", "", ""),
        ("latency p50, publish → commit (ms)", fmt(result.latency.p50_ms), "", "",
         f"{fmt(result.reference.p50_ms)} publish → receive"),
        ("latency p99, publish → commit (ms)", fmt(result.latency.p99_ms), "", "",
         f"{fmt(result.reference.p99_ms)} publish → receive"),
        ("peak RSS per worker (MB)", fmt(result.peak_rss_mb, 1), "", "", ""),
    ]
    head = (f"parkleit ingest benchmark ({result.mode}): {result.published:,} messages "
            f"({result.bay_messages:,} bay, {result.counter_messages:,} counter) from "
            f"{result.bays:,} bays, {result.workers} ingest worker(s)")
    out = [head, "", *common.figure_table(lines, measured=9, target=8,
                                   reference="reference (do-nothing subscriber)", rule=33)]
    out += [
        "",
        f"{span}: {result.elapsed_s:.1f} s for {result.rows:,} rows; publisher "
        f"{result.publisher_rate:,.0f} msg/s (in the reference run "
        f"{fmt(result.reference_publisher_rate)} msg/s)",
        f"superseded counter readings: {result.superseded:,}; dead letters: "
        f"{result.dead_letters:,} (probes); database errors: {result.db_errors:,}; queue "
        f"full: {result.queue_full:,}; unacknowledged to the publisher: "
        f"{result.unacknowledged:,}",
    ]
    if not backlog:
        out.append(f"commit times from NOTIFY for {result.latency_exact_share:.0%} of rows, "
                   "the rest estimated from their transaction start; latency includes the "
                   "publisher's own queue (up to 5,000 unacknowledged messages), as the "
                   "reference's does")
    return "\n".join(out + common.settings_line(result.settings))


def build_parser() -> argparse.ArgumentParser:
    parser = common.bench_parser("ingest", "Ingest throughput next to a do-nothing MQTT "
                                 "subscriber.")
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--bays", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="publish rate in messages/s for both runs (0 = as fast as the "
                        "broker takes them); below capacity, for latency figures")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--idle-timeout", type=float, default=60.0,
                        help="give up waiting after this many seconds without progress")
    parser.add_argument("--backlog", action="store_true",
                        help="publish everything first, then start the subscribers: how fast "
                        "they drain a backlog with no publisher sharing the CPU (no latency)")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the do-nothing subscriber (no ratio)")
    common.add_keep(parser, "logs, city, broker")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.messages < 1 or args.bays < 1 or args.workers < 1 or args.rate < 0:
        return common.refuse("ingest", "--messages, --bays and --workers must be >= 1, "
                             "--rate >= 0")
    return common.run_main(lambda: run(args), as_json=args.json, to_json=Result.as_dict,
                           table=table, log=logger)


if __name__ == "__main__":
    sys.exit(main())
