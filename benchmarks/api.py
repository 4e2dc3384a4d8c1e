"""API speed: requests/s and latency of ``/v1/lots`` and of a one-year history query, next to a
minimal FastAPI endpoint served the same way on the same machine in the same run.

``python -m benchmarks.api [--json] [--days 365] [--concurrency 8] [--rate 200] [--streams 300]
[--only stream]``

What it does, all of it private to the run:

1. creates a database ``parkleit_bench_<random>`` on the PostgreSQL server at
   ``PARKLEIT_BENCH_DATABASE_URL`` (an admin URL; default the local ``postgres`` database),
   migrates it, syncs Zeitz (``cities/zeitz.toml``, 16 lots) and loads ``--days`` of simulated
   history ending now (``simulators.history.backfill_history``: every lot every 5 minutes,
   ~1.7 M rows for a year), then ``VACUUM ANALYZE`` and ``CHECKPOINT`` as autovacuum and the
   checkpointer would long have done with data that old; every lot gets a fresh count in
   ``lot_state`` and the last day of forecast runs;
2. serves the real app with ``parkleit api --port P`` (one uvicorn process, one worker, the
   per-IP rate limit off: every request comes from 127.0.0.1), and the reference: a FastAPI app
   with one route returning a small constant JSON, in a process of its own with the same
   uvicorn settings (``log_config=None``, no server header, the same logging);
3. against each, from this process (httpx, HTTP/1.1 keep-alive, ``Accept-Encoding: gzip`` as
   browsers send it; latency is to the last byte of the body as sent, not decoded):
   (a) the most requests/s: ``--concurrency`` clients in a closed loop for ``--duration`` s;
   (b) latency at a fixed open-loop rate (``--rate`` requests/s for ``--rate-duration`` s),
   each request timed from when it was due, so a server that falls behind is charged for
   the queue (no coordinated omission);
4. then ``GET /v1/lots/{id}/history?from=<now - days>&to=<now>&resolution=15m`` of the
   largest lot (``--history-requests`` times, one after the other, after two not measured),
   next to the route's query for the whole range in one piece, run by psycopg straight
   against the database (the SQL alone: the buckets aggregated and written as JSON text, and
   their transfer; the route reads a range that long as two halves at once).

5. the live stream: ``--streams`` clients of ``GET /v1/stream`` open (each reading every event,
   in a process of their own: on this 2-core machine they take about a core themselves) while
   ``--events`` lot status NOTIFYs a second arrive on ``parkleit_lot_state`` as ingest sends
   them (one commit each, a Zeitz lot after the other), and ``/v1/lots`` timed at ``--rate``
   again, next to its idle figure of 3b; with the app's CPU seconds per second.
   ``--only stream`` runs 3b for ``/v1/lots`` and this alone (no reference, no history).

The server CPU per request (from ``/proc``) of the app and the reference, and the share of a
core the load generator itself used, are reported as well: when the client is the slower
side, the requests/s of both are its rate.

It reports; it does not judge: the exit code is 0 whether or not the targets are met, 1 when
the benchmark itself failed. ``PARKLEIT_API_*`` variables are passed on to the app.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import math
import multiprocessing.connection
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from api import history_range, points_query
from benchmarks import _common as common
from benchmarks._common import (
    BenchError,
    Latency,
    add_keep,
    admin_url,
    bench_parser,
    database,
    figure_table,
    figures,
    fmt,
    killed_at_end,
    met,
    passed_on,
    percentile,
    refuse,
    run_main,
    service_env,
    settings_line,
    stop_all,
    workdir,
)
from benchmarks._common import Service as _Process
from core import channels
from core.city import City, load_city
from core.clock import Clock
from core.db import migrate, queries
from core.registry import sync_registry
from core.status import LotStatus
from parkleit.embedded import LOOPBACK, free_port
from simulators.history import backfill_history

__all__ = ["Result", "main", "reference_app", "run"]

logger = logging.getLogger("benchmarks.api")

CITY = "zeitz"
TARGET_LOTS_P99_MS = 20.0
TARGET_RATE = 200.0
TARGET_HISTORY_P99_MS = 100.0
# Relative targets, each against its reference measured in the same run: /v1/lots served from
# the process's snapshot costs about what a constant does.
TARGET_CPU_RATIO = 2.0  # server CPU per /v1/lots request / the constant's
TARGET_P99_RATIO = 1.5  # /v1/lots p99 at the fixed rate / the constant's
TARGET_HISTORY_RATIO = 1.2  # one-year history p50 / its SQL alone
TARGET_STREAM_P99_RATIO = 2.0  # /v1/lots p99 with the streams open / idle
HISTORY_WARMUP = 2
FORECAST_HORIZONS = (15, 30, 60, 120)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- the reference


def reference_app() -> Any:
    """The reference: FastAPI with one route answering a small constant JSON."""
    from fastapi import FastAPI

    app = FastAPI()
    body = {"status": "ok", "lots": 16}

    @app.get("/ping")
    async def ping() -> dict[str, Any]:
        return body

    return app


def _serve_reference(port: int) -> int:
    """Serve ``reference_app`` as ``parkleit api`` serves the app (``parkleit.cli._cmd_api``)."""
    import uvicorn

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = uvicorn.Config(reference_app(), host=LOOPBACK, port=port, log_config=None,
                            timeout_graceful_shutdown=10, server_header=False)
    server = uvicorn.Server(config)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    server.run()
    return 0 if server.started else 1


class Server(_Process):
    """One HTTP server process, its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path,
                 port: int) -> None:
        self.port = port
        self.base_url = f"http://{LOOPBACK}:{port}"
        super().__init__(name, args, env, log)

    def wait_ready(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.base_url + path, timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} did not answer {path} within {timeout:.0f} s:\n"
                                 + self.tail())
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return math.nan
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime


