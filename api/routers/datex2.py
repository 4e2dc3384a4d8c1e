"""DATEX II v3.7 XML: the lots' parking table and status, the signs' VMS table and status, the
charging points' AFIR energy infrastructure table and status."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from psycopg.rows import dict_row

from api._charging import evse_points
from api._datex_energy import (
    energy_status_publication,
    energy_table_publication,
    published_stations,
)
from api._datex_parking import parking_status_publication, parking_table_publication
from api._http import problem_responses
from api._snapshot import Encoded
from api.deps import CitiesDep, Conn, Now, PoolDep, ReadConn, SelectedCities, SettingsDep, Views
from core.city import City, Sign
from core.db import queries
from signage import SignReport, content_from_json, vms_publication, vms_table_publication

__all__ = ["router"]

router = APIRouter(prefix="/v1/datex2", tags=["DATEX II"], responses=problem_responses(422))

_XML = "application/xml; charset=utf-8"
_DOCUMENT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/xml": {}}, "description": "A DATEX II v3.7 d2:payload."}}
_NO_SIGNS: dict[int | str, dict[str, Any]] = {
    404: {**problem_responses(404)[404], "description": "No city asked for has signs."}}
# Publications read from the database.
_READ: dict[int | str, dict[str, Any]] = {**_DOCUMENT, **problem_responses(503)}


def _xml(document: bytes) -> Response:
    return Response(document, media_type=_XML)


@router.get("/parking-table", summary="DATEX II parking table", operation_id="datex2_parking_table",
            response_class=Response, responses=_DOCUMENT)
async def parking_table(cities: SelectedCities, now: Now) -> Response:
    """ParkingTablePublication: every lot with its place, capacity and special spaces (a
    table per city)."""
    return _xml(parking_table_publication(cities, now))


@router.get("/parking-status", summary="DATEX II parking status",
            operation_id="datex2_parking_status", response_class=Response, responses=_READ)
async def parking_status(request: Request, pool: PoolDep, views: Views, all_cities: CitiesDep,
                         cities: SelectedCities, now: Now) -> Response:
    """ParkingStatusPublication: every lot's vacant spaces and status now (unknown when stale)."""
    current = await views.get(pool, all_cities, now)
    key = ("datex2-parking-status", tuple(city.id for city in cities))
    return views.encoded(key, lambda: Encoded(
        parking_status_publication(cities, current, now), _XML)).response(request)


@router.get("/vms-table", summary="DATEX II VMS table", operation_id="datex2_vms_table",
            response_class=Response, responses={**_DOCUMENT, **_NO_SIGNS})
async def vms_table(cities: SelectedCities, now: Now) -> Response:
    """VmsTablePublication: every sign with its place and display (a table per city)."""
    _require_signs(cities)
    return _xml(vms_table_publication(cities, now))


@router.get("/vms-status", summary="DATEX II VMS status", operation_id="datex2_vms_status",
            response_class=Response, responses={**_READ, **_NO_SIGNS})
async def vms_status(conn: ReadConn, cities: SelectedCities, now: Now) -> Response:
    """VmsPublication: what every sign last confirmed showing, and whether it works."""
    _require_signs(cities)
    rows: dict[str, Mapping[str, Any]] = {}
    async with conn.cursor(row_factory=dict_row) as cur:
        for city in cities:
            await cur.execute(queries("signage")["sign_health"], {"city": city.id})
            rows.update((row["sign_id"], row) for row in await cur.fetchall())
    reports = {sign.id: _sign_report(sign, rows.get(sign.id), now)
               for city in cities for sign in city.signs}
    return _xml(vms_publication(cities, reports, now))


_NO_CHARGERS: dict[int | str, dict[str, Any]] = {
    404: {**problem_responses(404)[404],
          "description": "No city asked for has charging points it publishes."}}


@router.get("/energy-infrastructure-table", summary="DATEX II AFIR energy infrastructure table",
            operation_id="datex2_energy_infrastructure_table", response_class=Response,
            responses={**_DOCUMENT, **_NO_CHARGERS})
async def energy_infrastructure_table(cities: SelectedCities, settings: SettingsDep,
                                      now: Now) -> Response:
    """EnergyInfrastructureTablePublication (AFIR): the sites, stations, charging points,
    connectors and power of the charging points the city operates (a table per city)."""
    every = settings.API_AFIR_ALL_OPERATORS
    _require_chargers(cities, every)
    return _xml(energy_table_publication(cities, now, all_operators=every))


@router.get("/energy-infrastructure-status",
            summary="DATEX II AFIR energy infrastructure status",
            operation_id="datex2_energy_infrastructure_status", response_class=Response,
            responses={**_READ, **_NO_CHARGERS})
async def energy_infrastructure_status(conn: Conn, cities: SelectedCities,
                                       settings: SettingsDep, now: Now) -> Response:
    """EnergyInfrastructureStatusPublication (AFIR): each published charging point's status
    now and when it was last reported (unknown before its first report)."""
    every = settings.API_AFIR_ALL_OPERATORS
    _require_chargers(cities, every)
    points = await evse_points(conn, cities, now)
    states = {evse_id: point.state for evse_id, point in points.items()}
    occupied = {evse_id for evse_id, point in points.items()
                if point.occupied and point.state.status == "AVAILABLE"}
    return _xml(energy_status_publication(cities, states, now, all_operators=every,
                                          occupied=occupied))


def _require_chargers(cities: tuple[City, ...], all_operators: bool) -> None:
    if not any(published_stations(city, all_operators=all_operators) for city in cities):
        raise HTTPException(404, f"no published charging points in "
                                 f"{', '.join(city.id for city in cities)}")


def _require_signs(cities: tuple[City, ...]) -> None:
    if not any(city.signs for city in cities):
        raise HTTPException(404, f"no signs in {', '.join(city.id for city in cities)}")


def _sign_report(sign: Sign, row: Mapping[str, Any] | None, now: datetime) -> SignReport:
    """The health of ``sign`` from its ``sign_state`` row (signage query ``sign_health``)."""
    if row is None or row["content"] is None or row["last_ack"] is None:
        content, acked_at = None, None
    else:
        content, acked_at = content_from_json(sign.id, row["content"]), row["last_ack"]
    # The signage service writes the row at every push, keep-alives included; a row older than
    # the sign's own stale limit means nobody is talking to the sign, so its state is unknown.
    if row is None or row["updated"] is None or (
            now - row["updated"] > timedelta(seconds=sign.stale_after_s)):
        return SignReport(content, acked_at, "unknown")
    if row["consecutive_failures"]:
        return SignReport(content, acked_at, "failed", row["last_error"] or "")
    return SignReport(content, acked_at, "working")
