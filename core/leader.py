"""Leadership among replicas of a service, through the database every service already has.

Two instances of signage may run for one city (two hosts, patched one at a time); one leads and
acts, the other stands by with its state warm. The leader holds a PostgreSQL advisory lock on a
connection of its own, so lost connection = lost leadership:

- The database ends that session once it has been idle for ``LEADER_LEASE_S``
  (``idle_session_timeout``): a leader that froze, died or was cut off frees the lock within
  the lease, whatever TCP notices. A standby tries for the lock every ``LEADER_CHECK_S``.
- The leader checks its session every ``LEADER_CHECK_S`` and acts only while its last good
  check was sent less than two checks ago (``leading``); a check that fails or has no answer
  after two checks' time ends its leadership. A new leader waits those two checks before it acts:
  whoever held the lock before it got its last answer before the lock was free, so it has
  stopped acting by then - no two instances act at once, however the old one lost the lock
  (killed, its session ended by the database, cut off).
- Each leadership takes the next term (table ``leader_terms``); the leader's acts carry it
  (``sign_log.term``), so the acts of two leaders can always be told apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Gauge

from core.db import queries
from core.runtime import Backoff
from core.settings import Settings

__all__ = ["Leadership", "leader_gauge"]

logger = logging.getLogger(__name__)


class Leadership:
    """Whether this instance leads ``service`` for ``city``; ``run`` keeps it up to date."""

    def __init__(self, settings: Settings, service: str, city: str, holder: str,
                 on_change: Callable[[bool], None] | None = None) -> None:
        self.settings, self.service, self.city, self.holder = settings, service, city, holder
        self.term: int | None = None  # of the current leadership, None while standing by
        self._on_change = on_change
        self._acting = (0.0, 0.0)  # monotonic: the leader acts from, until (its last check)
        self._standing_by = False  # said so in the log
        digest = hashlib.sha256(f"parkleit/{service}/{city}".encode()).digest()
        self._key = int.from_bytes(digest[:8], "big", signed=True)

    def leading(self) -> bool:
        """Whether to act now: leader, and its last good check recent enough."""
        begins, ends = self._acting
        return self.term is not None and begins <= time.monotonic() < ends

    async def run(self, stopping: asyncio.Event) -> None:
        """Take and hold the leadership until ``stopping`` is set; the lock goes with the
        connection at the end."""
        settings, retry = self.settings, Backoff(self.settings.LEADER_CHECK_S, 10.0)
        check_s, lease_ms = settings.LEADER_CHECK_S, int(settings.LEADER_LEASE_S * 1000)
        while not stopping.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                        settings.DATABASE_URL, autocommit=True, connect_timeout=5,
                        application_name=f"parkleit-{self.service}-leadership",
                        options=f"-c idle_session_timeout={lease_ms}") as conn:
                    retry.reset()
                    while not stopping.is_set():
                        sent = time.monotonic()
                        async with asyncio.timeout(2 * check_s):
                            await self._check(conn)
                        if self.term is not None:
                            self._acting = (self._acting[0], sent + 2 * check_s)
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stopping.wait(), check_s)
            except (psycopg.Error, OSError, TimeoutError) as exc:
                self._step_down(str(exc).strip().splitlines()[0] if str(exc).strip()
                                else type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), retry.next())
        self._step_down("stopping")

    def start_thread(self, stop: threading.Event) -> threading.Thread:
        """``run`` in a thread of its own, until ``stop`` is set (for a threaded service)."""

        async def run() -> None:
            stopping = asyncio.Event()

            async def watch() -> None:
                while not stop.is_set():
                    await asyncio.sleep(0.1)
                stopping.set()

            watcher = asyncio.create_task(watch())
            try:
                await self.run(stopping)
            finally:
                watcher.cancel()

        thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True,
                                  name=f"{self.service}-leadership")
        thread.start()
        return thread

    async def _check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        q = queries("core")
        if self.term is not None:
            await conn.execute(q["leader_check"])
            return
        row = await (await conn.execute(q["try_lead"], {"key": self._key})).fetchone()
        if not row or not row[0]:
            if not self._standing_by:
                logger.info("standing by: another instance leads %s of %s", self.service,
                            self.city)
                self._standing_by = True
            return
        found = await (await conn.execute(q["new_term"], {
            "service": self.service, "city": self.city, "holder": self.holder,
            "since": self.settings.clock.now()})).fetchone()
        assert found is not None
        self.term, self._standing_by = int(found[0]), False
        self._acting = (time.monotonic() + 2 * self.settings.LEADER_CHECK_S, 0.0)
        logger.info("leading %s of %s (term %d)", self.service, self.city, self.term)
        if self._on_change is not None:
            self._on_change(True)

    def _step_down(self, reason: str) -> None:
        if self.term is None:
            return
        logger.warning("no longer leading %s of %s (term %d): %s", self.service, self.city,
                       self.term, reason)
        self.term, self._acting = None, (0.0, 0.0)
        if self._on_change is not None:
            self._on_change(False)


def leader_gauge(registry: CollectorRegistry) -> Gauge:
    """``parkleit_leader{service, city}`` in ``registry``: what a service under leadership sets
    on its metrics port (``Leadership``'s ``on_change``)."""
    return Gauge("parkleit_leader",
                 "1 while this instance leads its service for the city, 0 standing by",
                 ["service", "city"], registry=registry)