# --------------------------------------------------------------------------- load


@dataclass
class Load:
    """What one phase of load measured."""

    requests: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    body_bytes: int = 0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0

    async def fetch(self, http: httpx.AsyncClient, url: str, since: float) -> None:
        """GET ``url`` and count it, timed from ``since`` (the event loop's time)."""
        status, size = await fetch(http, url)
        self.latencies.append(asyncio.get_running_loop().time() - since)
        self.requests += 1
        self.body_bytes += size
        self.errors += status != 200

    @property
    def server_cpu_ms(self) -> float | None:
        """Server CPU milliseconds per request."""
        return self.server_cpu_s / self.requests * 1000 if self.requests else None

    @property
    def client_core_share(self) -> float | None:
        """The share of one core the load generator used."""
        return self.client_cpu_s / self.elapsed_s if self.elapsed_s > 0 else None


def client(connections: int) -> httpx.AsyncClient:
    """HTTP/1.1 with keep-alive over up to ``connections`` connections; gzip as browsers ask.
    An idle connection is let go after 2 s, before uvicorn closes it after its 5: at the same
    5 s a request could go out on a connection the server was closing."""
    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=connections,
                            max_keepalive_connections=connections, keepalive_expiry=2.0),
        timeout=httpx.Timeout(30.0), headers={"Accept-Encoding": "gzip"})


async def fetch(http: httpx.AsyncClient, url: str) -> tuple[int, int]:
    """GET ``url``; its status and the bytes of its body as sent (not decoded)."""
    async with http.stream("GET", url) as response:
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
        return response.status_code, size


async def _measured(server: Server, load: Load, body: Callable[[], Awaitable[None]]) -> Load:
    cpu, client_cpu, began = server.cpu_seconds(), time.process_time(), time.perf_counter()
    await body()
    load.elapsed_s = time.perf_counter() - began
    load.client_cpu_s = time.process_time() - client_cpu
    load.server_cpu_s = server.cpu_seconds() - cpu
    return load


