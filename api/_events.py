"""Events in the operator console: named time windows (a concert, a football match, the
Christmas market) that planners enter once (table ``events``).

An event names the lots whose demand it raises (the forecaster takes them as it takes the
city config's events: ``forecasting.event_calendar``), the lots closed during it and the lots
reserved for it. Closed and reserved lots are closed to the public while the event is on, by
the closure mechanism that already exists: ingest's ``operator_closures`` and the API's lot
views (``live_lots``) read the events in force at their ``now`` beside ``lot_closures``, so a
lot closes at the event's start and opens at its end without anyone acting (the API's views
at once, ingest's lot state, status topic and signs at its next pass). The public sees
``closed`` for both; "reserved" is the console's word. A sign line whose lots are all closed
and that has an ``alternative`` routes to it by signage's rule 5 (``signage/_render.py``); the
event lists those lines. Entering or deleting an event that is on now changes the lots' status
at once (as closing a lot does, ``api._lotadmin``); entering or deleting any NOTIFYs the API's
views, which then read again at each event's start and end (``api._snapshot``): at the start
/v1/lots, DATEX II and ParkAPI close the lots at the moment, the live stream, MQTT and the signs
at ingest's next stale check (``INGEST_STALE_CHECK_S``); at the end everything opens at that
check (until then the API still reads the ``closed`` ingest derived). Every change is audited,
before and after.

The config's events are listed too (their next occurrence), read-only.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import HTTPException
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field

from api._http import bad_parameter
from api._input import Moment, SafeText
from api._lotadmin import Operator, _set_status, audit
from core import channels
from core.city import ID_PATTERN, Cities, City, Event
from core.db import queries

__all__ = ["EventList", "EventView", "NewEvent", "create_event", "delete_event", "list_events"]

_CONFIG_HORIZON_DAYS = 371  # a weekly or yearly config event's next occurrence lies within

LotIds = Annotated[list[Annotated[str, Field(pattern=ID_PATTERN)]], Field(max_length=200)]


class NewEvent(BaseModel):
    """An event as a planner enters it."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, SafeText(min_length=1, max_length=120)]
    city: Annotated[str, Field(pattern=ID_PATTERN, description="The city's id")]
    starts: Moment = Field(description="When it begins (RFC 3339 with offset)")
    ends: Moment = Field(description="When it ends: after `starts` and in the future")
    lots: LotIds = Field(default_factory=list, description=(
        "Lots whose demand it raises: the forecaster's event flag, from an hour before it"))
    closed_lots: LotIds = Field(default_factory=list, description=(
        "Lots closed while it is on (closed everywhere: API, map, DATEX II, signs)"))
    reserved_lots: LotIds = Field(default_factory=list, description=(
        "Lots reserved for it while it is on: closed to the public, shown as reserved here"))


class RoutedLine(BaseModel):
    """A sign line whose lots the event closes: it shows its alternative meanwhile."""

    sign_id: str
    sign_name: str
    line: int = Field(description="The line's number on the sign, from 1")
    lots: list[str]
    alternative: str


class EventView(BaseModel):
    """An event: the console's (deletable) or the city config's (read-only, its next
    occurrence)."""

    id: int | None = Field(description="The console event's id; null for the config's")
    source: Literal["console", "config"]
    city: str
    name: str
    kind: Literal["event", "market"]
    starts: datetime
    ends: datetime
    weekly: str | None = Field(None, description="A config event's weekdays (Mo,Tu,...)")
    lots: list[str]
    closed_lots: list[str]
    reserved_lots: list[str]
    on: bool = Field(description="Whether it is on now")
    routed: list[RoutedLine]
    created_by: str | None = None
    created_at: datetime | None = None


class EventList(BaseModel):
    """Events current and upcoming, the soonest first."""

    events: list[EventView]


def _routed(city: City | None, closed: Iterable[str]) -> list[RoutedLine]:
    shut = set(closed)
    if city is None or not shut:
        return []
    return [RoutedLine(sign_id=sign.id, sign_name=sign.name, line=number, lots=list(line.lots),
                       alternative=line.alternative)
            for sign in city.signs for number, line in enumerate(sign.lines, start=1)
            if line.alternative and set(line.lots) <= shut]


def _view(row: dict[str, Any], cities: Cities, now: datetime) -> EventView:
    return EventView(source="console", kind="event", on=row["starts"] <= now < row["ends"],
                     routed=_routed(cities.get(row["city"]),
                                    [*row["closed_lots"], *row["reserved_lots"]]),
                     **row)


def _next_window(event: Event, city: City, now: datetime) -> tuple[datetime, datetime] | None:
    """A config event's occurrence that is on now or the next one, if within a year."""
    today = now.astimezone(city.tz).date()
    days = (today + timedelta(days=offset) for offset in range(_CONFIG_HORIZON_DAYS))
    return next((window for window in event.windows(days, city.tz) if window[1] > now), None)


