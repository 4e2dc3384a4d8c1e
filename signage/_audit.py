"""The signs' audit trail: a ``sign_log`` row for every push that may have changed what a
sign shows (NOTIFYed on ``parkleit_sign_content`` as it commits) and for every failed one, each
sign's health in ``sign_state``; and the stored form of sign content the API and the demo read.

Rows go through a bounded queue (``LOG_QUEUE_MAX``) to one writer task; if the database stays
away until it is full, sign tasks wait. Health snapshots are coalesced per sign.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import psycopg
from prometheus_client import Counter, Gauge
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from core import channels
from core.city import City
from core.db import queries
from core.runtime import Backoff
from signage._content import LineContent, SignContent

__all__ = ["AuditLog", "Health", "content_from_json", "content_json", "read_sign_states"]

logger = logging.getLogger("signage._service")

LOG_QUEUE_MAX = 10_000
WRITE_BATCH = 500
TRANSIENT_DB = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)


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


@dataclass
class Health:
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


class _Metrics(Protocol):
    db_errors: Counter
    log_queue: Gauge


class AuditLog:
    """Queues ``sign_log`` rows and ``sign_state`` snapshots; ``run`` writes them in order."""

    def __init__(self, city_id: str, metrics: _Metrics) -> None:
        self.city_id = city_id
        self.metrics = metrics
        self._rows: asyncio.Queue[dict[str, Any]] = asyncio.Queue(LOG_QUEUE_MAX)
        self._health_rows: dict[str, dict[str, Any]] = {}
        self._write_pending = asyncio.Event()
        self._writer_closing = False

    async def finish(self, writer: asyncio.Task[None], deadline: float) -> None:
        """Let ``writer`` (the task of ``run``) write what is queued, for ``deadline`` s."""
        self._writer_closing = True
        self._write_pending.set()
        try:
            async with asyncio.timeout(deadline):
                await writer
        except TimeoutError:
            logger.error("gave up writing %d sign_log rows at shutdown", self._rows.qsize())
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def audit(self, at: datetime, sign_id: str, content: dict[str, Any], *,
                    ack: str | None = None, error: str | None = None,
                    term: int | None = None) -> None:
        """Queue one ``sign_log`` row (ok without ``error``; ``term``: the leadership term it
        was pushed in); waits while the queue is full."""
        await self._rows.put({"time": at, "sign_id": sign_id, "content": Jsonb(content),
                              "ok": error is None, "error": error, "ack": ack, "term": term})
        self.metrics.log_queue.set(self._rows.qsize())
        self._write_pending.set()

    def record_health(self, sign_id: str, health: Health, at: datetime) -> None:
        """Queue the sign's current ``sign_state`` row (replacing one not yet written)."""
        self._health_rows[sign_id] = health.row(sign_id, at)
        self._write_pending.set()

    async def run(self, pool: AsyncConnectionPool[Any]) -> None:
        """Write queued rows in batches, in order, one transaction each; retry outages."""
        rows: list[dict[str, Any]] = []
        health: dict[str, dict[str, Any]] = {}
        retry = Backoff(0.5, 30.0)
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
                await self._write(pool, rows, list(health.values()), self.city_id)
            except TRANSIENT_DB as exc:
                self.metrics.db_errors.inc()
                delay = retry.next()
                logger.warning("cannot write %d sign_log rows (%s); retrying in %.1f s",
                               len(rows), type(exc).__name__, delay)
                await asyncio.sleep(delay)
                continue
            except psycopg.Error as exc:  # retrying cannot help; keep the service running
                self.metrics.db_errors.inc()
                logger.error("the database refused %d sign_log rows and %d sign states: %s",
                             len(rows), len(health), str(exc).strip().splitlines()[0])
            rows, health = [], {}
            retry.reset()
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
