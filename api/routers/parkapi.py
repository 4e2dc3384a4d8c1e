"""The lots in ParkAPI's format, for OpenTripPlanner (``sourceType: "park-api"``) and apps."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api._parkapi import parkapi_lots
from api._readings import read_lot_readings
from api.deps import CityDep, Conn

__all__ = ["router"]

router = APIRouter(tags=["ParkAPI"])


_DESCRIPTION = """The lots as ParkAPI v1 serves a city: ``free`` only for lots counted recently,
``state`` ``nodata`` for the others. For OpenTripPlanner, an updater
``{"type": "vehicle-parking", "sourceType": "park-api", "feedId": "parkleit",
"timeZone": "Europe/Berlin", "url": "<this URL>"}``."""


@router.get("/v1/parkapi", summary="ParkAPI lots", operation_id="parkapi_lots",
            response_class=JSONResponse, description=_DESCRIPTION)
async def parkapi(request: Request, conn: Conn, city: CityDep) -> JSONResponse:
    """ParkAPI v1 lots document of the city."""
    readings = await read_lot_readings(conn, city)
    return JSONResponse(parkapi_lots(city, readings, datetime.now(UTC),
                                     data_source=str(request.base_url)))
