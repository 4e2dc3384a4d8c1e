"""The lots in ParkAPI's format, for OpenTripPlanner (``sourceType: "park-api"``) and apps."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api._http import problem_responses
from api._parkapi import parkapi_lots
from api._snapshot import Encoded
from api.deps import CitiesDep, Now, PoolDep, SelectedCities, Views

__all__ = ["router"]

router = APIRouter(tags=["ParkAPI"], responses=problem_responses(422, 503))


_DESCRIPTION = """The lots as ParkAPI v1 serves a city: ``free`` only for lots counted recently,
``state`` ``nodata`` for the others. For OpenTripPlanner, an updater
``{"type": "vehicle-parking", "sourceType": "park-api", "feedId": "parkleit",
"timeZone": "Europe/Berlin", "url": "<this URL>"}``."""


@router.get("/v1/parkapi", summary="ParkAPI lots", operation_id="parkapi_lots",
            response_class=JSONResponse, description=_DESCRIPTION)
async def parkapi(request: Request, pool: PoolDep, views: Views, all_cities: CitiesDep,
                  cities: SelectedCities, now: Now) -> Response:
    """ParkAPI v1 lots document of every city's lots (or the one city's)."""
    current = await views.get(pool, all_cities, now)
    ids = tuple(lot.id for city in cities for lot in city.lots)
    source = str(request.base_url)
    # ``last_downloaded`` is the time of the snapshot, not of each request: clients compare
    # ``last_updated`` (the newest count) to tell new data, and the answer stays cacheable.
    return views.encoded(("parkapi", ids, source), lambda: Encoded(json.dumps(parkapi_lots(
        [current[lot_id] for lot_id in ids], now, data_source=source)).encode(),
        "application/json")).response(request)
