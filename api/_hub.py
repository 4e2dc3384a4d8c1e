"""The live feed behind ``GET /v1/stream``: one LISTEN connection per process, fanned out.

- One connection LISTENs ``parkleit_lot_state`` (ingest and the admin API NOTIFY each lot
  status at commit), ``parkleit_sign_content`` (the signage service, each content a sign
  confirmed) and ``parkleit_config`` (an admin reload: every API process reads the city
  configs again), and for the lots' views (``views``, ``api._snapshot``) whatever else changes
  what they show (``core.channels``). After each (re)connect - after LISTEN, so nothing
  committed in between is missed - the hub reads ``lot_state`` and ``sign_state`` and
  publishes what differs from what it holds.
- Charging points: an ``evse`` event per changed point, its *effective* state
  (``core.charging.EvseState.as_dict`` and ``free``, as /v1/charging/locations: the point read
  with its bays, rules.sql ``evse_effective``). A ``parkleit_evse_state`` NOTIFY (whoever
  stores a point's readings, core.charging; ingest when a bay a point serves changed, or a
  point became blocked by time alone) names a point to read again: the hub reads the points
  heard of in one query per city (``_read_evses``, a task: what is heard while it reads is
  read next), and every point on each resync like the lots.
- The hub holds the current state of every lot, sign and charging point of every city. A
  subscriber gets it first, taken in the same step as it is subscribed (no gap, nothing
  twice), then each change.
- Fan-out: each event is encoded once, as the bytes of its SSE frame, and shared by every
  subscriber that wants it (a set lookup per subscriber); the streams with news are woken a
  few at a time (``WAKE_SLICE``), so requests are served between them, and need no timer of
  their own (the keep-alive comment: ``drop_laggards`` wakes the quiet ones). Their frames go
  to the server without the middleware (``api.routers.stream.StreamSend``). Publishing never
  waits: a subscriber
  keeps the newest pending event per lot or sign (``pending``, in order of first arrival), so
  a burst - a resync or a commit of thousands of NOTIFYs - is coalesced into the newest state
  of each, and a fast client misses only states that were already superseded. A client whose
  oldest pending event has waited ``API_STREAM_MAX_LAG_S`` is not reading: it is dropped (its
  stream ends, the client reconnects after the ``retry`` hint and gets the current state
  first) and counted (``dropped``).
- At most ``API_STREAM_MAX_PER_IP`` streams per client address (``subscribe`` refuses more).
- Stale is not free: every ``API_STREAM_STALE_CHECK_S`` a lot whose count is older than its
  ``stale_after_s`` is published as ``unknown`` (quality 0), even with ingest down and no
  message at all. Closed lots stay closed. Older news (by ``updated``) never replaces newer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import psycopg
from fastapi.sse import format_sse_event
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.datastructures import State

from api._snapshot import LotViews
from core import channels
from core.charging import EvseState, effective_states_async
from core.city import Cities, City, CityConfigError, Lot, load_cities
from core.db import alisten, queries
from core.runtime import Backoff
from core.settings import Settings
from core.status import COUNTED, LotStatus

__all__ = ["Event", "Hub", "Subscriber", "TooManyStreams"]

logger = logging.getLogger(__name__)

WAKE_SLICE = 4  # streams woken in one turn of the event loop

# The LISTEN channels: what the stream sends, and what may change a lot's view (LotViews).
_CHANNELS = (channels.LOT_STATE, channels.SIGN_CONTENT, channels.CONFIG, channels.LOTS_CHANGED,
             channels.FORECASTS, channels.EVSE_STATE)


@dataclass(frozen=True, slots=True)
class Event:
    """One event of the stream: ``kind`` lot, sign or evse, the id it is about, its JSON data, the
    city it is in, and its SSE frame as sent (encoded once for every client)."""

    kind: str
    key: str
    id: str
    data: str
    city: str
    frame: bytes


class TooManyStreams(Exception):
    """The client address has ``API_STREAM_MAX_PER_IP`` streams open already."""


@dataclass(eq=False)
class Subscriber:
    """One stream client: what it wants (None: all; ``cities`` narrows the others), its
    address, and the newest event per lot or sign it has not taken yet (with the monotonic
    time the first of them arrived), in order of first arrival."""

    lots: frozenset[str] | None
    signs: frozenset[str] | None
    cities: frozenset[str] | None = None
    address: str = ""
    evses: frozenset[str] | None = None
    pending: dict[tuple[str, str], tuple[float, Event]] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    sent_at: float = field(default_factory=time.monotonic)  # its last write (``sent``)
    heartbeat_due: bool = False  # set by the hub's ``beat``: a comment keeps it open

    def wants(self, event: Event) -> bool:
        """Whether the client asked for ``event``."""
        wanted = {"lot": self.lots, "sign": self.signs}.get(event.kind, self.evses)
        return (wanted is None or event.key in wanted) and (
            self.cities is None or event.city in self.cities)

    def offer(self, event: Event, now: float) -> None:
        """Hold ``event`` for the client, in place of an older one about the same lot or sign
        (the hub wakes its stream: ``Hub._wake_streams``)."""
        key = (event.kind, event.key)
        held = self.pending.get(key)
        self.pending[key] = (now if held is None else held[0], event)  # keeps its place

    def lag(self, now: float) -> float:
        """Seconds the oldest pending event has waited (0 if none)."""
        for arrived, _ in self.pending.values():
            return now - arrived
        return 0.0

    def take(self) -> bytes:
        """The frames of every pending event, oldest first; none pending after."""
        frames = b"".join(event.frame for _, event in self.pending.values())
        self.pending.clear()
        self.wake.clear()
        return frames

    def sent(self) -> None:
        """Its stream wrote (frames or a comment): the next heartbeat is a while off."""
        self.sent_at, self.heartbeat_due = time.monotonic(), False
        self.wake.clear()

    def close(self) -> None:
        """End the client's stream once it has taken what is pending."""
        self.closed = True
        self.wake.set()


