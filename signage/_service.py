"""The signage service: lot changes in, every affected sign pushed, every change audited.

Where lot status comes from: ``LISTEN parkleit_lot_state``. Ingest NOTIFYs inside the
transaction that changes a lot, so the notification arrives as the change commits (the
retained MQTT status goes out only after the commit, one hop later); PostgreSQL delivers
notifications in commit order (with several ingest workers the retained topic can be
overwritten out of order); a notification carries the whole status, so no query is needed per
change; and the audit log and the forecasts live in the same database, so the signs depend on
one server less. What LISTEN cannot give is what happened while nobody listened: the service
reads ``lot_state`` after each (re)connect - after LISTEN, so nothing committed in between goes
unheard - and every ``SIGNAGE_RESYNC_S``. A status older (by ``updated``) than the one held is
ignored, so a late read or notification never undoes a newer one.

One task per sign renders (``signage._render.render``) on every change of its lots and every
``SIGNAGE_TICK_S`` (staleness and the end of a wiggle hold need no message) and pushes when the
content differs from what the sign last acknowledged, or when the keep-alive is due
(``SIGNAGE_KEEPALIVE_S``): each push re-activates the message for a limited time, so a sign
whose central has died falls back to its safe state by itself. The service never blanks the
signs when it stops. A failed push is retried after an exponential backoff with jitter; one
slow or dead sign only ever holds up its own task.

Audit: ``sign_log`` gets a row, with the sign's ack, for every push that may have changed what
the sign shows - new content, the first push after the service started, the first push after a
failure - and a row with the reason for every failed push. Keep-alives that only re-confirm
are not logged, so a sign showed at time t the content of its newest ok row before t, unless a
failure row lies in between (the sign may have fallen back after its comm-loss time).
``sign_state`` holds each sign's health and is updated on every push, keep-alives included.

Overrides: an operator's content for a sign (table ``sign_overrides``, written by the admin
API, which NOTIFYs ``parkleit_sign_override``) replaces the rendered content until its
``until``; the service re-reads the table on that notification and with every resync.
Each ok ``sign_log`` row is NOTIFYed on ``parkleit_sign_content`` as it commits (the API's
live stream).

Backpressure: log rows go through a bounded queue (``LOG_QUEUE_MAX``) to one writer task; if
the database stays away until it is full, sign tasks wait instead of pushing content nobody
could prove was shown, and the signs fall back to their safe state. Health snapshots are
coalesced per sign, so they need no queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from core import channels
from core.city import City, Sign
from core.db import queries
from core.mqtt import ServiceStatus
from core.registry import sync_registry
from core.settings import Settings
from core.status import LotStatus
from signage._content import LineContent, SignContent, SignError
from signage._drivers import Drivers
from signage._render import ForecastPoint, Observation, SignState, render

__all__ = ["SignageService",
           "content_from_json", "content_json", "read_sign_states", "timing_problem"]

logger = logging.getLogger(__name__)

LOG_QUEUE_MAX = 10_000
WRITE_BATCH = 500
FORECAST_MAX_AGE = timedelta(hours=3)  # an older forecast run is not shown on any sign
ERROR_MAX_CHARS = 500
_TRANSIENT_DB = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)


def content_json(content: SignContent) -> dict[str, Any]:
    """``content`` as ``sign_log`` and ``sign_state`` store it: ``{"lines": [...]}``."""
    return {"lines": [{"label": line.label, "arrow": line.arrow, "text": line.text}
                      for line in content.lines]}


def content_from_json(sign_id: str, document: Mapping[str, Any]) -> SignContent:
    """The SignContent of a document written by ``content_json``."""
    return SignContent(sign_id, tuple(
        LineContent(str(line["label"]), line["arrow"], str(line["text"]))
        for line in document["lines"]))


def read_sign_states(conn: psycopg.Connection[Any], city: City) -> list[dict[str, Any]]:
    """Every sign of ``city`` with its health (``sign_state``; None before its first push)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(queries("signage")["sign_health"], {"city": city.id}).fetchall()
    for row in rows:
        if row["content"] is not None:
            row["content"] = content_from_json(row["sign_id"], row["content"])
    return rows