def _config_views(cities: Cities, now: datetime, city_id: str | None) -> list[EventView]:
    views = []
    for city in cities:
        if city_id is not None and city.id != city_id:
            continue
        for event in city.events:
            window = _next_window(event, city, now)
            if window is not None:
                views.append(EventView(
                    id=None, source="config", city=city.id, name=event.name, kind=event.kind,
                    starts=window[0], ends=window[1], weekly=event.weekly,
                    lots=list(event.lots), closed_lots=[], reserved_lots=[],
                    on=window[0] <= now < window[1], routed=[]))
    return views


async def list_events(conn: AsyncConnection[Any], cities: Cities, now: datetime,
                      city: str | None, limit: int) -> EventList:
    """The console's events not yet over and the config's next occurrences, soonest first."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(queries("api", "events")["upcoming_events"],
                          {"now": now, "city": city, "limit": limit})
        rows = await cur.fetchall()
    views = [_view(row, cities, now) for row in rows] + _config_views(cities, now, city)
    views.sort(key=lambda view: (view.starts, view.source, view.id or 0, view.name))
    return EventList(events=views[:limit])


def _unique(lot_ids: list[str]) -> list[str]:
    return list(dict.fromkeys(lot_ids))


def _check(body: NewEvent, cities: Cities, now: datetime) -> None:
    """A 422 naming the field for an event that cannot be stored."""
    city = cities.get(body.city)
    if city is None:
        bad_parameter("city", f"no city {body.city!r}", "body")
    if body.ends <= body.starts:
        bad_parameter("ends", "must lie after starts", "body")
    if body.ends <= now:
        bad_parameter("ends", "must lie in the future: the event is over already", "body")
    known = {lot.id for lot in city.lots}
    for field in ("lots", "closed_lots", "reserved_lots"):
        unknown = [lot_id for lot_id in getattr(body, field) if lot_id not in known]
        if unknown:
            bad_parameter(field, f"no lot {unknown[0]!r} in {city.id}", "body")
    both = set(body.closed_lots) & set(body.reserved_lots)
    if both:
        bad_parameter("reserved_lots", f"lot {sorted(both)[0]!r} is closed already: a lot is "
                      "either closed or reserved", "body")


async def _views_changed(conn: AsyncConnection[Any], city: str) -> None:
    """Tell every API process (at commit) to read its lots' views again: they learn the
    event's start and end, when its lots close and open."""
    await conn.execute(queries("api", "admin")["notify"],
                       {"channel": channels.LOTS_CHANGED, "payload": city})


def _audited(view: EventView) -> dict[str, Any]:
    return view.model_dump(mode="json", exclude={"routed", "on", "source", "kind", "weekly"})


async def create_event(conn: AsyncConnection[Any], cities: Cities, body: NewEvent,
                       operator: Operator, now: datetime) -> EventView:
    """Store a planner's event, audited; its lots close at once if it is on now."""
    _check(body, cities, now)
    closing = _unique([*body.closed_lots, *body.reserved_lots])
    async with conn.transaction():
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(queries("api", "events")["insert_event"], {
                "city": body.city, "name": body.name, "starts": body.starts, "ends": body.ends,
                "lots": _unique(body.lots), "closed_lots": _unique(body.closed_lots),
                "reserved_lots": _unique(body.reserved_lots), "created_by": operator.name,
                "created_at": now})
            row = await cur.fetchone()
        assert row is not None  # RETURNING of an INSERT
        view = _view(row, cities, now)
        if view.on:
            for lot_id in sorted(closing):  # in ingest's order of locking lot_state's rows
                await _set_status(conn, cities, lot_id, now, closed=True)
        await _views_changed(conn, view.city)
        await audit(conn, operator, "create_event", f"event/{view.id}",
                    {"name": view.name, "city": view.city}, now, None, _audited(view))
    return view


async def delete_event(conn: AsyncConnection[Any], cities: Cities, event_id: int,
                       operator: Operator, now: datetime) -> EventView:
    """Remove a console event, audited; if it is on, its lots open at once (unless another
    closure keeps them closed)."""
    q = queries("api", "events")
    async with conn.transaction():
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(q["delete_event"], {"id": event_id})
            row = await cur.fetchone()
            if row is None:
                raise HTTPException(404, f"no event {event_id}")
            view = _view(row, cities, now)
            if view.on:
                for lot_id in sorted({*view.closed_lots, *view.reserved_lots}):
                    await cur.execute(q["closed_otherwise"],
                                      {"lot_id": lot_id, "now": now, "id": event_id})
                    still = await cur.fetchone()
                    await _set_status(conn, cities, lot_id, now,
                                      closed=bool(still and still["closed"]))
        await _views_changed(conn, view.city)
        await audit(conn, operator, "delete_event", f"event/{view.id}",
                    {"name": view.name, "city": view.city}, now, _audited(view), None)
    return view