async def closed_loop(server: Server, path: str, *, concurrency: int, duration: float,
                      warmup: float = 1.0) -> Load:
    """``concurrency`` clients, each sending its next request when the last one is answered."""
    url = server.base_url + path
    async with client(concurrency) as http:
        await _clients(http, url, concurrency, warmup, Load())
        load = Load()
        return await _measured(server, load,
                               lambda: _clients(http, url, concurrency, duration, load))


async def _clients(http: httpx.AsyncClient, url: str, concurrency: int, duration: float,
                   load: Load) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + duration

    async def one_client() -> None:
        while loop.time() < until:
            await load.fetch(http, url, loop.time())

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(one_client())


async def open_loop(server: Server, path: str, *, rate: float, duration: float,
                    connections: int, warmup: float = 1.0) -> Load:
    """Requests due every 1/``rate`` s whatever the answers; each timed from when it was due."""
    url = server.base_url + path
    async with client(connections) as http:
        await _schedule(http, url, rate, warmup, Load())
        load = Load()
        return await _measured(server, load, lambda: _schedule(http, url, rate, duration, load))


async def _schedule(http: httpx.AsyncClient, url: str, rate: float, duration: float,
                    load: Load) -> None:
    loop = asyncio.get_running_loop()

    async def one(due: float) -> None:
        await asyncio.sleep(max(0.0, due - loop.time()))
        await load.fetch(http, url, due)

    start = loop.time() + 0.1
    async with asyncio.TaskGroup() as group:
        for index in range(max(1, round(rate * duration))):
            group.create_task(one(start + index / rate))


async def sequential(server: Server, path: str, *, requests: int,
                     warmup: int = HISTORY_WARMUP) -> Load:
    """``requests`` requests one after the other on one connection."""
    url = server.base_url + path
    async with client(1) as http:
        for _ in range(warmup):
            await fetch(http, url)
        load = Load()

        async def body() -> None:
            loop = asyncio.get_running_loop()
            for _ in range(requests):
                await load.fetch(http, url, loop.time())

        return await _measured(server, load, body)


# --------------------------------------------------------------------------- the data


def _seed(conn: psycopg.Connection[Any], city: City, now: datetime, days: int) -> int:
    """History, live counts and forecast runs; the history rows written."""
    sync_registry(conn, city)
    report = backfill_history(conn, city, end=now, weeks=days / 7)
    logger.info("history: %d rows in %.1f s", report.rows, report.elapsed_s)
    # As autovacuum and the checkpointer would long have done with a year of data: the
    # visibility map lets the history be read from the index alone, and the load is on disk
    # rather than being written out while the benchmark measures.
    began = time.monotonic()
    q = queries("benchmarks")
    conn.execute(q["api_vacuum_history"])
    try:
        conn.execute(q["checkpoint"])
    except psycopg.errors.InsufficientPrivilege:
        logger.warning("no privilege for CHECKPOINT: the load may be written out meanwhile")
    logger.info("VACUUM ANALYZE and CHECKPOINT in %.1f s", time.monotonic() - began)
    # Every lot counted a minute ago, with the numbers of its newest history row.
    conn.execute(q["api_live_counts"], {"updated": now - timedelta(minutes=1)})
    # A run every 15 minutes over the last day, as the forecast service writes them.
    conn.execute(q["api_forecast_runs"],
                 {"now": now - timedelta(minutes=5), "horizons": list(FORECAST_HORIZONS)})
    conn.execute(q["api_analyze_forecasts"])
    return report.rows


def _database_time(db_url: str, params: dict[str, Any], repeat: int) -> tuple[float, int]:
    """Median seconds for psycopg to run the history route's query (the points as JSON text)
    and fetch its answer; and how many buckets there are."""
    times: list[float] = []
    points = ""
    with psycopg.connect(db_url, autocommit=True) as conn:
        for _ in range(repeat + 1):
            began = time.perf_counter()
            _last, points = conn.execute(points_query("15m"), params).fetchone() or (None, "")
            times.append(time.perf_counter() - began)
    return percentile(sorted(times[1:]), 0.5), (points or "").count('{"time":')