def timing_problem(settings: Settings, city: City) -> str | None:
    """Why the signage settings cannot work for ``city``'s signs (one line), or None."""
    if settings.SIGNAGE_RETRY_MIN_S > settings.SIGNAGE_RETRY_MAX_S:
        return "PARKLEIT_SIGNAGE_RETRY_MIN_S must not exceed PARKLEIT_SIGNAGE_RETRY_MAX_S"
    if city.signs:
        # A sign falls back once its central has been quiet for about its stale limit; half
        # of it leaves room for one lost keep-alive.
        shortest = min(city.signs, key=lambda sign: sign.stale_after_s)
        keepalive = settings.SIGNAGE_KEEPALIVE_S
        if keepalive > shortest.stale_after_s / 2:
            return (f"PARKLEIT_SIGNAGE_KEEPALIVE_S ({keepalive:g} s) must be "
                    f"at most half the stale_after_s of sign {shortest.id} "
                    f"({shortest.stale_after_s} s), or the sign falls back between keep-alives")
    return None


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.pushes = Counter("parkleit_signage_pushes", "Pushes to signs, by result",
                              ["sign", "result"], registry=r)
        self.changes = Counter("parkleit_signage_changes",
                               "Pushes that may have changed what a sign shows (logged)",
                               ["sign"], registry=r)
        self.failing = Gauge("parkleit_signage_consecutive_failures",
                             "Failed pushes in a row", ["sign"], registry=r)
        self.push_seconds = Histogram(
            "parkleit_signage_push_seconds", "Duration of one push, driver round trips included",
            registry=r, buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.reaction = Histogram(
            "parkleit_signage_reaction_seconds",
            "From hearing a lot change to the sign's ack of the content it caused", registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.lot_changes = Counter("parkleit_signage_lot_changes",
                                   "Lot status notifications heard", registry=r)
        self.db_errors = Counter("parkleit_signage_database_errors",
                                 "Failed reads and writes of the database", registry=r)
        self.log_queue = Gauge("parkleit_signage_log_queue_depth",
                               "sign_log rows waiting to be written", registry=r)


@dataclass
class _Health:
    """One ``sign_state`` row as the sign's task keeps it."""

    content: dict[str, Any] | None = None
    shown_since: datetime | None = None
    last_ack: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0

    def row(self, sign_id: str, updated: datetime) -> dict[str, Any]:
        return {"sign_id": sign_id,
                "content": None if self.content is None else Jsonb(self.content),
                "shown_since": self.shown_since, "last_ack": self.last_ack,
                "last_error": self.last_error, "last_error_at": self.last_error_at,
                "consecutive_failures": self.consecutive_failures, "updated": updated}


def _backoff(failures: int, low: float, high: float) -> float:
    """Exponential backoff with +-20 % jitter, so failing signs do not retry in step."""
    return min(high, low * 2.0 ** min(failures - 1, 30)) * random.uniform(0.8, 1.2)


class _SignTask:
    """Renders and pushes one sign; nothing else ever waits for this sign."""

    def __init__(self, service: SignageService, sign: Sign, health: _Health) -> None:
        self.service = service
        self.sign = sign
        self.health = health
        self.wake = asyncio.Event()
        self.heard_at: float | None = None  # when a lot change not yet pushed was heard
        self._state: SignState | None = None
        self._acked: SignContent | None = None  # what the sign confirmed at the last good push
        self._log_next_ok = True  # no good push yet in this process, or the last one failed
        self._failures = 0
        self._retry_at = 0.0
        self._keepalive_at = 0.0

    def lot_changed(self) -> None:
        if self.heard_at is None:
            self.heard_at = time.monotonic()
        self.wake.set()

    async def run(self) -> None:
        service, settings = self.service, self.service.settings
        while not service.stopping:
            self.wake.clear()  # before rendering: a change heard from now on wakes us again
            at = service.clock.now()
            content, self._state = render(self.sign, service.city, service.observations,
                                          at, previous=self._state,
                                          forecasts=service.forecasts)
            # An operator's override replaces what the rules render until it ends; the
            # rendering goes on underneath, so hysteresis and holds are right afterwards.
            content = service.override_for(self.sign.id, at) or content
            now = time.monotonic()
            due = content != self._acked or now >= self._keepalive_at
            if not due:
                self.heard_at = None  # the change did not change this sign
            elif now >= self._retry_at:
                await self._push(content)
                continue
            wake_at = min(now + settings.SIGNAGE_TICK_S,
                          self._retry_at if due else self._keepalive_at)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, wake_at - now)):
                    await self.wake.wait()

    async def _push(self, content: SignContent) -> None:
        started, heard, self.heard_at = time.monotonic(), self.heard_at, None
        try:
            driver = self.service.drivers.driver_for(self.sign)
            ack = await driver.push(self.sign, content)
        except SignError as exc:
            reason = str(exc)
        except Exception as exc:  # a driver bug fails this sign's push, not the service
            logger.exception("sign %s: the driver failed", self.sign.id)
            reason = f"driver error: {type(exc).__name__}: {exc}"
        else:
            await self._succeeded(content, ack.detail, started, heard)
            return
        if heard is not None:
            self.heard_at = heard  # still not on the sign: the reaction time runs on
        await self._failed(content, reason, started)

    async def _succeeded(self, content: SignContent, detail: str, started: float,
                         heard: float | None) -> None:
        service, sign_id, metrics = self.service, self.sign.id, self.service.metrics
        done, at = time.monotonic(), service.clock.now()
        metrics.push_seconds.observe(done - started)
        metrics.pushes.labels(sign_id, "ok").inc()
        metrics.failing.labels(sign_id).set(0)
        if heard is not None:
            metrics.reaction.observe(done - heard)
        if self._log_next_ok or content != self._acked:
            document = content_json(content)
            self.health.content, self.health.shown_since = document, at
            metrics.changes.labels(sign_id).inc()
            logger.info("sign %s shows %s", sign_id,
                        " | ".join(f"{line.label} {line.text}".strip() for line in content.lines))
            await service.audit(at, sign_id, document, ack=detail or None)
        self._acked, self._log_next_ok = content, False
        self._failures, self._retry_at = 0, 0.0
        self._keepalive_at = done + service.settings.SIGNAGE_KEEPALIVE_S
        self.health.last_ack, self.health.consecutive_failures = at, 0
        service.record_health(sign_id, self.health, at)

    async def _failed(self, content: SignContent, reason: str, started: float) -> None:
        service, sign_id, settings = self.service, self.sign.id, self.service.settings
        at = service.clock.now()
        reason = reason.replace("\x00", "?")[:ERROR_MAX_CHARS] or "unknown error"
        self._failures += 1
        self._log_next_ok = True
        delay = _backoff(self._failures, settings.SIGNAGE_RETRY_MIN_S,
                         settings.SIGNAGE_RETRY_MAX_S)
        self._retry_at = time.monotonic() + delay
        service.metrics.push_seconds.observe(time.monotonic() - started)
        service.metrics.pushes.labels(sign_id, "failed").inc()
        service.metrics.failing.labels(sign_id).set(self._failures)
        logger.warning("sign %s: push failed (%d in a row), retrying in %.1f s: %s", sign_id,
                       self._failures, delay, reason)
        self.health.last_error, self.health.last_error_at = reason, at
        self.health.consecutive_failures += 1
        await service.audit(at, sign_id, content_json(content), error=reason)
        service.record_health(sign_id, self.health, at)


