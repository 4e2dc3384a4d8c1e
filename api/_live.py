"""The live view of lots: static facts from the city config, the count from ``lot_state``,
status and numbers as every output publishes them (``core.status.publish``)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from api._models import Lot, LotForecast, SpecialSpaces
from core import city as registry
from core.charging import PointReading, effective_states_async
from core.db import queries
from core.status import LotReading, publish, rfc3339

__all__ = ["CSV_COLUMNS", "lot_view", "lots_csv", "read_lots"]

# The lot list as CSV (``GET /v1/lots?format=csv``): one row per lot, the same figures as JSON.
CSV_COLUMNS = ("id", "city", "name", "kind", "status", "free", "occupied", "capacity",
               "updated", "stale", "quality", "disabled_free", "disabled_capacity", "ev_free",
               "ev_capacity", "latitude", "longitude")


async def read_lots(conn: AsyncConnection[Any],
                    lots: Sequence[tuple[registry.City, registry.Lot]], now: datetime
                    ) -> list[Lot]:
    """``lots`` (each with its city) as the API shows them at ``now``, in the given order."""
    ids = [lot.id for _, lot in lots]
    q = queries("api")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q["live_lots"], {"lot_ids": ids, "now": now})
        live = {row["lot_id"]: row for row in await cur.fetchall()}
        await cur.execute(q["special_bays"], {"lot_ids": ids, "now": now})
        bays = {(row["lot_id"], row["kind"]): row for row in await cur.fetchall()}
    cities = {city.id: city for city, _ in lots}.values()
    points = await effective_states_async(conn, cities, now)
    return [lot_view(city, lot, live.get(lot.id) or {}, now, bays, _free_points(city, lot, points))
            for city, lot in lots]


def _free_points(city: registry.City, lot: registry.Lot,
                 points: Mapping[str, PointReading]) -> tuple[int, int] | None:
    """How many charging points ``lot`` has and how many of them a driver can charge at now
    (AVAILABLE and no car on their bays); None if the lot has no chargers."""
    evse_ids = [evse.evse_id for station, evse in city.evses() if station.lot == lot.id]
    if not evse_ids:
        return None
    free = sum(1 for evse_id in evse_ids if evse_id in points and points[evse_id].free)
    return free, len(evse_ids)


def limited(lot: registry.Lot, limit: int | None, free: int | None,
            occupied: int | None) -> tuple[registry.Lot, int | None]:
    """``lot`` with an operator's reduced capacity in force (``limit``), and its free spaces
    counted against it (ingest does the same at its next pass; the lower of the two counts
    until then)."""
    if limit is None or limit >= lot.capacity or lot.counting != "counter":
        return lot, free
    if free is not None and occupied is not None:
        free = max(0, min(free, limit - occupied))
    return lot.model_copy(update={"capacity": limit}), free


def lot_view(city: registry.City, lot: registry.Lot, row: Mapping[str, Any], now: datetime,
             bays: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
             free_points: tuple[int, int] | None = None) -> Lot:
    """``lot`` as the API shows it at ``now``, from its ``lot_state`` row as ``live_lots``
    reads it (free, updated, closed, quality, flags, the 30-minute forecast), its special
    bays (``special_bays``, keyed by lot and kind) and, where it has chargers, how many of
    its charging points are free and how many it has (``free_points``: its EV figure then)."""
    bays = bays or {}
    updated: datetime | None = row.get("updated")
    lot, free = limited(lot, row.get("capacity_limit"), row.get("free"), row.get("occupied"))
    # The status and numbers every open-data format publishes: none for a stale or closed lot.
    published = publish(lot, LotReading(free, updated, bool(row.get("closed"))),
                        now, city.tz)
    stale = updated is None or now - updated > timedelta(seconds=lot.stale_after_s)
    quality, flags = (0.0, ["stale"]) if stale else (row.get("quality"),
                                                     list(row.get("flags") or []))
    forecast = None
    if row.get("forecast_target") is not None:
        forecast = LotForecast(
            target_time=row["forecast_target"], free=row["forecast_free"],
            free_p10=row["forecast_free_p10"], free_p90=row["forecast_free_p90"],
            p_space=row["forecast_p_space"], model=row["forecast_model"],
            origin=row["forecast_origin"])
    counted = published.free is not None
    return Lot(
        id=lot.id, city=city.id, name=lot.name, kind=lot.kind, counting=lot.counting,
        address=lot.address,
        latitude=lot.latitude, longitude=lot.longitude, opening_hours=lot.opening_hours,
        capacity=lot.capacity, free=published.free, occupied=published.occupied,
        status=published.status, updated=updated, stale=stale,
        stale_after_s=lot.stale_after_s,
        quality=None if quality is None else round(quality, 3), quality_flags=flags,
        disabled=_special(lot, "disabled", lot.disabled_spaces, bays, counted),
        ev=_special(lot, "ev", city.ev_spaces(lot.id), bays, counted, free_points),
        forecast_30=forecast)


def lots_csv(lots: Sequence[Lot]) -> bytes:
    """``lots`` as RFC 4180 CSV with a header row (empty cells where JSON has null)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for lot in lots:
        writer.writerow((
            lot.id, lot.city, lot.name, lot.kind, lot.status, _cell(lot.free),
            _cell(lot.occupied), lot.capacity, rfc3339(lot.updated) if lot.updated else "",
            str(lot.stale).lower(), _cell(lot.quality), _cell(lot.disabled.free),
            lot.disabled.capacity, _cell(lot.ev.free), lot.ev.capacity, lot.latitude,
            lot.longitude))
    return buffer.getvalue().encode()


def _cell(value: float | None) -> str:
    return "" if value is None else str(value)


def _special(lot: registry.Lot, kind: str, configured: int,
             bays: Mapping[tuple[str, str], Mapping[str, Any]], counted: bool,
             free_points: tuple[int, int] | None = None) -> SpecialSpaces:
    """Capacity of a kind of space and, where bay sensors cover all of them, how many are
    free (by ingest's rule for the lot: stuck sensors count neither free nor occupied). EV
    spaces that all have a charging point (``free_points``: free, all): the points a driver
    can charge at now (read with their bays, rules.sql evse_effective); where only some
    have one, the chargers' figure would say nothing of the others, so the sensors' rule."""
    row = bays.get((lot.id, kind))
    sensed = row["bays"] if row else 0
    capacity = max(configured, sensed)
    free = None
    if free_points is not None and free_points[1] >= capacity:
        capacity = free_points[1]
        if counted:
            free = free_points[0]
    elif row and counted and sensed >= capacity:
        free = sensed - row["stuck"] - row["occupied"]
    return SpecialSpaces(capacity=capacity, free=free)
