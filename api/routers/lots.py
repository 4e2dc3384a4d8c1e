"""Lots: the live list (JSON or GeoJSON), one lot, its history and its forecast."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

import psycopg
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import BaseModel
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from api._history import (
    To,
    from_query,
    history_parts,
    history_range,
    newest_data,
    points_query,
)
from api._http import (
    HttpMiddleware,
    cache,
    http_date,
    inline_schema,
    pagination_links,
    problem_responses,
)
from api._input import Moment
from api._live import CSV_COLUMNS, lots_csv
from api._models import (
    Accuracy,
    Forecast,
    ForecastPoint,
    History,
    Lot,
    LotFeature,
    LotFeatureCollection,
    LotList,
    Point,
)
from api._snapshot import Encoded, LotViews
from api.deps import CitiesDep, Now, PoolDep, ReadConn, ReadPoolDep, SelectedCities, Views
from core import city as registry
from core.city import ID_PATTERN
from core.db import queries

__all__ = ["LotsFastPath", "router"]

GEOJSON = "application/geo+json"
CSV = "text/csv"
LIVE_MAX_AGE = 10  # seconds; counts change about once a minute
FORECAST_MAX_AGE = 60
HISTORY_MAX_AGE = 60
CLOSED_HISTORY_MAX_AGE = 3600  # a window that ended an hour ago hardly changes any more

router = APIRouter(prefix="/v1/lots", tags=["lots"], responses=problem_responses(304, 422, 503))

LotId = Annotated[str, Path(pattern=ID_PATTERN, description="The lot's id.")]


def _json(model: BaseModel, media_type: str = "application/json") -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json", by_alias=True), media_type=media_type)


def _lot(cities: registry.Cities, lot_id: str) -> tuple[registry.City, registry.Lot]:
    try:
        return cities.lot(lot_id)
    except KeyError:
        raise HTTPException(404, f"no lot {lot_id!r}") from None


def _newest(*moments: datetime | None) -> datetime | None:
    return max((moment for moment in moments if moment is not None), default=None)


@router.get(
    "", operation_id="listLots", response_model=LotList,
    summary="Every lot with its live status (JSON or GeoJSON)",
    description="JSON by default; a GeoJSON FeatureCollection (RFC 7946, coordinates "
    "[longitude, latitude]) with `format=geojson` or `Accept: application/geo+json`. Paged "
    "with `limit` and `offset`; the `Link` header names the first, previous and next page.",
    responses={200: {"description": "One page of lots", "content": {
        GEOJSON: {"schema": inline_schema(LotFeatureCollection)},
        CSV: {"schema": {"type": "string"}, "example": ",".join(CSV_COLUMNS)}}}})
async def list_lots(
    request: Request, pool: PoolDep, views: Views, all_cities: CitiesDep,
    cities: SelectedCities, now: Now,
    limit: Annotated[int, Query(ge=1, le=1000, description="Lots per page.")] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Lots to skip.")] = 0,
    format_: Annotated[Literal["json", "geojson", "csv"] | None, Query(
        alias="format", description="Overrides the Accept header.")] = None,
) -> Response:
    """One page of the lots (of every city or the one asked for), ordered by id."""
    return await _lots_page(request, pool, views, all_cities, cities, now, limit=limit,
                            offset=offset, format_=format_)


async def _lots_page(request: Request, pool: AsyncConnectionPool[AsyncConnection[Any]],
                     views: LotViews, all_cities: registry.Cities,
                     cities: tuple[registry.City, ...], now: datetime, *, limit: int,
                     offset: int, format_: str | None) -> Response:
    """The page; its format from ``Accept`` where ``format`` is not given."""
    if format_ is None:
        accept = request.headers.get("accept", "")
        format_ = "geojson" if GEOJSON in accept else "csv" if CSV in accept else "json"
    current = await views.get(pool, all_cities, now)
    ids = sorted(lot.id for city in cities for lot in city.lots)
    page = ids[offset:offset + limit]
    answer = views.encoded(("lots", format_, tuple(page), len(ids), limit, offset),
                           lambda: _page([current[lot_id] for lot_id in page], format_,
                                         total=len(ids), limit=limit, offset=offset))
    return answer.response(request, {"Link": pagination_links(
        request, offset=offset, limit=limit, total=len(ids))})


class LotsFastPath(HttpMiddleware):
    """``GET /v1/lots`` in its plain forms answered from the snapshot without FastAPI's routing
    and dependency solving, which cost several times the answer itself: the same answer as the
    route (``_lots_page``), inside the rate limit, metrics, validators and headers. Anything
    else (other parameters, bad values, an unknown city, a database problem) goes to the route,
    which answers it in full."""

    _PLAIN = frozenset({"city", "limit", "offset", "format"})
    _FORMATS = frozenset({"json", "geojson", "csv"})

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = await self._answer(scope) if (
            scope["method"] == "GET" and scope["path"] == "/v1/lots") else None
        await (self.app if answer is None else answer)(scope, receive, send)

    async def _answer(self, scope: Scope) -> Response | None:
        query = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        if not query.keys() <= self._PLAIN or any(len(v) > 1 for v in query.values()):
            return None
        plain = {key: values[0] for key, values in query.items()}
        limit, offset = plain.get("limit", "100"), plain.get("offset", "0")
        if not (limit.isascii() and limit.isdigit() and offset.isascii() and offset.isdigit()
                and 1 <= int(limit) <= 1000
                and int(offset) <= 1_000_000 and plain.get("format", "json") in self._FORMATS):
            return None
        app = scope["app"]
        all_cities: registry.Cities = app.state.cities
        city_id = plain.get("city")
        cities = all_cities.all if city_id is None else tuple(
            city for city in all_cities if city.id == city_id)
        hub = getattr(app.state, "hub", None)
        if not cities or hub is None:
            return None
        try:
            response = await _lots_page(
                Request(scope), app.state.pool, hub.views, all_cities, cities,
                app.state.settings.clock.now(), limit=int(limit), offset=int(offset),
                format_=plain.get("format"))
        except (psycopg.Error, PoolTimeout):
            return None  # the route answers it (503 with Retry-After)
        scope["route"] = _LIST_ROUTE
        return response


def _page(lots: list[Lot], format_: str, *, total: int, limit: int, offset: int) -> Encoded:
    """One page of the list, encoded in ``format_``."""
    headers = _headers(*lots, vary="Accept")
    if format_ == "csv":
        return Encoded(lots_csv(lots), f"{CSV}; charset=utf-8; header=present", headers)
    if format_ == "geojson":
        return Encoded(LotFeatureCollection(features=[
            LotFeature(id=lot.id, geometry=Point(coordinates=[lot.longitude, lot.latitude]),
                       properties=lot) for lot in lots]).model_dump_json().encode(),
            GEOJSON, headers)
    return Encoded(LotList(lots=lots, total=total, limit=limit, offset=offset)
                   .model_dump_json().encode(), "application/json", headers)


def _headers(*lots: Lot, vary: str | None = None) -> tuple[tuple[str, str], ...]:
    """Cache-Control, Vary and Last-Modified (the newest count or forecast) of ``lots``."""
    headers = [("Cache-Control", f"public, max-age={LIVE_MAX_AGE}")]
    if vary:
        headers.append(("Vary", vary))
    newest = _newest(*(lot.updated for lot in lots),
                     *(lot.forecast_30.origin for lot in lots if lot.forecast_30))
    if newest is not None:
        headers.append(("Last-Modified", http_date(newest)))
    return tuple(headers)


@router.get("/{lot_id}", operation_id="getLot", response_model=Lot,
            summary="One lot with its live status", responses=problem_responses(404))
async def get_lot(request: Request, lot_id: LotId, pool: PoolDep, views: Views,
                  cities: CitiesDep, now: Now) -> Response:
    """One lot as in the list."""
    _lot(cities, lot_id)
    lot = (await views.get(pool, cities, now))[lot_id]
    return views.encoded(("lot", lot_id), lambda: Encoded(
        lot.model_dump_json().encode(), "application/json", _headers(lot))).response(request)


@router.get(
    "/{lot_id}/history", operation_id="getLotHistory", response_model=History,
    summary="A lot's occupancy in time buckets", responses=problem_responses(404),
    description="Buckets of `resolution` whose start lies in [`from`, `to`) (`from` aligned "
    "down to its bucket; 1d buckets are the city's local days). Defaults: the last 24 hours, "
    "15-minute buckets. At most 400 days at 15m and 1h, 3660 days at 1d.")
async def lot_history(
    lot_id: LotId, pool: ReadPoolDep, cities: CitiesDep, now: Now,
    from_: Annotated[Moment | None, from_query("24 h")] = None, to: To = None,
    resolution: Annotated[Literal["15m", "1h", "1d"], Query()] = "15m",
) -> Response:
    """Mean and minimum free spaces per bucket, from the continuous aggregates."""
    city, lot = _lot(cities, lot_id)
    start, end = history_range(from_, to, resolution, now=now, default=timedelta(hours=24),
                               tz=city.tz)
    params = {"lot_ids": [lot.id], "tz": city.city.timezone}
    # Every part to its end (none left running), then the first failure as it was raised.
    results = await asyncio.gather(*(_points(pool, resolution, {**params, "from": a, "to": b})
                                     for a, b in history_parts(start, end, resolution, city.tz)),
                                   return_exceptions=True)
    parts: list[tuple[datetime | None, str | None]] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        parts.append(result)
    last = max((part[0] for part in parts if part[0] is not None), default=None)
    points = ",".join(part[1] for part in parts if part[1])
    head = History(lot_id=lot.id, resolution=resolution, from_=start, to=end,
                   timezone=city.city.timezone, points=[])
    response = Response(_with_points(head, points), media_type="application/json")
    closed = end < now - timedelta(hours=1)
    cache(response, max_age=CLOSED_HISTORY_MAX_AGE if closed else HISTORY_MAX_AGE,
          last_modified=newest_data(last, resolution, now))
    return response


async def _points(pool: AsyncConnectionPool[AsyncConnection[Any]],
                  resolution: Literal["15m", "1h", "1d"],
                  params: dict[str, Any]) -> tuple[datetime | None, str | None]:
    """The newest bucket and the points (JSON text) of one part of a history answer."""
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(points_query(resolution), params)
        row = await cur.fetchone()
    return (row[0], row[1]) if row else (None, None)


def _with_points(history: History, points: str) -> bytes:
    """``history`` as JSON with ``points``, comma-separated JSON texts of HistoryPoint, as its
    points: the envelope goes through the model; the points, built by the database, are not
    parsed again."""
    head = history.model_dump(mode="json", by_alias=True, exclude={"points"})
    text = json.dumps(head, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return f'{text[:-1]},"points":[{points}]}}'.encode()


@router.get("/{lot_id}/forecast", operation_id="getLotForecast", response_model=Forecast,
            summary="A lot's newest forecast with its published error",
            responses=problem_responses(404),
            description="The newest forecast run's horizons that still lie ahead: free spaces "
            "with the 10-90 % interval, the probability of a free space and the model; and "
            "per horizon the rolling mean absolute error of past forecasts.")
async def lot_forecast(lot_id: LotId, conn: ReadConn, cities: CitiesDep, now: Now) -> Response:
    """The newest forecast run of a lot and the published forecast error."""
    _, lot = _lot(cities, lot_id)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(queries("api")["latest_forecast"], {"lot_id": lot.id})
        run = await cur.fetchall()
        await cur.execute(queries("forecasting")["lot_accuracy"], {"lot_id": lot.id})
        accuracy = await cur.fetchall()
    origin: datetime | None = run[0]["time"] if run else None
    forecast = Forecast(
        lot_id=lot.id, origin=origin,
        points=[ForecastPoint(horizon_min=row["horizon_min"], target_time=row["target_time"],
                              free=row["free"], free_p10=row["free_p10"],
                              free_p90=row["free_p90"], p_space=row["p_space"],
                              model=row["model"])
                for row in run if row["target_time"] > now],
        accuracy=[Accuracy(horizon_min=row["horizon_min"], window_days=row["window_days"],
                           mae=round(row["mae"], 3),
                           mae_rate=None if row["mae_rate"] is None else round(row["mae_rate"], 5),
                           points=row["points"], backtest_points=row["backtest_points"],
                           computed_at=row["computed_at"])
                  for row in accuracy])
    response = _json(forecast)
    cache(response, max_age=FORECAST_MAX_AGE,
          last_modified=_newest(origin, *(row["computed_at"] for row in accuracy)))
    return response


# What the metrics name a request the fast path answered: the route it stands in for.
_LIST_ROUTE: BaseRoute = next(route for route in router.routes
                              if getattr(route, "name", None) == "list_lots")