class _LotFeed:
    """The LISTEN connection: lot status notifications, with a reconnect and a re-read."""

    def __init__(self, service: SignageService) -> None:
        self.service = service
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def connect(self) -> None:
        """LISTEN on a connection of its own (a pooled one would lose it)."""
        conn = await psycopg.AsyncConnection.connect(self.service.settings.DATABASE_URL,
                                                     autocommit=True, connect_timeout=5)
        try:
            for channel in (channels.LOT_STATE, channels.SIGN_OVERRIDE):
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def run(self, pool: AsyncConnectionPool[Any]) -> None:
        service, delay = self.service, 1.0
        while not service.stopping:
            if self._conn is None:
                try:
                    await self.connect()
                    await service.resync(pool)
                except (psycopg.Error, PoolTimeout) as exc:
                    await self.close()
                    service.metrics.db_errors.inc()
                    logger.warning("cannot LISTEN for lot changes (%s); retrying in %.0f s",
                                   type(exc).__name__, delay)
                    await service.sleep(delay * random.uniform(0.8, 1.2))
                    delay = min(delay * 2, 30.0)
                    continue
                logger.info("listening for lot changes again")
                delay = 1.0
            assert self._conn is not None
            try:
                async for note in self._conn.notifies(timeout=0.5):
                    if note.channel == channels.SIGN_OVERRIDE:
                        await service.resync(pool)  # rare: one read of everything
                    else:
                        service.lot_changed(note.payload)
            except psycopg.Error as exc:
                # What changes meanwhile is read from lot_state after the reconnect.
                service.metrics.db_errors.inc()
                logger.warning("lost the LISTEN connection (%s); reconnecting",
                               type(exc).__name__)
                await self.close()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()