class Hub:
    """The process's live state of lots and signs, and its subscribers."""

    def __init__(self, settings: Settings, state: State,
                 pool: AsyncConnectionPool[Any]) -> None:
        self.settings, self.state, self.pool = settings, state, pool
        self.lots: dict[str, tuple[LotStatus, Event]] = {}
        self.signs: dict[str, tuple[Any, Event]] = {}  # content, event
        self.evses: dict[str, tuple[tuple[EvseState, bool], Event]] = {}  # (state, free)
        self.subscribers: set[Subscriber] = set()
        self.streams_per_address: Counter[str] = Counter()  # open streams, dropped ones too
        self.dropped = 0
        self.connected = False
        self.views = LotViews(settings.clock.now)  # the lots' views of the open-data routes
        self.ending = False  # set by end_streams: the process is shutting down
        self._last_id = 0
        self._task: asyncio.Task[None] | None = None
        self._to_wake: dict[Subscriber, None] = {}  # streams with news, in order
        self._wake_needed = asyncio.Event()
        self._waker: asyncio.Task[None] | None = None
        self._evses_heard: dict[str, set[str]] = {}  # city id -> points to read again
        self._evse_reader: asyncio.Task[None] | None = None

    @property
    def cities(self) -> Cities:
        """The city configs in force (``app.state.cities``; an admin reload swaps them)."""
        cities: Cities = self.state.cities
        return cities

    def _lot(self, lot_id: str) -> tuple[str, Lot] | None:
        try:
            city, lot = self.cities.lot(lot_id)
        except KeyError:
            return None
        return city.id, lot

    # -- subscribers ------------------------------------------------------------------------

    def subscribe(self, lots: frozenset[str] | None, signs: frozenset[str] | None,
                  cities: frozenset[str] | None = None, address: str = "", *,
                  evses: frozenset[str] | None = None) -> Subscriber:
        """A new subscriber, the current state it asked for pending (lots first, then signs
        and charging points); TooManyStreams if ``address`` has ``API_STREAM_MAX_PER_IP``
        streams open already."""
        if self.streams_per_address[address] >= self.settings.API_STREAM_MAX_PER_IP:
            raise TooManyStreams(address)
        self.check_staleness()
        subscriber = Subscriber(lots, signs, cities, address, evses)
        now = time.monotonic()
        for events in (self.lots, self.signs, self.evses):
            for _, (_, event) in sorted(events.items()):
                if subscriber.wants(event):
                    subscriber.offer(event, now)
        self.streams_per_address[address] += 1
        if self.ending:
            subscriber.close()  # the current state, then the end: the server is going away
        else:
            self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget ``subscriber`` (its stream has ended); call once per ``subscribe``."""
        self.subscribers.discard(subscriber)
        self.streams_per_address[subscriber.address] -= 1
        if self.streams_per_address[subscriber.address] <= 0:
            del self.streams_per_address[subscriber.address]

    def _publish(self, event: Event) -> None:
        now = time.monotonic()
        for subscriber in list(self.subscribers):
            if subscriber.wants(event) and not self._dropped_if_behind(subscriber, now):
                subscriber.offer(event, now)
                self._to_wake[subscriber] = None
        self._wake_needed.set()

    async def _wake_streams(self) -> None:
        """Wake the streams with news, ``WAKE_SLICE`` at a time, letting the event loop take
        other work (a request, a read) between slices: woken all at once, hundreds of streams
        would hold every request behind them for as long as they all take to write."""
        while True:
            await self._wake_needed.wait()
            self._wake_needed.clear()
            while self._to_wake:
                for subscriber in list(itertools.islice(self._to_wake, WAKE_SLICE)):
                    del self._to_wake[subscriber]
                    subscriber.wake.set()
                await asyncio.sleep(0)

    def _dropped_if_behind(self, subscriber: Subscriber, now: float) -> bool:
        """Drop ``subscriber`` if it has not taken an event for ``API_STREAM_MAX_LAG_S``."""
        lag = subscriber.lag(now)
        if lag < self.settings.API_STREAM_MAX_LAG_S:
            return False
        # Never wait for one client: it reconnects and gets the current state.
        self.subscribers.discard(subscriber)
        logger.info("dropped a stream client of %s: %d events pending for %.0f s",
                    subscriber.address, len(subscriber.pending), lag)
        subscriber.pending.clear()
        subscriber.close()
        self.dropped += 1
        return True

    def drop_laggards(self) -> None:
        """Drop every subscriber that has not taken an event for ``API_STREAM_MAX_LAG_S``;
        wake those whose stream wrote nothing for ``API_STREAM_HEARTBEAT_S`` for a comment (one
        timer for all streams: this runs every ``API_STREAM_STALE_CHECK_S``)."""
        now = time.monotonic()
        quiet = now - self.settings.API_STREAM_HEARTBEAT_S
        for subscriber in list(self.subscribers):
            if not self._dropped_if_behind(subscriber, now) and subscriber.sent_at <= quiet:
                subscriber.heartbeat_due = True
                subscriber.wake.set()

    def _event(self, kind: str, key: str, city: str, data: dict[str, Any]) -> Event:
        # Microseconds since the epoch, strictly increasing: ids grow across restarts too.
        self._last_id = max(self._last_id + 1, time.time_ns() // 1000)
        event_id, text = str(self._last_id), json.dumps(data)
        return Event(kind, key, event_id, text, city,
                     format_sse_event(data_str=text, event=kind, id=event_id))

    # -- state in ---------------------------------------------------------------------------

    def _judged(self, status: LotStatus, now: datetime) -> LotStatus:
        """``status`` as it stands at ``now``: unknown once its count is stale."""
        known = self._lot(status.lot_id)
        if known is None or status.status not in COUNTED:
            return status
        lot = known[1]
        if status.updated is None or now - status.updated > timedelta(
                seconds=lot.stale_after_s):
            return replace(status, status="unknown", quality=0.0)
        return status

    def lot_changed(self, status: LotStatus, now: datetime | None = None) -> None:
        """Take a lot's status; publish it if it is news."""
        known = self._lot(status.lot_id)
        if known is None:
            return
        if status.quality is not None:  # as ingest rounds it (lot_state keeps a float4)
            status = replace(status, quality=round(status.quality, 3))
        status = self._judged(status, now or self.settings.clock.now())
        held = self.lots.get(status.lot_id)
        if held is not None:
            old = held[0]
            if old == status:
                return
            if old.updated is not None and (status.updated is None
                                            or status.updated < old.updated):
                return  # older than what we hold: a late read or notification
        event = self._event("lot", status.lot_id, known[0],
                            {"lot_id": status.lot_id, **status.as_dict()})
        self.lots[status.lot_id] = (status, event)
        self._publish(event)

    def sign_changed(self, sign_id: str, content: Any, shown_since: str | None) -> None:
        """Take what a sign confirmed showing; publish it if it is news."""
        try:
            city, _ = self.cities.sign(sign_id)
        except KeyError:
            return
        data = {"sign_id": sign_id, "content": content, "shown_since": shown_since}
        held = self.signs.get(sign_id)
        if held is not None and held[0] == content:
            return
        event = self._event("sign", sign_id, city.id, data)
        self.signs[sign_id] = content, event
        self._publish(event)

    def evse_changed(self, state: EvseState, free: bool) -> None:
        """Take a charging point's effective state and whether it is free; publish it if it
        is news."""
        city = next((city for city in self.cities if _has_evse(city, state.evse_id)), None)
        if city is None:
            return
        held = self.evses.get(state.evse_id)
        if held is not None and (held[0] == (state, free) or state.updated < held[0][0].updated):
            return  # the same, or older than what we hold
        event = self._event("evse", state.evse_id, city.id, {**state.as_dict(), "free": free})
        self.evses[state.evse_id] = (state, free), event
        self._publish(event)

    def check_staleness(self) -> None:
        """Publish every lot whose count has gone stale since it was published."""
        now = self.settings.clock.now()
        for status, _ in list(self.lots.values()):
            self.lot_changed(status, now)

    def _heard(self, channel: str, payload: str) -> bool:
        """Take one notification; True if it asks for the city configs to be read again."""
        if channel != channels.SIGN_CONTENT:
            self.views.invalidate()
        if channel == channels.CONFIG:
            return self.cities.get(payload) is not None
        if channel in (channels.LOTS_CHANGED, channels.FORECASTS):
            return False
        try:
            message = json.loads(payload)
            if not isinstance(message, dict) or self.cities.get(str(message.get("city"))) is None:
                return False
            if channel == channels.LOT_STATE:
                self.lot_changed(LotStatus.from_notification(payload)[1])
            elif channel == channels.SIGN_CONTENT:
                self.sign_changed(str(message["sign_id"]), message["content"],
                                  message.get("shown_since"))
            elif channel == channels.EVSE_STATE:
                self._evse_heard(*EvseState.from_notification(payload))
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("unreadable %s notification: %s", channel, exc)
        return False

    def _evse_heard(self, city_id: str, state: EvseState) -> None:
        """A point's state (reported, or read with its bays) changed: read it again."""
        self._evses_heard.setdefault(city_id, set()).add(state.evse_id)
        self._start_evse_reader()

    def _start_evse_reader(self) -> None:
        if self._evses_heard and (self._evse_reader is None or self._evse_reader.done()):
            self._evse_reader = asyncio.create_task(self._read_evses(), name="api-stream-evses")

    async def _read_evses(self) -> None:
        """Read the points heard of with their bays at the hub's now, one query per city, and
        publish what changed; again while more were heard meanwhile. If the database fails,
        they are read at the next stale check (``_run``)."""
        while self._evses_heard:
            heard, self._evses_heard = self._evses_heard, {}
            cities = [city for city in self.cities if city.id in heard]
            try:
                async with self.pool.connection(timeout=5) as conn:
                    points = await effective_states_async(
                        conn, cities, self.settings.clock.now(),
                        only={evse_id for ids in heard.values() for evse_id in ids})
            except (psycopg.Error, PoolTimeout, OSError) as exc:
                logger.warning("live stream: charging points not read (%s)",
                               type(exc).__name__)
                for city_id, ids in heard.items():
                    self._evses_heard.setdefault(city_id, set()).update(ids)
                return
            for point in points.values():
                self.evse_changed(point.state, point.free)

    async def resync(self) -> None:
        """Read every lot's, sign's and charging point's current state; publish what
        differs."""
        cities = self.cities
        signs: list[dict[str, Any]] = []
        evse_ids = {evse.evse_id for city in cities for _, evse in city.evses()}
        async with self.pool.connection(timeout=5) as conn, \
                conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(queries("api", "stream")["lot_states"],
                              {"lot_ids": [lot.id for city in cities for lot in city.lots]})
            lots = await cur.fetchall()
            for city in cities:
                await cur.execute(queries("signage")["sign_health"], {"city": city.id})
                signs += await cur.fetchall()
            evses = await effective_states_async(conn, cities, self.settings.clock.now())
        for lot_id in [lot_id for lot_id in self.lots if self._lot(lot_id) is None]:
            del self.lots[lot_id]  # gone from the config
        for sign_id in list(self.signs):
            try:
                cities.sign(sign_id)
            except KeyError:
                del self.signs[sign_id]
        for evse_id in [evse_id for evse_id in self.evses if evse_id not in evse_ids]:
            del self.evses[evse_id]  # gone from the config
        for row in lots:
            self.lot_changed(LotStatus(**row))
        for point in evses.values():
            self.evse_changed(point.state, point.free)
        for row in signs:
            if row["content"] is not None:
                shown = row["shown_since"]
                self.sign_changed(row["sign_id"], row["content"], None if shown is None else
                                  shown.isoformat().replace("+00:00", "Z"))

    async def _reload_cities(self) -> None:
        try:
            cities = await asyncio.to_thread(load_cities, self.settings.city_refs)
        except CityConfigError as exc:
            logger.error("city configs not read again, the old ones stay: %s", exc)
            return
        self.state.cities = cities
        logger.info("city configs read again: %s", ", ".join(
            f"{city.id} {len(city.lots)} lots, {len(city.signs)} signs" for city in cities))

    # -- the LISTEN loop --------------------------------------------------------------------

    def start(self) -> None:
        """Start listening (a task of the running loop)."""
        self._task = asyncio.create_task(self._run(), name="api-stream-listen")
        self._task.add_done_callback(self._ended)
        self._waker = asyncio.create_task(self._wake_streams(), name="api-stream-wake")
        self._waker.add_done_callback(self._ended)

    @property
    def alive(self) -> bool:
        """Whether the listening task runs."""
        return self._task is not None and not self._task.done()

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("the live stream stopped", exc_info=task.exception())

    def end_streams(self) -> None:
        """End every open stream and each one opened later (its client reconnects, to
        another process or the restarted one): the server is shutting down."""
        self.ending = True
        for subscriber in list(self.subscribers):
            subscriber.close()
        self.subscribers.clear()

    async def stop(self) -> None:
        """Stop listening and end every stream; idempotent."""
        tasks = [self._task, self._waker, self._evse_reader]
        self._task = self._waker = self._evse_reader = None
        self.connected = self.views.listening = False
        for task in tasks:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.views.close()
        self.end_streams()

    async def _run(self) -> None:
        check_s, retry = self.settings.API_STREAM_STALE_CHECK_S, Backoff(1.0, 30.0)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self.settings.DATABASE_URL, autocommit=True, connect_timeout=5) as conn:
                    await alisten(conn, _CHANNELS)
                    await self.resync()
                    self.connected = True
                    retry.reset()
                    self.views.listening = True
                    self.views.invalidate(wait=True)  # changes while away were not heard
                    logger.info("live stream: listening for changes")
                    while True:
                        reload = False
                        async for note in conn.notifies(timeout=check_s):
                            reload = self._heard(note.channel, note.payload) or reload
                        if reload:
                            await self._reload_cities()
                            await self.resync()
                        self.check_staleness()
                        self.drop_laggards()
                        self._start_evse_reader()  # points a failed read left
            except (psycopg.Error, PoolTimeout, OSError) as exc:
                self.connected = self.views.listening = False
                delay = retry.next()
                logger.warning("live stream: no database (%s); retrying in %.0f s",
                               str(exc).strip().splitlines()[0] if str(exc).strip()
                               else type(exc).__name__, delay)
            # Staleness goes on being judged while the database is away.
            until = time.monotonic() + delay
            while (left := until - time.monotonic()) > 0:
                await asyncio.sleep(min(left, check_s))
                self.check_staleness()
                self.drop_laggards()


def _has_evse(city: City, evse_id: str) -> bool:
    try:
        city.evse(evse_id)
    except KeyError:
        return False
    return True
