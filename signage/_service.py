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

One task per sign (``signage._sign_task``) renders on every change of its lots and on a tick,
and pushes when the content differs from what the sign last acknowledged or the keep-alive is
due: each push re-activates the message for a limited time, so a sign whose central has died
falls back to its safe state by itself. The service never blanks the signs when it stops.
Every push that may have changed a sign is audited (``signage._audit``: ``sign_log``,
``sign_state``).

Overrides: an operator's content for a sign (table ``sign_overrides``, written by the admin
API, which NOTIFYs ``parkleit_sign_override``) replaces the rendered content until its
``until``; the service re-reads the table on that notification and with every resync.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import datetime, timedelta
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from core.charging import effective_states_async
from core.city import City
from core.db import open_async_pool, queries
from core.leader import Leadership, leader_gauge
from core.mqtt import ServiceStatus
from core.registry import sync_registry
from core.runtime import AsyncLifecycle, serve_metrics
from core.settings import Settings
from core.status import LotStatus
from signage._audit import AuditLog, Health, content_from_json
from signage._content import SignContent
from signage._drivers import Drivers
from signage._lot_feed import LotFeed
from signage._render import ForecastPoint, Observation
from signage._sign_task import SignTask

__all__ = ["SignageService", "timing_problem"]

logger = logging.getLogger(__name__)

FORECAST_MAX_AGE = timedelta(hours=3)  # an older forecast run is not shown on any sign


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
        self.leader = leader_gauge(r)
        self.log_queue = Gauge("parkleit_signage_log_queue_depth",
                               "sign_log rows waiting to be written", registry=r)


class SignageService(AsyncLifecycle):
    """Keeps every sign of a city showing its lots; ``run()`` blocks until ``stop()``."""

    def __init__(self, settings: Settings, city: City, *, drivers: Drivers | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.clock = settings.clock
        self.city = city
        self.drivers = drivers if drivers is not None else Drivers()
        self.metrics = _Metrics()
        self.observations: dict[str, Observation] = {}
        self.forecasts: dict[str, tuple[ForecastPoint, ...]] = {}
        self.overrides: dict[str, tuple[SignContent, datetime | None]] = {}
        # Free charging points per lot with chargers (read with their bays), for the signs'
        # charging lines; a lot none of whose points has reported is missing.
        self.charging: dict[str, int] = {}
        self._charging_signs = [sign.id for sign in city.signs
                                if any(line.kind == "charging" for line in sign.lines)]
        self._signs_of_lot: dict[str, list[str]] = {}
        for sign in city.signs:
            for line in sign.lines:
                for lot_id in (*line.lots, *((line.alternative,) if line.alternative else ())):
                    signs = self._signs_of_lot.setdefault(lot_id, [])
                    if sign.id not in signs:
                        signs.append(sign.id)
        self._forecast_lots = sorted({lot_id for sign in city.signs if sign.display.show_forecast
                                      for line in sign.lines for lot_id in line.lots})
        self._tasks: dict[str, SignTask] = {}
        self._status: ServiceStatus | None = None  # MQTT: online, and this instance's role
        self.leadership = Leadership(settings, "signage", city.id,
                                     f"{socket.gethostname()}-{os.getpid()}", self._led)
        self.log = AuditLog(city.id, self.metrics)
        self.audit, self.record_health = self.log.audit, self.log.record_health

    # -- lifecycle --------------------------------------------------------------------------

    def _led(self, leading: bool) -> None:
        """Leadership taken or lost: a new leader pushes every sign at once (it cannot know
        what they show); a former one stops at its next push (``SignTask`` asks first)."""
        self.metrics.leader.labels("signage", self.city.id).set(int(leading))
        if self._status is not None:
            self._status.set_role(leading, self.leadership.term)
        if leading:
            for task in self._tasks.values():
                task.push_now()

    def _wake(self) -> None:
        """At the stop: every sign task too (one waiting between pushes ends now)."""
        self._stop_event.set()
        for task in self._tasks.values():
            task.wake.set()

    def run(self) -> int:
        """Serve the signs until stopped. Returns the exit code."""
        with psycopg.connect(self.settings.DATABASE_URL, autocommit=True,
                             connect_timeout=5) as conn:
            sync_registry(conn, self.city)  # sign_state refers to the registry's signs
        asyncio.run(self._main())
        logger.info("stopped")
        return self.exit_code

    async def _main(self) -> None:
        if not self.enter_loop():
            return
        settings = self.settings
        pool = await open_async_pool(
            settings.DATABASE_URL, max_size=3, name="signage")
        feed = LotFeed(self)
        status: ServiceStatus | None = None
        stop_metrics = serve_metrics(0, self.metrics.registry)  # none yet
        try:
            status = self._status = ServiceStatus(
                settings, self.city.id, "signage",
                client_id=f"parkleit-signage-{socket.gethostname()}-{os.getpid()}",
                on_fatal=self.fatal).start()
            status.set_role(self.leadership.leading(), self.leadership.term)
            stop_metrics = serve_metrics(settings.SIGNAGE_METRICS_PORT, self.metrics.registry)
            health = await self._load_health(pool)
            await feed.connect()  # LISTEN first, then read: no change falls in between
            await self.resync(pool)
            self._tasks = {sign.id: SignTask(self, sign, health.get(sign.id, Health()))
                           for sign in self.city.signs}
            writer = asyncio.create_task(self.log.run(pool), name="signage-writer")
            background = [asyncio.create_task(self.leadership.run(self._stop_event),
                                              name="signage-leadership"),
                          asyncio.create_task(feed.run(pool), name="signage-listen"),
                          asyncio.create_task(self._resync_loop(pool), name="signage-resync")]
            workers = [asyncio.create_task(task.run(), name=f"sign-{sign_id}")
                       for sign_id, task in self._tasks.items()]
            logger.info("serving %d signs of %s; listening for lot changes",
                        len(workers), self.city.id)
            await self.supervise([*background, *workers, writer], cancel=False)
            await self._shutdown(workers, background, writer)
        finally:
            await feed.close()
            await self.drivers.close()
            if status is not None:
                status.close()
            await pool.close(timeout=2)
            stop_metrics()

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
        await self.log.finish(writer, deadline)

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
            charging: dict[str, int] = {}
            if self._charging_signs:
                for point in (await effective_states_async(conn, [self.city], now)).values():
                    charging[point.lot_id] = charging.get(point.lot_id, 0) + point.free
        for row in states:
            self._observe(row["lot_id"], Observation(row["free"], row["capacity"],
                                                     row["status"], row["updated"]))
        if charging != self.charging:
            self.charging = charging
            for sign_id in self._charging_signs:
                if sign_id in self._tasks:
                    self._tasks[sign_id].wake.set()
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

    async def _load_health(self, pool: AsyncConnectionPool[Any]) -> dict[str, Health]:
        """Each sign's health as the last run left it (failure counts and errors go on)."""
        async with pool.connection(timeout=5) as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(queries("signage")["sign_health"], {"city": self.city.id})
            rows = await cur.fetchall()
        return {row["sign_id"]: Health(
            row["content"], row["shown_since"], row["last_ack"], row["last_error"],
            row["last_error_at"], row["consecutive_failures"]) for row in rows}