# --------------------------------------------------------------------------- the run


@dataclass
class Phase:
    """One route under load: the closed loop's rate and costs, the open loop's times."""

    rps: float = 0.0
    server_cpu_ms: float | None = None  # per request
    client_core_share: float | None = None  # of the load generator
    latency: Latency = field(default_factory=Latency)


@dataclass
class Result:
    """Every figure of one run (milliseconds, requests/s)."""

    days: int
    history_rows: int = 0
    concurrency: int = 0
    rate: float = 0.0
    lots: Phase = field(default_factory=Phase)
    lots_achieved_rate: float = 0.0
    lots_errors: int = 0
    lots_bytes: int = 0
    reference: Phase = field(default_factory=Phase)
    ratio: float | None = None
    history_requests: int = 0
    history: Latency = field(default_factory=Latency)
    history_errors: int = 0
    history_buckets: int = 0
    history_bytes_gzip: int = 0
    history_server_cpu_ms: float | None = None
    history_database_ms: float | None = None
    streams: int = 0
    stream_events_per_s: float = 0.0
    streams_open: int = 0
    stream_events_received: int = 0
    stream_lots: Latency = field(default_factory=Latency)
    stream_lots_errors: int = 0
    stream_server_cpu_per_s: float | None = None
    idle_server_cpu_per_s: float | None = None
    server: str = ""
    load_average_start: list[float] = field(default_factory=list)
    load_average: list[float] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return figures(self)


def _uvicorn_implementation() -> str:
    """What uvicorn's ``auto`` loop and HTTP protocol resolve to in this environment."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"uvicorn, 1 worker, {loop} + {http}"


def run(args: argparse.Namespace) -> Result:
    """One benchmark run; raises BenchError when the benchmark itself fails."""
    result = Result(days=args.days, concurrency=args.concurrency, rate=args.rate,
                    server=_uvicorn_implementation(), load_average_start=list(os.getloadavg()))
    result.settings = passed_on(("PARKLEIT_API_",))
    with (workdir("parkleit-bench-api-", args.keep) as tmp,
          killed_at_end(list[Server]()) as servers):
        city = load_city(CITY)
        with database(admin_url()) as db_url:
            now = Clock().now()
            with psycopg.connect(db_url, autocommit=True) as conn:
                migrate(conn)
                result.history_rows = _seed(conn, city, now, args.days)
            env = service_env(("PARKLEIT_API_",), DATABASE_URL=db_url, CITY=CITY,
                              API_RATE_PER_IP="0",
                              # every stream comes from 127.0.0.1
                              API_STREAM_MAX_PER_IP=str(max(20, args.streams)))
            app_port, reference_port = free_port(), free_port()
            servers.append(Server("parkleit api", ["parkleit", "api", "--port", str(app_port)],
                                  env, tmp / "api.log", app_port))
            servers.append(Server("reference", ["benchmarks.api", "--serve-reference",
                                                str(reference_port)],
                                  env, tmp / "reference.log", reference_port))
            servers[0].wait_ready("/healthz", 60)
            servers[1].wait_ready("/ping", 60)
            try:
                asyncio.run(_measure(args, result, city, now, db_url, *servers))
            finally:
                stop_all(servers)
            if args.history_requests and args.only != "stream":
                seconds, result.history_buckets = _database_time(
                    db_url, _history_params(city, now, args.days), 5)
                result.history_database_ms = seconds * 1000
    result.load_average = list(os.getloadavg())
    return result


def _history_params(city: City, now: datetime, days: int) -> dict[str, Any]:
    """The parameters the history route gives the 15m query for the benchmark's request."""
    start, end = history_range(now - timedelta(days=days), now, "15m", now=now,
                               default=timedelta(hours=24), tz=city.tz)
    return {"lot_ids": [_history_lot(city).id], "from": start, "to": end,
            "tz": city.city.timezone}


def _history_lot(city: City) -> Any:
    return max(city.lots, key=lambda lot: lot.capacity)


