"""Closing and opening a lot, and the audit of it: one implementation for the API-key admin
routes (``api/routers/admin.py``) and the operator console (``api/routers/console.py``).

Closing a lot writes ``lot_closures``; ingest derives ``closed`` for the lot while the row is in
force (``ingest.lot_status(closed=...)``), at every batch and every stale check. So that no
one waits for that, the change also sets ``lot_state`` and NOTIFYs the status as ingest would,
in one transaction that holds the lot's row lock (as ingest's batches do): the live stream and
the signs have it at commit; ingest's retained MQTT status follows at its next stale check.
Every change writes an ``admin_audit`` row in the same transaction: who (an API key's name or
a person), what, and the lot's status and closure before and after.

Correcting a counter lot's count (the console) works the same way: under the row lock it sets
``lot_state``'s count (fresh now, ``corrected_at``, the flag ``manual_correction``) and
NOTIFYs it. Ingest builds its counter state from that row at every batch, so the corrected
count is its new baseline: the next reading's entries and exits count on from it.

A counter lot's capacity reduced for a while (``lot_capacity_limits``, the console) is read by
ingest like a closure, at every batch and stale check, and by the API's lot views at once; the
change NOTIFYs the lot's figures against the limit, so the signs and the stream have it at
commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import HTTPException
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field

from api._http import bad_parameter
from api._input import Moment, SafeText
from core import channels
from core.city import Cities, City, Lot, OpeningHours
from core.db import queries
from core.status import LotStatus, lot_status

__all__ = ["AdminLot", "CapacityLimit", "CloseLot", "Closure", "CorrectCount", "CorrectedLot",
           "LimitedLot", "Operator", "Reason", "audit", "audit_row", "close_lot",
           "correct_count", "end_capacity", "future", "limit_capacity", "open_lot"]

logger = logging.getLogger(__name__)

MANUAL_CORRECTION = "manual_correction"  # the flag (ingest keeps it for a day)

# Why an operator acted: in the audit, on the closure or override, and to everyone who reads it.
Reason = Annotated[str, SafeText(min_length=1, max_length=500)]


@dataclass(frozen=True, slots=True)
class Operator:
    """Who makes an admin request: an API key's name (``person`` False) or a console user's
    name (``person`` True), and the client's address."""

    name: str
    client: str | None
    person: bool = False


