"""Every lot's live view held in the process (``LotViews``), and its answers encoded once
(``Encoded``).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from api._live import read_lots
from api._models import Lot
from core.city import Cities
from core.db import queries

__all__ = ["Encoded", "LotViews"]

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
      shows (lot states, forecasts, a config reload) and calls ``invalidate``: the next request
      reads the database again, so no answer is older than the database by more than the NOTIFY's
      way to this process;
    - time alone changes a view (a count turns stale, a forecast's target passes, opening hours
      begin or end, a console event that closes lots begins or ends): the snapshot knows the
      first moment that happens and is read again then, and in
      any case after ``max_age_s``;
    - while the LISTEN connection is down nothing tells it of changes: every request reads again.

    Each distinct answer (route, format, page, cities) is encoded once per snapshot, with its ETag
    and gzip body, so serving it costs no more than a constant.
    """

    def __init__(self, max_age_s: float = 5.0) -> None:
        self.max_age = timedelta(seconds=max_age_s)
        self.listening = False  # set by the hub while its LISTEN connection is up
        self.reads = 0  # times the views were read from the database
        self._views: dict[str, Lot] = {}
        self._cities: Cities | None = None
        self._valid_until: datetime | None = None
        self._changes = 1  # changes heard (invalidate), and the count the views were read after
        self._read_after = 0
        self._lock = asyncio.Lock()
        self._encoded: dict[Hashable, Encoded] = {}

    def invalidate(self) -> None:
        """Something a view shows may have changed: read again before the next answer."""
        self._changes += 1

    def _current(self, cities: Cities, now: datetime, changes: int) -> bool:
        """Whether the views were read after the ``changes``-th change and are still valid."""
        return (self.listening and self._read_after >= changes and cities is self._cities
                and self._valid_until is not None and now < self._valid_until)

    async def get(self, pool: AsyncConnectionPool[AsyncConnection[Any]], cities: Cities,
                  now: datetime) -> Mapping[str, Lot]:
        """Every lot of ``cities`` as the API shows it at ``now``, keyed by id."""
        changes = self._changes
        if self._current(cities, now, changes):
            return self._views
        async with self._lock:
            # A read that began after the changes this request knew of is new enough for it,
            # even if more changes were heard meanwhile (the next request reads them): under a
            # stream of changes, the requests that waited share one read, not one each.
            if not self._current(cities, now, changes):
                self._read_after = self._changes  # before reading: later changes read again
                lots = [(city, lot) for city in cities for lot in city.lots]
                async with pool.connection() as conn:
                    views = await read_lots(conn, lots, now)
                    cursor = await conn.execute(queries("api", "events")["next_event_change"],
                                                {"now": now})
                    change = await cursor.fetchone()
                self.reads += 1
                by_id = {view.id: view for view in views}
                if by_id != self._views or cities is not self._cities:
                    self._views, self._encoded = by_id, {}
                self._cities = cities
                self._valid_until = _valid_until(cities, views, now, self.max_age,
                                                 change[0] if change else None)
            return self._views

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
