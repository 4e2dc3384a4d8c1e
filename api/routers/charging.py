"""Charging: the charging points of every city (or one) as OCPI 2.2.1-style Locations with
their EVSEs, connectors and current status, for apps."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from api._charging import evse_points
from api._http import cache, problem_responses
from api._models import UtcTime
from api.deps import Conn, Now, SelectedCities
from core.charging import EvseStatus, PointReading
from core.city import ChargingStation, City, Evse

__all__ = ["router"]

LIVE_MAX_AGE = 10

router = APIRouter(prefix="/v1/charging", tags=["charging"],
                   responses=problem_responses(304, 422, 503))


class GeoLocation(BaseModel):
    """OCPI GeoLocation: decimal degrees as text."""

    latitude: str
    longitude: str


class OcpiConnector(BaseModel):
    """An OCPI Connector (its id: its place at the point, from 1)."""

    id: str
    standard: str = Field(description="OCPI ConnectorType, e.g. IEC_62196_T2.")
    format: Literal["SOCKET", "CABLE"]
    power_type: Literal["AC_1_PHASE", "AC_3_PHASE", "DC"]
    max_electric_power: int = Field(description="Watts.")
    last_updated: UtcTime | None


class OcpiEvse(BaseModel):
    """An OCPI EVSE with its status now (UNKNOWN while it has reported nothing)."""

    uid: str
    evse_id: str
    status: EvseStatus = Field(description="Read together with the bays it serves: BLOCKED when "
                               "a bay has been occupied while the point was not charging for the "
                               "city's limit (a car parked without charging).")
    status_since: UtcTime | None = Field(description="When the status last changed (parkleit).")
    free: bool = Field(description="A driver can charge here now: AVAILABLE and no car on its "
                       "bays (parkleit).")
    bay_occupied: bool | None = Field(description="Whether a bay it serves is occupied; null: "
                                      "no bay or no fresh sensor (parkleit).")
    connectors: list[OcpiConnector]
    coordinates: GeoLocation
    bays: list[str] = Field(description="The bays of the site lot the point serves (parkleit).")
    tariff: str | None = Field(description="Free text where known (parkleit).")
    last_updated: UtcTime | None = Field(description="The newest status report; null: none yet.")


class BusinessDetails(BaseModel):
    name: str


class Location(BaseModel):
    """An OCPI 2.2.1-style Location: one charging station, its site lot and its EVSEs."""

    id: str = Field(description="The station's OCPP charge point id.")
    country_code: str
    party_id: str = Field(description="The operator part of the EVSE ids (eMI3).")
    publish: bool
    name: str
    address: str
    city: str
    country: str
    coordinates: GeoLocation
    parking_type: Literal["PARKING_GARAGE", "PARKING_LOT", "ON_STREET"]
    operator: BusinessDetails
    time_zone: str
    evses: list[OcpiEvse]
    lot_id: str = Field(description="The lot the station stands on (parkleit).")
    city_id: str = Field(description="The parkleit city (parkleit).")
    bnetza_id: str | None = Field(description="The BNetzA Ladesäulenregister id (parkleit).")
    last_updated: UtcTime | None


class LocationList(BaseModel):
    locations: list[Location]


_PARKING_TYPE: dict[str, Literal["PARKING_GARAGE", "PARKING_LOT", "ON_STREET"]] = {
    "garage": "PARKING_GARAGE", "surface": "PARKING_LOT", "on_street": "ON_STREET"}


@router.get("/locations", operation_id="listChargingLocations", response_model=LocationList,
            summary="Every charging station with its points and their status",
            description="OCPI 2.2.1-style Location objects, one per charging station, with "
            "their EVSEs, connectors, coordinates and each point's current status (UNKNOWN "
            "while a point has reported nothing), plus parkleit's own fields: the site lot "
            "and the bays each point serves. Not paged: a city has few.")
async def list_locations(conn: Conn, cities: SelectedCities, now: Now) -> Response:
    """Every charging station (of every city or the one asked for), ordered by id."""
    states = await evse_points(conn, cities, now)
    stations = sorted(((city, station) for city in cities for station in city.chargers),
                      key=lambda entry: entry[1].id)
    locations = [_location(city, station, states) for city, station in stations]
    response = JSONResponse(LocationList(locations=locations).model_dump(mode="json"))
    cache(response, max_age=LIVE_MAX_AGE, last_modified=max(
        (point.state.updated for point in states.values()), default=None))
    return response


def _location(city: City, station: ChargingStation,
              states: dict[str, PointReading]) -> Location:
    lot = city.lot(station.lot)
    latitude, longitude = city.station_position(station)
    coordinates = GeoLocation(latitude=str(latitude), longitude=str(longitude))
    evses = [_evse(evse, states.get(evse.evse_id), coordinates) for evse in station.evses]
    updated = [evse.last_updated for evse in evses if evse.last_updated is not None]
    return Location(
        id=station.id, country_code=station.evses[0].evse_id[:2],
        party_id=station.evses[0].evse_id.replace("*", "")[2:5], publish=True,
        name=station.name, address=lot.address, city=city.city.name, country="DEU",
        coordinates=coordinates, parking_type=_PARKING_TYPE[lot.kind],
        operator=BusinessDetails(name=f"Stadt {city.city.name}" if station.city_operated
                                 else station.operator),
        time_zone=city.city.timezone, evses=evses, lot_id=lot.id, city_id=city.id,
        bnetza_id=station.bnetza_id, last_updated=max(updated, default=None))


def _evse(evse: Evse, point: PointReading | None, coordinates: GeoLocation) -> OcpiEvse:
    state = None if point is None else point.state
    updated: datetime | None = None if state is None else state.updated
    return OcpiEvse(
        uid=evse.evse_id, evse_id=evse.evse_id,
        status=EvseStatus.UNKNOWN if state is None else state.status,
        status_since=None if state is None else state.since,
        free=point is not None and point.free,
        bay_occupied=None if point is None else point.occupied,
        connectors=[OcpiConnector(id=str(number), standard=connector.standard,
                                  format=connector.format, power_type=connector.power_type,
                                  max_electric_power=round(connector.max_power_kw * 1000),
                                  last_updated=updated)
                    for number, connector in enumerate(evse.connectors, start=1)],
        coordinates=coordinates, bays=list(evse.bays), tariff=evse.tariff, last_updated=updated)