def audit_row(operator: Operator, action: str, target: str, detail: Any, now: datetime,
              before: dict[str, Any] | None = None,
              after: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters of the ``audit`` query for one action."""
    return {"time": now, "key_name": None if operator.person else operator.name,
            "user_name": operator.name if operator.person else None,
            "client": operator.client, "action": action, "target": target,
            "detail": Jsonb(detail), "before": None if before is None else Jsonb(before),
            "after": None if after is None else Jsonb(after)}


async def audit(conn: AsyncConnection[Any], operator: Operator, action: str, target: str,
                detail: dict[str, Any], now: datetime, before: dict[str, Any] | None = None,
                after: dict[str, Any] | None = None) -> None:
    """One action in the audit, in the caller's transaction."""
    await conn.execute(queries("api", "admin")["audit"],
                       audit_row(operator, action, target, detail, now, before, after))
    logger.info("admin: %s %s by %s %s from %s", action, target,
                "user" if operator.person else "key", operator.name, operator.client)


def future(until: datetime | None, now: datetime) -> datetime | None:
    """``until`` if it lies after ``now`` (or is None); else a 422 naming it."""
    if until is not None and until <= now:
        bad_parameter("until", "must lie in the future", "body")
    return until


class CloseLot(BaseModel):
    """Why and until when a lot is closed."""

    model_config = ConfigDict(extra="forbid")
    reason: Reason
    until: Moment | None = Field(None, description="End of the closure (RFC 3339 with "
                                 "offset; default: until opened)")


class Closure(BaseModel):
    """An operator's closure of a lot."""

    reason: str
    closed_by: str
    since: datetime
    until: datetime | None


class AdminLot(BaseModel):
    """A lot's status after an admin change, and its closure if one is in force."""

    lot_id: str
    status: str
    closure: Closure | None


def _known_lot(cities: Cities, lot_id: str) -> tuple[City, Lot]:
    """The city and lot of ``lot_id``; 404 if no city config has it."""
    try:
        return cities.lot(lot_id)
    except KeyError:
        raise HTTPException(404, f"no lot {lot_id!r}") from None


def _counter_lot_figure(lot_id: str, lot: Lot, name: str, value: int, what: str) -> None:
    """422 on the body's ``name`` unless ``lot`` counts with a counter (a lot that counts its
    bays has no figure an operator could set) and ``value`` is within its configured capacity
    (the model refuses a negative one)."""
    if lot.counting != "counter":
        bad_parameter(name, f"lot {lot_id} counts its bays, each by its sensor; only a counter "
                      f"lot's {what}", "body")
    if value > lot.capacity:
        bad_parameter(name, f"must lie between 0 and the configured capacity of {lot_id}, "
                      f"{lot.capacity}", "body")


async def _locked_state(cur: Any, lot_id: str) -> dict[str, Any]:
    """The lot's state row, locked until the transaction ends; 404 if the registry lacks it."""
    await cur.execute(queries("api", "admin")["lock_lot_state"], {"lot_id": lot_id})
    row: dict[str, Any] | None = await cur.fetchone()
    if row is None:
        raise HTTPException(404, f"lot {lot_id!r} is not in the registry yet")
    return row


async def _set_status(conn: AsyncConnection[Any], cities: Cities, lot_id: str, now: datetime,
                      *, closed: bool) -> tuple[dict[str, Any], str]:
    """Derive the lot's status as ingest would, store it and NOTIFY it (in the transaction):
    (what was there before: status and closure, the new status)."""
    city, lot = _known_lot(cities, lot_id)
    q = queries("api", "admin")
    async with conn.cursor(row_factory=dict_row) as cur:
        row = await _locked_state(cur, lot_id)
        await cur.execute(q["closure_of"], {"lot_id": lot_id})
        closure = await cur.fetchone()
    before = {"status": row["status"],
              "closure": None if closure is None else Closure(**closure).model_dump(mode="json")}
    status = lot_status(lot, OpeningHours(lot.opening_hours), row["free"], row["updated"], now,
                        city.tz, closed=closed)
    await conn.execute(q["set_lot_status"], {"lot_id": lot_id, "status": status})
    announced = LotStatus(lot_id, row["free"], row["occupied"], row["capacity"], status,
                          row["updated"], row["quality"])
    await conn.execute(q["notify"], {"channel": channels.LOT_STATE,
                                     "payload": announced.notification(city.id)})
    return before, status


async def close_lot(conn: AsyncConnection[Any], cities: Cities, lot_id: str, body: CloseLot,
                    operator: Operator, now: datetime) -> AdminLot:
    """Close ``lot_id`` for every consumer (API, stream, signs, DATEX II, MQTT), audited."""
    until = future(body.until, now)
    async with conn.transaction():
        before, status = await _set_status(conn, cities, lot_id, now, closed=True)
        await conn.execute(queries("api", "admin")["close_lot"], {
            "lot_id": lot_id, "reason": body.reason, "key_name": operator.name, "since": now,
            "until": until})
        closed = AdminLot(lot_id=lot_id, status=status, closure=Closure(
            reason=body.reason, closed_by=operator.name, since=now, until=until))
        await audit(conn, operator, "close_lot", lot_id,
                    {"reason": body.reason, "until": until and until.isoformat()}, now,
                    before, closed.model_dump(mode="json", exclude={"lot_id"}))
    return closed


async def _event_closes(conn: AsyncConnection[Any], lot_id: str, now: datetime) -> bool:
    """Whether a console event in force closes or reserves the lot (``api._events``)."""
    cursor = await conn.execute(queries("api", "events")["event_closes"],
                                {"lot_id": lot_id, "now": now})
    row = await cursor.fetchone()
    return bool(row and row[0])


async def open_lot(conn: AsyncConnection[Any], cities: Cities, lot_id: str, operator: Operator,
                   now: datetime) -> AdminLot:
    """End the closure of ``lot_id`` (if any), audited; its status is derived from its count
    again (closed still while an event of the console closes it)."""
    async with conn.transaction():
        before, status = await _set_status(conn, cities, lot_id, now,
                                           closed=await _event_closes(conn, lot_id, now))
        cursor = await conn.execute(queries("api", "admin")["open_lot"], {"lot_id": lot_id})
        opened = AdminLot(lot_id=lot_id, status=status, closure=None)
        await audit(conn, operator, "open_lot", lot_id, {"was_closed": cursor.rowcount > 0},
                    now, before, opened.model_dump(mode="json", exclude={"lot_id"}))
    return opened


class CorrectCount(BaseModel):
    """The number of cars parked in a counter lot now, and why it is set by hand."""

    model_config = ConfigDict(extra="forbid")
    occupied: Annotated[int, Field(ge=0, le=1_000_000, description=(
        "Cars parked now: 0 to the lot's capacity"))]
    reason: Reason


class CorrectedLot(BaseModel):
    """A lot's figures after a count correction."""

    lot_id: str
    occupied: int
    free: int
    capacity: int
    status: str
    updated: datetime
    flags: list[str]


async def correct_count(conn: AsyncConnection[Any], cities: Cities, lot_id: str,
                        body: CorrectCount, operator: Operator,
                        now: datetime) -> CorrectedLot:
    """Set a counter lot's count as ingest's new baseline, announced at once and audited."""
    city, lot = _known_lot(cities, lot_id)
    _counter_lot_figure(lot_id, lot, "occupied", body.occupied, "count can be corrected")
    q = queries("api", "admin")
    async with conn.transaction():
        async with conn.cursor(row_factory=dict_row) as cur:
            row = await _locked_state(cur, lot_id)
            await cur.execute(q["closure_of"], {"lot_id": lot_id})
            closure = await cur.fetchone()
        closed = closure is not None and (closure["until"] is None or closure["until"] > now)
        closed = closed or await _event_closes(conn, lot_id, now)
        free = lot.capacity - body.occupied
        status = lot_status(lot, OpeningHours(lot.opening_hours), free, now, now, city.tz,
                            closed=closed)
        # The stale flag goes with the old count; ingest re-derives every flag at its next pass.
        flags = [flag for flag in row["flags"] if flag not in ("stale", MANUAL_CORRECTION)]
        flags.append(MANUAL_CORRECTION)
        await conn.execute(queries("api", "console")["correct_count"], {
            "lot_id": lot_id, "occupied": body.occupied, "free": free, "now": now,
            "status": status, "flags": flags})
        announced = LotStatus(lot_id, free, body.occupied, lot.capacity, status, now,
                              row["quality"])
        await conn.execute(q["notify"], {"channel": channels.LOT_STATE,
                                         "payload": announced.notification(city.id)})
        corrected = CorrectedLot(lot_id=lot_id, occupied=body.occupied, free=free,
                                 capacity=lot.capacity, status=status, updated=now, flags=flags)
        before = {"occupied": row["occupied"], "free": row["free"], "status": row["status"],
                  "updated": row["updated"] and row["updated"].isoformat()}
        await audit(conn, operator, "correct_count", lot_id,
                    {"reason": body.reason, "occupied": body.occupied, "manual": True}, now,
                    before, corrected.model_dump(mode="json", exclude={"lot_id"}))
    return corrected


class CapacityLimit(BaseModel):
    """A counter lot's capacity for a while (a level closed for works), why and until when."""

    model_config = ConfigDict(extra="forbid")
    capacity: Annotated[int, Field(ge=0, le=1_000_000, description=(
        "The spaces in use until `until`: 0 to the lot's configured capacity"))]
    until: Moment = Field(description="When the configured capacity is back (RFC 3339 with "
                          "offset)")
    reason: Reason


class LimitedLot(BaseModel):
    """A lot's capacity in force after a change, and its free spaces counted against it."""

    lot_id: str
    capacity: int
    configured_capacity: int
    free: int | None
    status: str
    until: datetime | None


async def _capacity_change(conn: AsyncConnection[Any], cities: Cities, lot_id: str,
                           limit: CapacityLimit | None, operator: Operator,
                           now: datetime) -> LimitedLot:
    city, lot = _known_lot(cities, lot_id)
    until = None
    if limit is not None:
        until = future(limit.until, now)
        _counter_lot_figure(lot_id, lot, "capacity", limit.capacity, "capacity can be limited")
    q, console = queries("api", "admin"), queries("api", "console")
    async with conn.transaction():
        async with conn.cursor(row_factory=dict_row) as cur:
            row = await _locked_state(cur, lot_id)
            await cur.execute(console["capacity_limit_of"], {"lot_id": lot_id, "now": now})
            before = await cur.fetchone()
        if limit is None:
            await conn.execute(console["end_capacity_limit"], {"lot_id": lot_id})
            capacity = lot.capacity
        else:
            await conn.execute(console["set_capacity_limit"], {
                "lot_id": lot_id, "capacity": limit.capacity, "reason": limit.reason,
                "set_by": operator.name, "since": now, "until": until})
            capacity = limit.capacity
        occupied = row["occupied"]
        free = None if occupied is None else max(0, capacity - occupied)
        judged = lot.model_copy(update={"capacity": capacity})
        status = "closed" if row["status"] == "closed" else lot_status(
            judged, OpeningHours(lot.opening_hours), free, row["updated"], now, city.tz)
        announced = LotStatus(lot_id, free, occupied, capacity, status, row["updated"],
                              row["quality"])
        await conn.execute(q["notify"], {"channel": channels.LOT_STATE,
                                         "payload": announced.notification(city.id)})
        result = LimitedLot(lot_id=lot_id, capacity=capacity, configured_capacity=lot.capacity,
                            free=free, status=status, until=until)
        await audit(conn, operator, "limit_capacity" if limit else "end_capacity_limit",
                    lot_id, {"reason": limit.reason, "capacity": limit.capacity,
                             "until": until and until.isoformat()} if limit else {},
                    now, {"capacity": lot.capacity if before is None else before["capacity"],
                          "free": row["free"]},
                    result.model_dump(mode="json", exclude={"lot_id"}))
    return result


async def limit_capacity(conn: AsyncConnection[Any], cities: Cities, lot_id: str,
                         body: CapacityLimit, operator: Operator, now: datetime) -> LimitedLot:
    """Reduce a counter lot's capacity until ``body.until``, for every consumer; audited."""
    return await _capacity_change(conn, cities, lot_id, body, operator, now)


async def end_capacity(conn: AsyncConnection[Any], cities: Cities, lot_id: str,
                       operator: Operator, now: datetime) -> LimitedLot:
    """End a lot's capacity limit before its time (if any); audited."""
    return await _capacity_change(conn, cities, lot_id, None, operator, now)