class SignageService:
    """Keeps every sign of a city showing its lots; ``run()`` blocks until ``stop()``."""

    def __init__(self, settings: Settings, city: City, *, drivers: Drivers | None = None) -> None:
        self.settings = settings
        self.clock = settings.clock
        self.city = city
        self.drivers = drivers if drivers is not None else Drivers()
        self.metrics = _Metrics()
        self.exit_code = 0
        self.observations: dict[str, Observation] = {}
        self.forecasts: dict[str, tuple[ForecastPoint, ...]] = {}
        self.overrides: dict[str, tuple[SignContent, datetime | None]] = {}
        self._signs_of_lot: dict[str, list[str]] = {}
        for sign in city.signs:
            for line in sign.lines:
                for lot_id in (*line.lots, *((line.alternative,) if line.alternative else ())):
                    signs = self._signs_of_lot.setdefault(lot_id, [])
                    if sign.id not in signs:
                        signs.append(sign.id)
        self._forecast_lots = sorted({lot_id for sign in city.signs if sign.display.show_forecast
                                      for line in sign.lines for lot_id in line.lots})
        self._tasks: dict[str, _SignTask] = {}
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event = asyncio.Event()
        self._rows: asyncio.Queue[dict[str, Any]] = asyncio.Queue(LOG_QUEUE_MAX)
        self._health_rows: dict[str, dict[str, Any]] = {}
        self._write_pending = asyncio.Event()
        self._writer_closing = False

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """Whether ``stop()`` was called (or a task died)."""
        return self._stopping

    def stop(self) -> None:
        """Ask the service to finish; safe to call more than once, from any thread."""
        if self._stopping:
            return
        self._stopping = True
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed already
                loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        self._stop_event.set()
        for task in self._tasks.values():
            task.wake.set()

    def _fatal(self, reason: str) -> None:
        logger.error("stopping: %s", reason)
        self.exit_code = 2
        self.stop()

    def run(self) -> int:
        """Serve the signs until stopped. Returns the exit code."""
        with psycopg.connect(self.settings.DATABASE_URL, autocommit=True,
                             connect_timeout=5) as conn:
            sync_registry(conn, self.city)  # sign_state refers to the registry's signs
        asyncio.run(self._main())
        logger.info("stopped")
        return self.exit_code

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._stopping:
            return
        settings = self.settings
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            settings.DATABASE_URL, min_size=1, max_size=3, name="signage", open=False,
            check=AsyncConnectionPool.check_connection, reconnect_timeout=3600.0,
            kwargs={"autocommit": True, "connect_timeout": 5})
        await pool.open(wait=True, timeout=10)
        feed = _LotFeed(self)
        status: ServiceStatus | None = None
        metrics_server = None
        try:
            status = ServiceStatus(
                settings, self.city.id, "signage",
                client_id=f"parkleit-signage-{socket.gethostname()}-{os.getpid()}",
                on_fatal=self._fatal).start()
            if settings.SIGNAGE_METRICS_PORT:
                metrics_server, _ = start_http_server(settings.SIGNAGE_METRICS_PORT,
                                                      registry=self.metrics.registry)
            health = await self._load_health(pool)
            await feed.connect()  # LISTEN first, then read: no change falls in between
            await self.resync(pool)
            self._tasks = {sign.id: _SignTask(self, sign, health.get(sign.id, _Health()))
                           for sign in self.city.signs}
            writer = asyncio.create_task(self._write_loop(pool), name="signage-writer")
            background = [asyncio.create_task(feed.run(pool), name="signage-listen"),
                          asyncio.create_task(self._resync_loop(pool), name="signage-resync")]
            workers = [asyncio.create_task(task.run(), name=f"sign-{sign_id}")
                       for sign_id, task in self._tasks.items()]
            logger.info("serving %d signs of %s; listening for lot changes",
                        len(workers), self.city.id)
            await self._supervise([*background, *workers, writer])
            await self._shutdown(workers, background, writer)
        finally:
            await feed.close()
            await self.drivers.close()
            if status is not None:
                status.close()
            await pool.close(timeout=2)
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()

    async def _supervise(self, tasks: list[asyncio.Task[None]]) -> None:
        """Wait for ``stop()``; a task that ends before it stops the service with exit 1."""
        stopping = asyncio.create_task(self._stop_event.wait(), name="signage-stop")
        done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        for task in done - {stopping}:
            error = None if task.cancelled() else task.exception()
            if error is None and self._stopping:
                continue  # it saw the stop before this wait did
            logger.error("task %s ended unexpectedly: %s", task.get_name(),
                         repr(error) if error else "returned", exc_info=error)
            self.exit_code = 1
        self._stopping = True
        self._wake_all()

    async def _shutdown(self, workers: list[asyncio.Task[None]],
                        background: list[asyncio.Task[None]],
                        writer: asyncio.Task[None]) -> None:
        # Pushes under way finish and are audited; what the signs show stays until their own
        # timers make them fall back.
        deadline = self.settings.SHUTDOWN_TIMEOUT_S
        _, late = await asyncio.wait(workers, timeout=deadline)
        for task in [*late, *background]:
            task.cancel()
        await asyncio.gather(*late, *background, return_exceptions=True)
        self._writer_closing = True
        self._write_pending.set()
        try:
            async with asyncio.timeout(deadline):
                await writer
        except TimeoutError:
            logger.error("gave up writing %d sign_log rows at shutdown", self._rows.qsize())
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def sleep(self, seconds: float) -> None:
        """Sleep, but no longer than until ``stop()``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop_event.wait()

    # -- lot status in ----------------------------------------------------------------------

    def lot_changed(self, payload: str) -> None:
        """Take one ``parkleit_lot_state`` notification (JSON of the lot's status)."""
        try:
            city_id, status = LotStatus.from_notification(payload)
        except ValueError as exc:
            logger.warning("unreadable lot notification: %s", exc)
            return
        if city_id != self.city.id or status.lot_id not in self._signs_of_lot:
            return
        self.metrics.lot_changes.inc()
        self._observe(status.lot_id, Observation(status.free, status.capacity, status.status,
                                                 status.updated))

    def _observe(self, lot_id: str, observation: Observation) -> None:
        held = self.observations.get(lot_id)
        if held == observation:
            return
        if held is not None and held.updated is not None and (
                observation.updated is None or observation.updated < held.updated):
            return  # older than what we hold: a late read or notification
        self.observations[lot_id] = observation
        for sign_id in self._signs_of_lot.get(lot_id, ()):
            task = self._tasks.get(sign_id)
            if task is not None:
                task.lot_changed()

    def override_for(self, sign_id: str, now: datetime) -> SignContent | None:
        """The operator's content for the sign if an override is in force at ``now``."""
        override = self.overrides.get(sign_id)
        if override is None or (override[1] is not None and override[1] <= now):
            return None
        return override[0]

    async def resync(self, pool: AsyncConnectionPool[Any]) -> None:
        """Read every shown lot's status (and forecasts, and overrides) from the database."""
        q, now = queries("signage"), self.clock.now()
        async with pool.connection(timeout=5) as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(q["sign_overrides"], {"city": self.city.id})
            overrides = {row["sign_id"]: (content_from_json(row["sign_id"], row["content"]),
                                          row["until"]) for row in await cur.fetchall()}
            await cur.execute(q["lot_states"], {"lot_ids": list(self._signs_of_lot)})
            states = await cur.fetchall()
            points: dict[str, list[ForecastPoint]] = {}
            if self._forecast_lots:
                await cur.execute(q["latest_forecasts"], {
                    "lot_ids": self._forecast_lots, "since": now - FORECAST_MAX_AGE,
                    "now": now})
                for row in await cur.fetchall():
                    points.setdefault(row["lot_id"], []).append(
                        ForecastPoint(row["target_time"], row["p_space"]))
        for row in states:
            self._observe(row["lot_id"], Observation(row["free"], row["capacity"],
                                                     row["status"], row["updated"]))
        if overrides != self.overrides:
            changed = overrides.keys() | self.overrides.keys()
            self.overrides = overrides
            for sign_id in changed:
                if sign_id in self._tasks:
                    self._tasks[sign_id].wake.set()
        forecasts = {lot_id: tuple(rows) for lot_id, rows in points.items()}
        if forecasts != self.forecasts:
            self.forecasts = forecasts
            for lot_id in self._forecast_lots:
                for sign_id in self._signs_of_lot.get(lot_id, ()):
                    if sign_id in self._tasks:
                        self._tasks[sign_id].wake.set()

    async def _resync_loop(self, pool: AsyncConnectionPool[Any]) -> None:
        while True:
            await self.sleep(self.settings.SIGNAGE_RESYNC_S)
            if self.stopping:
                return
            try:
                await self.resync(pool)
            except (psycopg.Error, PoolTimeout) as exc:
                self.metrics.db_errors.inc()
                logger.warning("cannot read the lot states (%s)", type(exc).__name__)

    async def _load_health(self, pool: AsyncConnectionPool[Any]) -> dict[str, _Health]:
        """Each sign's health as the last run left it (failure counts and errors go on)."""
        async with pool.connection(timeout=5) as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(queries("signage")["sign_health"], {"city": self.city.id})
            rows = await cur.fetchall()
        return {row["sign_id"]: _Health(
            row["content"], row["shown_since"], row["last_ack"], row["last_error"],
            row["last_error_at"], row["consecutive_failures"]) for row in rows}

    # -- audit out --------------------------------------------------------------------------

    async def audit(self, at: datetime, sign_id: str, content: dict[str, Any], *,
                    ack: str | None = None, error: str | None = None) -> None:
        """Queue one ``sign_log`` row (ok without ``error``); waits while the queue is full."""
        await self._rows.put({"time": at, "sign_id": sign_id, "content": Jsonb(content),
                              "ok": error is None, "error": error, "ack": ack})
        self.metrics.log_queue.set(self._rows.qsize())
        self._write_pending.set()

    def record_health(self, sign_id: str, health: _Health, at: datetime) -> None:
        """Queue the sign's current ``sign_state`` row (replacing one not yet written)."""
        self._health_rows[sign_id] = health.row(sign_id, at)
        self._write_pending.set()

    async def _write_loop(self, pool: AsyncConnectionPool[Any]) -> None:
        """Write queued rows in batches, in order, one transaction each; retry outages."""
        rows: list[dict[str, Any]] = []
        health: dict[str, dict[str, Any]] = {}
        delay = 0.5
        while True:
            while len(rows) < WRITE_BATCH and not self._rows.empty():
                rows.append(self._rows.get_nowait())
            health.update(self._health_rows)  # newer snapshots replace older ones
            self._health_rows = {}
            if not rows and not health:
                if self._writer_closing:
                    return
                await self._write_pending.wait()
                self._write_pending.clear()
                continue
            try:
                await self._write(pool, rows, list(health.values()), self.city.id)
            except _TRANSIENT_DB as exc:
                self.metrics.db_errors.inc()
                logger.warning("cannot write %d sign_log rows (%s); retrying in %.1f s",
                               len(rows), type(exc).__name__, delay)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, 30.0)
                continue
            except psycopg.Error as exc:  # retrying cannot help; keep the service running
                self.metrics.db_errors.inc()
                logger.error("the database refused %d sign_log rows and %d sign states: %s",
                             len(rows), len(health), str(exc).strip().splitlines()[0])
            rows, health, delay = [], {}, 0.5
            self.metrics.log_queue.set(self._rows.qsize())

    @staticmethod
    async def _write(pool: AsyncConnectionPool[Any], rows: list[dict[str, Any]],
                     health: list[dict[str, Any]], city_id: str) -> None:
        q = queries("signage")
        shown = [json.dumps({"sign_id": row["sign_id"], "city": city_id,
                             "content": row["content"].obj,
                             "shown_since": row["time"].isoformat().replace("+00:00", "Z")})
                 for row in rows if row["ok"]]
        shown = [payload for payload in shown if len(payload.encode()) < 8000]  # NOTIFY's limit
        async with pool.connection(timeout=5) as conn, conn.transaction(), conn.cursor() as cur:
            if rows:
                await cur.executemany(q["insert_sign_log"], rows)
            if shown:  # heard at commit, with the rows (the API's live stream)
                await cur.execute(q["notify"], {"channel": channels.SIGN_CONTENT,
                                                 "payloads": shown})
            if health:
                await cur.executemany(q["upsert_sign_state"], health)
