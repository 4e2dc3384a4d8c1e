"""Lot status into signage: ``LISTEN`` on a connection of its own, with a reconnect and a
re-read of everything after it (what changed meanwhile was not heard)."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from core import channels
from core.db import alisten
from core.runtime import Backoff

if TYPE_CHECKING:
    from signage._service import SignageService

__all__ = ["LotFeed"]

logger = logging.getLogger("signage._service")


class LotFeed:
    """The LISTEN connection: lot status notifications, with a reconnect and a re-read."""

    def __init__(self, service: SignageService) -> None:
        self.service = service
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def connect(self) -> None:
        """LISTEN on a connection of its own (a pooled one would lose it)."""
        conn = await psycopg.AsyncConnection.connect(self.service.settings.DATABASE_URL,
                                                     autocommit=True, connect_timeout=5)
        try:
            await alisten(conn, (channels.LOT_STATE, channels.SIGN_OVERRIDE))
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def run(self, pool: AsyncConnectionPool[Any]) -> None:
        service, retry = self.service, Backoff(1.0, 30.0)
        while not service.stopping:
            if self._conn is None:
                try:
                    await self.connect()
                    await service.resync(pool)
                except (psycopg.Error, PoolTimeout) as exc:
                    await self.close()
                    service.metrics.db_errors.inc()
                    delay = retry.next()
                    logger.warning("cannot LISTEN for lot changes (%s); retrying in %.0f s",
                                   type(exc).__name__, delay)
                    await service.sleep(delay)
                    continue
                logger.info("listening for lot changes again")
                retry.reset()
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