def _check(load: Load, what: str) -> None:
    if load.requests and load.errors == load.requests:
        raise BenchError(f"every request to {what} failed")


async def _measure(args: argparse.Namespace, result: Result, city: City, now: datetime,
                   db_url: str, app: Server, reference: Server) -> None:
    lots_path = "/v1/lots"
    only_stream = args.only == "stream"
    for server, path, name in ((reference, "/ping", "reference"), (app, lots_path, "lots")):
        if only_stream and server is reference:
            continue
        most = Load()
        if not only_stream:
            logger.info("%s: closed loop, %d clients, %.0f s", name, args.concurrency,
                        args.duration)
            most = await closed_loop(server, path, concurrency=args.concurrency,
                                     duration=args.duration)
            _check(most, f"{server.name} {path}")
            server.check_alive()
        logger.info("%s: %.0f requests/s; open loop at %.0f/s for %.0f s", name, most.rate,
                    args.rate, args.rate_duration)
        fixed = await open_loop(server, path, rate=args.rate, duration=args.rate_duration,
                                connections=args.connections)
        _check(fixed, f"{server.name} {path}")
        server.check_alive()
        latency = Latency.of(fixed.latencies)
        logger.info("%s: p50 %.1f ms, p99 %.1f ms", name, latency.p50_ms or 0,
                    latency.p99_ms or 0)
        phase = Phase(most.rate, most.server_cpu_ms, most.client_core_share, latency)
        if name == "reference":
            result.reference = phase
        else:
            result.lots = phase
            result.lots_bytes = most.body_bytes // max(most.requests, 1)
            result.lots_errors = most.errors + fixed.errors
            result.lots_achieved_rate = fixed.rate
            result.idle_server_cpu_per_s = fixed.server_cpu_s / fixed.elapsed_s
    if result.reference.rps:
        result.ratio = result.lots.rps / result.reference.rps

    if args.streams:
        await _with_streams(args, result, city, db_url, app)

    if args.history_requests and not only_stream:
        params = _history_params(city, now, args.days)
        query = httpx.QueryParams({"from": params["from"].isoformat(),
                                   "to": params["to"].isoformat(), "resolution": "15m"})
        path = f"/v1/lots/{_history_lot(city).id}/history?{query}"
        logger.info("history: %d requests of %d days at 15m", args.history_requests, args.days)
        history = await sequential(app, path, requests=args.history_requests)
        _check(history, f"{app.name} history")
        result.history_requests = history.requests
        result.history_errors = history.errors
        result.history_bytes_gzip = history.body_bytes // max(history.requests, 1)
        result.history_server_cpu_ms = history.server_cpu_ms
        result.history = Latency.of(history.latencies)


def _read_streams(url: str, streams: int, seconds: float, done: Any,
                  out: multiprocessing.connection.Connection) -> None:
    """Child process: ``streams`` clients of ``url`` reading every event until ``done`` (a
    multiprocessing Event) is set, for ``seconds`` at the most; the report is when each event
    arrived (whole seconds) and how many streams opened.

    The clients read raw bytes and count ``event:`` lines, the least a client can do: an HTTP
    client library parsing every line cost a core of this two-core machine, which measured
    the readers instead of the API."""
    target = httpx.URL(url)
    request = (f"GET {target.raw_path.decode()} HTTP/1.1\r\nHost: {target.host}\r\n"
               "Accept: text/event-stream\r\n\r\n").encode()
    marker = b"\nevent:"

    async def read() -> dict[str, Any]:
        per_second: dict[int, int] = {}
        opened = [0]

        async def one() -> None:
            reader, writer = await asyncio.open_connection(target.host, target.port)
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise BenchError(f"/v1/stream answered {head.splitlines()[0]!r}")
                opened[0] += 1
                tail = b""
                while chunk := await reader.read(65536):
                    data = tail + chunk
                    if count := data.count(marker):
                        second = int(time.time())
                        per_second[second] = per_second.get(second, 0) + count
                    tail = data[-(len(marker) - 1):]
            finally:
                writer.close()

        tasks = [asyncio.create_task(one()) for _ in range(streams)]
        deadline = asyncio.get_running_loop().time() + seconds
        while not done.is_set() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()
        failed = [r for r in await asyncio.gather(*tasks, return_exceptions=True)
                  if isinstance(r, Exception) and not isinstance(r, asyncio.CancelledError)]
        if failed:
            raise failed[0]
        return {"opened": opened[0], "per_second": per_second}

    common.report_through(out, lambda: asyncio.run(read()))


