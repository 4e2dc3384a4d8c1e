"""OCPP central system under load: many charge points connected at once, each sending a status
every few seconds.

``python -m benchmarks.ocpp [--json] [--stations 1000] [--interval 10] [--duration 60]``

What it does, all of it private to the run:

1. starts its own Mosquitto, creates a database ``parkleit_bench_<random>`` on the server at
   ``PARKLEIT_BENCH_DATABASE_URL`` (an admin URL; default the local ``postgres`` database),
   migrates it and syncs a city of ``--stations`` OCPP stations of one point each (on one
   lot), with a password per station (scrypt at n=1024 in the credentials file, so that the
   first login of a thousand stations costs seconds, not the minute production's n=16384
   would);
2. starts ``parkleit ocpp`` as a process and reads its resident memory (VmRSS) once it
   listens;
3. in a process of its own (no GIL shared with the timing), connects every station with the
   ``ocpp`` package's ChargePoint (alternately 2.0.1 and 1.6), boots it, reads the central
   system's memory again (the difference per station is the memory per connection), then has
   each station send a status every ``--interval`` seconds for ``--duration`` seconds,
   alternating between free and in use (so each status is a change), at a phase of its own;
4. LISTENs to ``parkleit_evse_state``: the latency of a status is from just before it was sent
   to the notification of its commit (the moment the API, the stream and every other reader
   can see it); the reference is the same status's answer to the station (CallResult);
5. runs ``parkleit api`` and, in another process, reads ``GET /v1/charging/locations`` (every
   station, its points' status and last update) over and over: a status is visible there
   with the first answer that shows it (so the time includes up to one read of the list);
   "—" where the API has no such route.

At the end every answered status must be a row of ``evse_status``. It reports; it does not
judge: the exit code is 0 whether or not the target (p99 < 1 s) is met, 1 when the benchmark
itself failed. ``PARKLEIT_OCPP_*`` variables are passed on to the service.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import math
import multiprocessing.connection
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from benchmarks import _common as common
from benchmarks._common import BenchError, Latency, NotifyListener, Service, fmt, met
from charging import hash_password
from core import channels
from core.city import load_city
from core.db import migrate
from core.registry import sync_registry
from parkleit.embedded import free_port

__all__ = ["Result", "city_toml", "main", "run"]

logger = logging.getLogger("benchmarks.ocpp")

CITY_ID = "benchocpp"
LOT_ID = f"{CITY_ID}-lot"
PASSWORD = "bench-password-0123456789"
TARGET_P99_MS = 1000.0
CONNECT_AT_ONCE = 50  # handshakes under way at a time while the stations come up
PASSED_ON = ("PARKLEIT_OCPP_",)


def evse_id(index: int) -> str:
    return f"DE*BEN*E{index:05d}*1"


def city_toml(stations: int) -> str:
    """One lot, ``stations`` OCPP stations of one AC point each."""
    parts = [f'[city]\nid = "{CITY_ID}"\nname = "Ladestadt"\ntimezone = "Europe/Berlin"\n',
             f'[[lots]]\nid = "{LOT_ID}"\nname = "Parkhaus"\nkind = "garage"\n'
             'counting = "counter"\ncapacity = 5000\nlatitude = 51.05\nlongitude = 12.14\n']
    for index in range(stations):
        parts.append(
            f'[[chargers]]\nid = "{CITY_ID}-cp-{index}"\nlot = "{LOT_ID}"\n'
            f'name = "Ladepunkt {index}"\noperator = "city"\nprotocol = "ocpp"\n'
            f'[[chargers.evses]]\nevse_id = "{evse_id(index)}"\nnumber = 1\n'
            '[[chargers.evses.connectors]]\nstandard = "IEC_62196_T2"\nformat = "SOCKET"\n'
            'power_type = "AC_3_PHASE"\nmax_power_kw = 22.0\n')
    return "\n".join(parts)


@dataclass
class Result:
    """Every figure of one run (milliseconds, kilobytes)."""

    stations: int
    interval_s: float
    duration_s: float
    connected: int = 0
    statuses_sent: int = 0
    statuses_answered: int = 0
    statuses_refused: int = 0
    statuses_stored: int = 0
    statuses_per_s: float = 0.0
    latency: Latency = field(default_factory=Latency)  # send → commit (NOTIFY)
    visible: Latency = field(default_factory=Latency)  # send → seen in /v1/charging/locations
    visible_statuses: int = 0  # statuses seen there (the rest were overtaken between reads)
    api_reads: int = 0
    api_read: Latency = field(default_factory=Latency)  # one GET of the list
    answer: Latency = field(default_factory=Latency)  # send → CallResult
    connect_s: float = 0.0  # all stations connected and booted
    rss_idle_kb: int | None = None
    rss_connected_kb: int | None = None
    kb_per_connection: float | None = None
    settings: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return common.figures(self, 1)


# --------------------------------------------------------------------------- the stations


@dataclass
class _Sent:
    """What the stations' process reports: per EVSE the (send time, OCPI status, answer
    time or None) of each status, and when all were connected."""

    statuses: dict[str, list[tuple[float, str, float | None]]]
    connected: int
    connect_s: float
    refused: int


def _stations(url: str, count: int, interval: float, duration: float,
              ready: multiprocessing.connection.Connection,
              go: multiprocessing.connection.Connection,
              out: multiprocessing.connection.Connection) -> None:
    """In a process of its own: connect and boot every station, say so through ``ready``,
    wait for ``go``, then send the statuses; report a ``_Sent`` through ``out``."""
    common.report_through(out, lambda: asyncio.run(_drive(url, count, interval, duration,
                                                          ready, go)))


async def _drive(url: str, count: int, interval: float, duration: float,
                 ready: multiprocessing.connection.Connection,
                 go: multiprocessing.connection.Connection) -> _Sent:
    from ocpp.v16 import ChargePoint as ChargePoint16
    from ocpp.v16 import call as call16
    from ocpp.v201 import ChargePoint as ChargePoint201
    from ocpp.v201 import call as call201
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    logging.getLogger("ocpp").setLevel(logging.WARNING)
    statuses: dict[str, list[tuple[float, str, float | None]]] = {}
    refused = 0
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    up = 0
    began = time.monotonic()
    rng = random.Random(1)

    async def station(index: int, stack: contextlib.AsyncExitStack) -> Any:
        nonlocal up
        name, v16 = f"{CITY_ID}-cp-{index}", index % 2 == 1
        token = base64.b64encode(f"{name}:{PASSWORD}".encode()).decode()
        async with gate:
            link = await stack.enter_async_context(connect(
                f"{url}/{name}", additional_headers={"Authorization": f"Basic {token}"},
                subprotocols=[Subprotocol("ocpp1.6" if v16 else "ocpp2.0.1")],
                open_timeout=60, max_queue=None))
        client: Any = (ChargePoint16 if v16 else ChargePoint201)(name, link,
                                                                 response_timeout=30)
        stack.push_async_callback(_cancel, asyncio.create_task(client.start()))
        if v16:
            await client.call(call16.BootNotification(charge_point_model="B",
                                                      charge_point_vendor="bench"))
        else:
            await client.call(call201.BootNotification(
                charging_station={"model": "B", "vendor_name": "bench"}, reason="PowerUp"))
        up += 1
        return client

    async def send(index: int, client: Any) -> None:
        nonlocal refused
        v16, sent = index % 2 == 1, statuses.setdefault(evse_id(index), [])
        loop = asyncio.get_running_loop()
        await asyncio.sleep(rng.uniform(0, interval))  # a phase of its own
        until = loop.time() + duration
        busy = False
        while loop.time() < until:
            busy = not busy
            stamp = time.time()
            iso = (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp))
                   + f".{int(stamp % 1 * 1000):03d}Z")
            if v16:
                payload: Any = call16.StatusNotification(
                    connector_id=1, error_code="NoError",
                    status="Charging" if busy else "Available", timestamp=iso)
            else:
                payload = call201.StatusNotification(
                    timestamp=iso, connector_status="Occupied" if busy else "Available",
                    evse_id=1, connector_id=1)
            answer = await client.call(payload)
            answered = time.time()
            if answer is None:
                refused += 1
            sent.append((stamp, "CHARGING" if busy else "AVAILABLE",
                         None if answer is None else answered))
            await asyncio.sleep(max(0.0, interval - (time.time() - stamp)))

    async with contextlib.AsyncExitStack() as stack:
        clients = await asyncio.gather(*(station(i, stack) for i in range(count)))
        connect_s = time.monotonic() - began
        ready.send(connect_s)
        await asyncio.get_running_loop().run_in_executor(None, go.recv)
        await asyncio.gather(*(send(i, client) for i, client in enumerate(clients)))
    return _Sent(statuses, up, connect_s, refused)


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(BaseException):
        await task


# --------------------------------------------------------------------------- the API reader


@dataclass
class _Seen:
    """What the API reader reports: per EVSE each (arrival time, status, last update) it saw
    change, the reads and their durations; ``missing`` when the route answered 404."""

    changes: dict[str, list[tuple[float, str, float]]]
    reads: list[float]
    missing: bool = False


def _read_locations(url: str, stop: multiprocessing.connection.Connection,
                    out: multiprocessing.connection.Connection) -> None:
    """In a process of its own: read the locations until ``stop`` says so; report ``_Seen``."""
    common.report_through(out, lambda: _reads(url, stop))


def _reads(url: str, stop: multiprocessing.connection.Connection) -> _Seen:
    import httpx

    seen = _Seen({}, [])
    last: dict[str, tuple[str, float]] = {}
    with httpx.Client(timeout=10) as http:
        while not stop.poll():
            began = time.time()
            try:
                response = http.get(url)
            except httpx.HTTPError:
                time.sleep(0.1)
                continue
            arrived = time.time()
            if response.status_code == 404:
                seen.missing = True
                return seen
            if response.status_code != 200:
                time.sleep(0.1)
                continue
            seen.reads.append(arrived - began)
            for location in response.json()["locations"]:
                for evse in location["evses"]:
                    if evse["last_updated"] is None:
                        continue
                    now = (evse["status"], datetime.fromisoformat(
                        evse["last_updated"].replace("Z", "+00:00")).timestamp())
                    if last.get(evse["evse_id"]) != now:
                        last[evse["evse_id"]] = now
                        seen.changes.setdefault(evse["evse_id"], []).append((arrived, *now))
    return seen


# --------------------------------------------------------------------------- the run


def run(args: argparse.Namespace) -> Result:
    """One benchmark run; raises BenchError when the benchmark itself fails."""
    result = Result(stations=args.stations, interval_s=args.interval, duration_s=args.duration)
    result.settings = common.passed_on(PASSED_ON)
    service: Service | None = None
    api: Service | None = None
    with (common.workdir("parkleit-bench-ocpp-", args.keep) as tmp,
          common.private_broker(tmp / "broker") as broker):
        try:
            city_path = tmp / f"{CITY_ID}.toml"
            city_path.write_text(city_toml(args.stations), encoding="utf-8")
            city = load_city(str(city_path))
            credentials = tmp / "credentials"
            stored = hash_password(PASSWORD, n=1024)  # one hash for all: the cost is per login
            credentials.write_text("".join(f"{station.id}:{stored}\n"
                                           for station in city.chargers))
            with common.database(common.admin_url()) as db_url:
                with psycopg.connect(db_url, autocommit=True) as conn:
                    migrate(conn)
                    sync_registry(conn, city)
                port = free_port()
                env = common.service_env(PASSED_ON, DATABASE_URL=db_url, MQTT_URL=broker.url,
                                         CITY=str(city_path), OCPP_PORT=str(port),
                                         OCPP_CREDENTIALS_FILE=str(credentials))
                service = Service("ocpp", ["parkleit", "ocpp"], env, tmp / "ocpp.log")
                api_port = free_port()
                api = Service("api", ["parkleit", "api", "--port", str(api_port)],
                              env | {"PARKLEIT_API_RATE_PER_IP": "0"}, tmp / "api.log")
                service.wait_log("listening on", 60)
                api.wait_log("Application startup complete", 60)
                time.sleep(1)  # the pool and MQTT settle
                result.rss_idle_kb = common.status_kb(service.process.pid, "VmRSS")
                listener = NotifyListener(db_url, channels.EVSE_STATE)
                context = multiprocessing.get_context("spawn")
                stop_reading, stop_reader = context.Pipe(duplex=False)
                reader = common.Child(
                    "API reader", _read_locations,
                    f"http://127.0.0.1:{api_port}/v1/charging/locations", stop_reading)
                try:
                    sent = _measure(args, result, f"ws://127.0.0.1:{port}/ocpp", service)
                    time.sleep(2)  # the last commits' notifications and reads
                    stop_reader.send(True)
                    seen: _Seen = reader.receive()
                finally:
                    listener.close()
                    reader.close()
                    stop_reader.close()
                service.stop()
                api.stop()
                _evaluate(result, sent, listener, db_url)
                _visibility(result, sent, seen)
        finally:
            for process in (service, api):
                if process is not None:
                    process.close()
    return result


def _visibility(result: Result, sent: _Sent, seen: _Seen) -> None:
    """Each answered status's time to its first sight in the API (``seen``)."""
    if seen.missing:
        logger.warning("the API has no /v1/charging/locations: no visibility figures")
        return
    result.api_reads, result.api_read = len(seen.reads), Latency.of(seen.reads)
    latencies = []
    for evse, statuses in sent.statuses.items():
        changes = seen.changes.get(evse, [])
        for sent_at, status, answered in statuses:
            if answered is None:
                continue
            # The millisecond the station wrote (a float's rounding may make it one less):
            # the point's other statuses lie an interval away.
            reported = math.floor(sent_at * 1000) / 1000 - 0.002
            sight = next((arrived for arrived, shown, updated in changes
                          if shown == status and updated >= reported), None)
            if sight is not None:
                latencies.append(sight - sent_at)
    result.visible_statuses, result.visible = len(latencies), Latency.of(latencies)


