"""The lots in ParkAPI's format, for OpenTripPlanner (``sourceType: "park-api"``) and apps."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api._http import problem_responses
from api._parkapi import parkapi_lots
from api._readings import read_lot_readings
from api.deps import Conn, Now, SelectedCities

__all__ = ["router"]

router = APIRouter(tags=["ParkAPI"], responses=problem_responses(422))


_DESCRIPTION = """The lots as ParkAPI v1 serves a city: ``free`` only for lots counted recently,
``state`` ``nodata`` for the others. For OpenTripPlanner, an updater
``{"type": "vehicle-parking", "sourceType": "park-api", "feedId": "parkleit",
"timeZone": "Europe/Berlin", "url": "<this URL>"}``."""


@router.get("/v1/parkapi", summary="ParkAPI lots", operation_id="parkapi_lots",
            response_class=JSONResponse, description=_DESCRIPTION)
async def parkapi(request: Request, conn: Conn, cities: SelectedCities,
                  now: Now) -> JSONResponse:
    """ParkAPI v1 lots document of every city's lots (or the one city's)."""
    readings = await read_lot_readings(conn, cities)
    return JSONResponse(parkapi_lots(cities, readings, now,
                                     data_source=str(request.base_url)))