async def _with_streams(args: argparse.Namespace, result: Result, city: City,
                        db_url: str, app: Server) -> None:
    """``/v1/lots`` at the fixed rate with ``--streams`` streams open and ``--events`` lot
    status NOTIFYs a second; the streams are read by a process of their own, which shares no
    event loop or GIL with the timing."""
    result.streams, result.stream_events_per_s = args.streams, args.events

    async def notify(stop: asyncio.Event) -> None:
        # As ingest sends them: a lot's status after each count, one commit each.
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            loop = asyncio.get_running_loop()
            began, sent = loop.time(), 0
            while not stop.is_set():
                lot = city.lots[sent % len(city.lots)]
                free = sent % (lot.capacity + 1)
                status = LotStatus(lot.id, free, lot.capacity - free, lot.capacity, "open",
                                   Clock().now(), 1.0)
                await conn.execute(queries("benchmarks")["notify"], {
                    "channel": channels.LOT_STATE, "payload": status.notification(city.city.id)})
                sent += 1
                await asyncio.sleep(max(0.0, began + sent / args.events - loop.time()))

    async def all_open() -> bool:
        async with httpx.AsyncClient(timeout=5) as http:
            text = (await http.get(app.base_url + "/metrics")).text
        return f"parkleit_api_stream_clients {float(args.streams)}" in text

    logger.info("stream: %d streams open, %.0f events/s; /v1/lots at %.0f/s for %.0f s",
                args.streams, args.events, args.rate, args.rate_duration)
    done = multiprocessing.get_context("spawn").Event()
    readers = common.Child("stream readers", _read_streams, app.base_url + "/v1/stream",
                           args.streams, 90.0 + args.rate_duration, done)
    stop = asyncio.Event()
    try:
        deadline = time.monotonic() + 60
        while not await all_open():
            if time.monotonic() > deadline or readers.reported():
                raise BenchError("the stream readers did not open their streams")
            await asyncio.sleep(0.5)
        notifier = asyncio.create_task(notify(stop))
        await asyncio.sleep(2.0)  # the events flowing
        window = int(time.time()) + 1
        fixed = await open_loop(app, "/v1/lots", rate=args.rate, duration=args.rate_duration,
                                connections=args.connections)
        until = int(time.time())
        stop.set()
        await notifier
        done.set()
        report = readers.receive()
    finally:
        readers.close()
    result.streams_open = report["opened"]
    result.stream_events_received = sum(count for second, count in report["per_second"].items()
                                        if window <= second < until)
    app.check_alive()
    _check(fixed, f"{app.name} /v1/lots with streams")
    result.stream_lots_errors = fixed.errors
    result.stream_lots = Latency.of(fixed.latencies)
    result.stream_server_cpu_per_s = fixed.server_cpu_s / fixed.elapsed_s


# --------------------------------------------------------------------------- output


def _fmt(value: float | None, digits: int = 1) -> str:
    return fmt(value, digits)


def table(result: Result) -> str:
    """The human-readable report: each figure next to its target and its reference."""
    head = (f"parkleit API benchmark: Zeitz, {result.history_rows:,} history rows "
            f"({result.days} days); {result.server}")
    rows = _figure_rows(result) + _stream_rows(result)
    return "\n".join([head, "", *figure_table(rows, measured=9, target=6,
                                               reference="reference (constant JSON)", rule=25),
                      "", *_notes(result), *settings_line(result.settings)])