def _measure(args: argparse.Namespace, result: Result, url: str, service: Service) -> _Sent:
    context = multiprocessing.get_context("spawn")
    ready_in, ready_out = context.Pipe(duplex=False)
    go_in, go_out = context.Pipe(duplex=False)
    stations = common.Child("stations", _stations, url, args.stations, args.interval,
                            args.duration, ready_out, go_in)
    try:
        deadline = time.monotonic() + 300
        while not ready_in.poll(0.5):
            service.check_alive()
            if stations.reported() or time.monotonic() > deadline:
                stations.receive()  # raises what failed
                raise BenchError("the stations did not all connect within 300 s")
        result.connect_s = ready_in.recv()
        time.sleep(1)
        result.rss_connected_kb = common.status_kb(service.process.pid, "VmRSS")
        logger.info("%d stations connected and booted in %.1f s; sending a status each every "
                    "%.0f s for %.0f s", args.stations, result.connect_s, args.interval,
                    args.duration)
        go_out.send(True)
        while not stations.reported(1.0):
            service.check_alive()
        sent: _Sent = stations.receive()
        return sent
    finally:
        stations.close()
        for end in (ready_in, go_out):
            end.close()


def _evaluate(result: Result, sent: _Sent, listener: NotifyListener, db_url: str) -> None:
    result.connected = sent.connected
    result.statuses_refused = sent.refused
    heard: dict[str, list[tuple[float, str]]] = {}
    for at, payload in listener.notes:
        state = json.loads(payload)
        heard.setdefault(state["evse_id"], []).append((at, state["status"]))
    latencies, answers = [], []
    first_sent, last_answer = float("inf"), 0.0
    for evse, statuses in sent.statuses.items():
        notes = iter(heard.get(evse, []))
        for sent_at, status, answered in statuses:
            result.statuses_sent += 1
            first_sent = min(first_sent, sent_at)
            if answered is None:
                continue
            result.statuses_answered += 1
            last_answer = max(last_answer, answered)
            answers.append(answered - sent_at)
            # Each status is a change: its notification is the next of this point's.
            note = next(notes, None)
            if note is not None and note[1] == status:
                latencies.append(note[0] - sent_at)
    result.latency, result.answer = Latency.of(latencies), Latency.of(answers)
    if last_answer > first_sent:
        result.statuses_per_s = result.statuses_answered / (last_answer - first_sent)
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM evse_status WHERE source = 'ocpp'").fetchone()
    result.statuses_stored = row[0] if row else 0
    if result.rss_idle_kb is not None and result.rss_connected_kb is not None and sent.connected:
        result.kb_per_connection = (result.rss_connected_kb - result.rss_idle_kb) / sent.connected


