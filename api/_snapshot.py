"""Every lot's live view held in the process (``LotViews``), and its answers encoded once
(``Encoded``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import logging
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from fastapi import Request
from fastapi.responses import Response
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api._live import read_lots
from api._models import Lot
from core.city import Cities
from core.db import queries

__all__ = ["Encoded", "LotViews", "SeesOwnWrites"]

logger = logging.getLogger(__name__)

GZIP_MIN_BYTES = 1000  # as the app's gzip middleware: smaller bodies go out as they are
GZIP_LEVEL = 5


@dataclass(frozen=True, slots=True)
class Encoded:
    """One answer, encoded: body, its weak ETag, headers, and the gzip body if worth it."""

    body: bytes
    media_type: str
    headers: tuple[tuple[str, str], ...] = ()
    etag: str = field(init=False)
    gzipped: bytes | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "etag", f'W/"{hashlib.sha256(self.body).hexdigest()[:32]}"')
        object.__setattr__(self, "gzipped", gzip.compress(self.body, GZIP_LEVEL, mtime=0)
                           if len(self.body) >= GZIP_MIN_BYTES else None)

    def response(self, request: Request, extra: Mapping[str, str] | None = None) -> Response:
        """The answer for ``request``: gzip where the client takes it (the app's validators
        answer 304 to a matching If-None-Match, with this ETag)."""
        headers = {**dict(self.headers), **(extra or {}), "ETag": self.etag}
        body = self.body
        if self.gzipped is not None:
            headers["Vary"] = ", ".join(filter(None, (headers.get("Vary"), "Accept-Encoding")))
            if "gzip" in request.headers.get("accept-encoding", ""):
                body, headers["Content-Encoding"] = self.gzipped, "gzip"
        return Response(body, media_type=self.media_type, headers=headers)


class LotViews:
    """The live view of every lot of the installation, read again when it may have changed.

    The lot list, a lot, GeoJSON, CSV, ParkAPI and the DATEX II status change a few times a minute
    but are asked for many times a second. ``LotViews`` holds the view of every lot
    (``api._live.read_lots``) and reads it again only when it may have changed:

    - the live stream's LISTEN connection (``api._hub``) hears every commit that touches what a view
      shows (lot states, forecasts, a config reload) and calls ``invalidate``: the views are read
      again at once, in the background, while requests go on getting the views held (one read
      at a time; changes heard during a read make one more read after it). No answer is older
      than the database by more than the NOTIFY's way to this process and one read. Under a
      stream of changes (20 a second) no request waits for a read: waiting for one was most of
      ``/v1/lots``'s slowest answers with the live stream busy;
    - a write this process answered (``SeesOwnWrites``) and a LISTEN reconnect invalidate with
      ``wait``: the next request waits for a read begun after it, so a client that wrote sees
      its write in its next answer;
    - time alone changes a view (a count turns stale, a forecast's target passes, opening hours
      begin or end, a console event that closes lots begins or ends): the snapshot knows the
      first moment that happens and is read again then (the request waits), and in any case
      after ``max_age_s``;
    - while the LISTEN connection is down nothing tells it of changes: every request reads again.

    Each distinct answer (route, format, page, cities) is encoded once per snapshot, with its ETag
    and gzip body, so serving it costs no more than a constant.
    """

    def __init__(self, clock: Callable[[], datetime], max_age_s: float = 5.0) -> None:
        self.clock = clock
        self.max_age = timedelta(seconds=max_age_s)
        self.listening = False  # set by the hub while its LISTEN connection is up
        self.reads = 0  # times the views were read from the database
        self._views: dict[str, Lot] = {}
        self._cities: Cities | None = None
        self._pool: AsyncConnectionPool[AsyncConnection[Any]] | None = None
        self._valid_until: datetime | None = None
        self._changes = 1  # changes heard (invalidate)
        self._needed = 1  # the changes a request must see read before its answer
        self._read_after = 0  # the changes heard when the views held began to be read
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task[None] | None = None
        self._encoded: dict[Hashable, Encoded] = {}

    def invalidate(self, wait: bool = False) -> None:
        """Something a view shows may have changed: read again, in the background, or before
        the next answer (``wait``, and while nothing was read yet)."""
        self._changes += 1
        if wait or self._pool is None:
            self._needed = self._changes
        elif self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(
                self._refreshing(), name="api-lot-views")

    async def close(self) -> None:
        """Stop a background read (the hub stops)."""
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh

    def _current(self, cities: Cities, now: datetime, changes: int) -> bool:
        """Whether the views were read after the ``changes``-th change and are still valid."""
        return (self.listening and self._read_after >= changes and cities is self._cities
                and self._valid_until is not None and now < self._valid_until)

    async def get(self, pool: AsyncConnectionPool[AsyncConnection[Any]], cities: Cities,
                  now: datetime) -> Mapping[str, Lot]:
        """Every lot of ``cities`` as the API shows it at ``now``, keyed by id."""
        needed = self._needed
        if self._current(cities, now, needed):
            return self._views
        async with self._lock:
            # A read that began after the changes this request must see is new enough for
            # it: the requests that waited share one read, not one each.
            if not self._current(cities, now, needed):
                await self._read(pool, cities, now)
            return self._views

    async def _refreshing(self) -> None:
        """Read again while changes were heard since the last read began (the background)."""
        while self.listening and self._read_after < self._changes and self._pool is not None:
            try:
                async with self._lock:
                    if self._read_after < self._changes and self._cities is not None:
                        await self._read(self._pool, self._cities, self.clock())
            except (psycopg.Error, PoolTimeout, OSError) as exc:
                logger.warning("lot views not read again (%s): the next request reads them",
                               type(exc).__name__)
                self._needed = self._changes
                return

    async def _read(self, pool: AsyncConnectionPool[AsyncConnection[Any]], cities: Cities,
                    now: datetime) -> None:
        began = self._changes  # changes heard during the read make another
        lots = [(city, lot) for city in cities for lot in city.lots]
        async with pool.connection() as conn:
            views = await read_lots(conn, lots, now)
            cursor = await conn.execute(queries("api", "events")["next_event_change"],
                                        {"now": now})
            change = await cursor.fetchone()
        self.reads += 1
        self._read_after = began
        by_id = {view.id: view for view in views}
        if by_id != self._views or cities is not self._cities:
            self._views, self._encoded = by_id, {}
        self._cities, self._pool = cities, pool
        self._valid_until = _valid_until(cities, views, now, self.max_age,
                                         change[0] if change else None)

    def encoded(self, key: Hashable, make: Callable[[], Encoded]) -> Encoded:
        """The answer ``key`` of the current views (``make`` builds it the first time)."""
        answer = self._encoded.get(key)
        if answer is None:
            answer = self._encoded[key] = make()
        return answer


def _valid_until(cities: Cities, views: list[Lot], now: datetime, max_age: timedelta,
                 event_change: datetime | None = None) -> datetime:
    """The first moment a view read at ``now`` changes without a write to the database
    (``event_change``: the next start or end of a console event, which closes lots)."""
    moments = [now + max_age]
    if event_change is not None:
        moments.append(event_change)
    for view in views:
        if view.updated is not None and not view.stale:
            moments.append(view.updated + timedelta(seconds=view.stale_after_s))
        if view.forecast_30 is not None:
            moments.append(view.forecast_30.target_time)
    if any(lot.opening_hours != "24/7" for city in cities for lot in city.lots):
        # Opening hours begin and end on whole minutes.
        moments.append(now.replace(second=0, microsecond=0) + timedelta(minutes=1))
    return max(min(moments), now + timedelta(milliseconds=1))


class SeesOwnWrites:
    """ASGI middleware: a write this process answers (any method but GET, HEAD and OPTIONS)
    makes the lots' views wait for a read before their next answer, marked as its answer
    starts, after its commit: a client that closed a lot sees it closed in its next request
    here (other processes hear the write's NOTIFY)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return

        async def answered(message: Message) -> None:
            if message["type"] == "http.response.start":
                hub = getattr(scope["app"].state, "hub", None)
                if hub is not None:
                    hub.views.invalidate(wait=True)
            await send(message)

        await self.app(scope, receive, answered)