def _ratio(value: float | None, reference: float | None) -> float | None:
    return None if value is None or not reference else value / reference


def _figure_rows(result: Result) -> list[tuple[str, str, str, str, str]]:
    """The table's rows of /v1/lots and the history: (figure, measured, target, met,
    reference: the constant-JSON endpoint's figure)."""
    lots_ok = (None if result.lots.latency.p99_ms is None else
               result.lots.latency.p99_ms < TARGET_LOTS_P99_MS
               and result.lots_achieved_rate >= 0.95 * TARGET_RATE)
    history_ok = (None if result.history.p99_ms is None
                  else result.history.p99_ms < TARGET_HISTORY_P99_MS)
    cpu = _ratio(result.lots.server_cpu_ms, result.reference.server_cpu_ms)
    p99 = _ratio(result.lots.latency.p99_ms, result.reference.latency.p99_ms)
    history = _ratio(result.history.p50_ms, result.history_database_ms)
    rate = f"{result.rate:,.0f}/s"
    return [
        ("GET /v1/lots: requests/s (closed loop)", _fmt(result.lots.rps, 0), "", "",
         f"{_fmt(result.reference.rps, 0)} requests/s"),
        ("ratio to the reference", _fmt(result.ratio, 3), "", "", ""),
        (f"GET /v1/lots at {rate}: p50 (ms)", _fmt(result.lots.latency.p50_ms), "", "",
         _fmt(result.reference.latency.p50_ms)),
        (f"GET /v1/lots at {rate}: p95 (ms)", _fmt(result.lots.latency.p95_ms), "", "",
         _fmt(result.reference.latency.p95_ms)),
        (f"GET /v1/lots at {rate}: p99 (ms)", _fmt(result.lots.latency.p99_ms),
         f"< {TARGET_LOTS_P99_MS:.0f}", met(lots_ok), _fmt(result.reference.latency.p99_ms)),
        ("  its ratio to the reference's p99", _fmt(p99, 2), f"<= {TARGET_P99_RATIO}",
         met(None if p99 is None else p99 <= TARGET_P99_RATIO), ""),
        ("server CPU per request (ms)", _fmt(result.lots.server_cpu_ms, 2), "", "",
         _fmt(result.reference.server_cpu_ms, 2)),
        ("  its ratio to the reference's", _fmt(cpu, 2), f"<= {TARGET_CPU_RATIO}",
         met(None if cpu is None else cpu <= TARGET_CPU_RATIO), ""),
        (f"history {result.days} d at 15m: p50 (ms)", _fmt(result.history.p50_ms), "", "",
         f"{_fmt(result.history_database_ms)} its SQL in one piece"),
        ("  its ratio to the SQL alone", _fmt(history, 2), f"<= {TARGET_HISTORY_RATIO}",
         met(None if history is None else history <= TARGET_HISTORY_RATIO), ""),
        (f"history {result.days} d at 15m: p95 (ms)", _fmt(result.history.p95_ms), "", "",
         ""),
        (f"history {result.days} d at 15m: p99 (ms)", _fmt(result.history.p99_ms),
         f"< {TARGET_HISTORY_P99_MS:.0f}", met(history_ok), ""),
    ]


def _stream_rows(result: Result) -> list[tuple[str, str, str, str, str]]:
    """The table's rows of /v1/lots timed again while the live streams are open (none
    without streams)."""
    if not result.streams:
        return []
    rate = f"{result.rate:,.0f}/s"
    streams = (f"{result.streams} streams, {result.stream_events_per_s:g} events/s")
    stream_p99 = _ratio(result.stream_lots.p99_ms, result.lots.latency.p99_ms)
    return [
        (f"GET /v1/lots at {rate}, {streams}: p50 (ms)", _fmt(result.stream_lots.p50_ms),
         "", "", f"{_fmt(result.lots.latency.p50_ms)} idle"),
        (f"GET /v1/lots at {rate}, {streams}: p99 (ms)", _fmt(result.stream_lots.p99_ms),
         "", "", f"{_fmt(result.lots.latency.p99_ms)} idle"),
        ("  its ratio to the idle p99", _fmt(stream_p99, 2), f"<= {TARGET_STREAM_P99_RATIO}",
         met(None if stream_p99 is None else stream_p99 <= TARGET_STREAM_P99_RATIO), ""),
        ("  API CPU seconds per second", _fmt(result.stream_server_cpu_per_s, 2), "", "",
         f"{_fmt(result.idle_server_cpu_per_s, 2)} idle"),
    ]