def table(result: Result) -> str:
    """The human-readable report: each figure next to its target and its reference."""
    p99_ok = None if result.visible.p99_ms is None else result.visible.p99_ms < TARGET_P99_MS
    stored_ok = result.statuses_stored == result.statuses_answered and bool(
        result.statuses_answered)
    lines = [
        ("stations connected", f"{result.connected:,}", f"{result.stations:,}",
         met(result.connected == result.stations), f"in {result.connect_s:.1f} s"),
        ("statuses answered / sent", f"{result.statuses_answered:,}",
         f"{result.statuses_sent:,}", met(result.statuses_answered == result.statuses_sent),
         f"{result.statuses_per_s:,.0f} a second"),
        ("statuses stored (evse_status rows)", f"{result.statuses_stored:,}", "every answered",
         met(stored_ok), ""),
        ("p50, status → /v1/charging/locations (ms)", fmt(result.visible.p50_ms), "", "",
         f"{fmt(result.latency.p50_ms)} → commit, {fmt(result.answer.p50_ms)} → answer"),
        ("p99, status → /v1/charging/locations (ms)", fmt(result.visible.p99_ms),
         f"< {TARGET_P99_MS:,.0f}", met(p99_ok),
         f"{fmt(result.latency.p99_ms)} → commit, {fmt(result.answer.p99_ms)} → answer"),
        ("max, status → /v1/charging/locations (ms)", fmt(result.visible.max_ms), "", "",
         f"{fmt(result.latency.max_ms)} → commit, {fmt(result.answer.max_ms)} → answer"),
        ("statuses seen in the API", f"{result.visible_statuses:,}", "", "",
         f"{result.api_reads:,} reads, p50 {fmt(result.api_read.p50_ms)} ms each"),
        ("memory per connection (KiB)", fmt(result.kb_per_connection, 1), "", "",
         f"RSS {fmt(result.rss_idle_kb)} → {fmt(result.rss_connected_kb)} KiB"),
    ]
    out = [f"parkleit OCPP benchmark: {result.stations:,} charge points (1.6 and 2.0.1) "
           f"connected at once, a status each every {result.interval_s:g} s for "
           f"{result.duration_s:g} s", "",
           *common.figure_table(lines, measured=8, target=14, rule=30,
                                reference="reference (same statuses)")]
    out += ["", "status → /v1/charging/locations: from the station's send to the first read "
            "of the list that shows it (a read follows the last at once, so this includes up "
            "to one read); → commit: to the NOTIFY of its commit; → answer: to the CallResult, "
            "sent after the commit and the MQTT publish"]
    return "\n".join(out + common.settings_line(result.settings))


def build_parser() -> argparse.ArgumentParser:
    parser = common.bench_parser("ocpp", "Many OCPP charge points at once: every status "
                                 "stored, status → commit latency, memory per connection.")
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0,
                        help="seconds between two statuses of a station")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="seconds of statuses after every station is connected")
    common.add_keep(parser, "logs, city, credentials, broker")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.stations < 1 or args.interval <= 0 or args.duration <= 0:
        return common.refuse("ocpp", "--stations must be >= 1, --interval and --duration > 0")
    return common.run_main(lambda: run(args), as_json=args.json, to_json=Result.as_dict,
                           table=table, log=logger, quiet=["ocpp", "websockets"])


if __name__ == "__main__":
    sys.exit(main())