def _notes(result: Result) -> list[str]:
    """The lines under the table: the loads, sizes, errors and load averages behind it."""
    return [
        f"closed loop: {result.concurrency} clients; the load generator used "
        f"{_fmt(result.lots.client_core_share, 2)} of a core against /v1/lots, "
        f"{_fmt(result.reference.client_core_share, 2)} against the reference",
        f"open loop: {result.lots_achieved_rate:,.0f} requests/s achieved, max "
        f"{_fmt(result.lots.latency.max_ms)} ms "
        f"(reference {_fmt(result.reference.latency.max_ms)} ms); "
        f"{result.lots_errors} errors; /v1/lots body {result.lots_bytes:,} bytes gzipped",
        f"history: {result.history_requests} requests one after the other, "
        f"{result.history_buckets:,} buckets, {result.history_bytes_gzip:,} bytes gzipped, "
        f"server CPU {_fmt(result.history_server_cpu_ms)} ms per request, max "
        f"{_fmt(result.history.max_ms)} ms, {result.history_errors} errors",
        f"streams: {result.streams_open} of {result.streams} open, "
        f"{result.stream_events_received:,} events received while /v1/lots was timed; "
        f"{result.stream_lots_errors} errors",
        "load average (1, 5, 15 min) at the start: "
        + " ".join(f"{v:.2f}" for v in result.load_average_start) + "; at the end: "
        + " ".join(f"{v:.2f}" for v in result.load_average),
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = bench_parser("api", "API requests/s and latency next to a minimal FastAPI "
                          "endpoint.")
    parser.add_argument("--days", type=int, default=365,
                        help="days of history to load and to ask for at 15m")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="clients of the closed loop (requests/s)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds of the closed loop")
    parser.add_argument("--rate", type=float, default=TARGET_RATE,
                        help="requests/s of the open loop (latency)")
    parser.add_argument("--rate-duration", type=float, default=15.0,
                        help="seconds of the open loop")
    parser.add_argument("--connections", type=int, default=32,
                        help="most connections the open loop may open")
    parser.add_argument("--history-requests", type=int, default=30,
                        help="history requests to time (0: none)")
    parser.add_argument("--streams", type=int, default=300,
                        help="live streams open while /v1/lots is timed again (0: none)")
    parser.add_argument("--events", type=float, default=20.0,
                        help="lot status NOTIFYs a second while the streams are open")
    parser.add_argument("--only", choices=("all", "stream"), default="all",
                        help="stream: only /v1/lots at the fixed rate, idle and with streams")
    add_keep(parser, "server logs")
    parser.add_argument("--serve-reference", type=int, metavar="PORT",
                        help=argparse.SUPPRESS)  # the reference server's own process
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.serve_reference is not None:
        return _serve_reference(args.serve_reference)
    if (args.days < 1 or args.concurrency < 1 or args.duration <= 0 or args.rate <= 0
            or args.rate_duration <= 0 or args.connections < 1 or args.history_requests < 0
            or args.streams < 0 or args.events <= 0):
        return refuse("api", "--days, --concurrency and --connections must be >= 1, "
                      "--duration, --rate, --rate-duration and --events > 0, --history-requests "
                      "and --streams >= 0")
    return run_main(lambda: run(args), as_json=args.json, to_json=Result.as_dict, table=table,
                    log=logger, quiet=["httpx"])


if __name__ == "__main__":
    sys.exit(main())
