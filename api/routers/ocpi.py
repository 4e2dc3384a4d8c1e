"""OCPI 2.2.1 receiver of the Locations module: another operator (a CPO, ``ocpi_peers`` in
the city config) pushes its charging points' status with ``PUT`` and ``PATCH`` on
``/ocpi/2.2.1/locations/{country_code}/{party_id}/{location_id}[/{evse_uid}]``.

A peer authenticates with its push token (``Authorization: Token <base64>``; the token is in
the environment variable its ``push_token_env`` names), compared in constant time. Answers are
the OCPI envelope: 1000 stored; 2001 with HTTP 400 for a body that is not a Location or EVSE;
2003 with HTTP 404 for a location party or an EVSE that is not theirs; 2000 with HTTP 401
without a valid token. The statuses are stored with source ``ocpi``
(``core.charging.store_readings_async``), which NOTIFYs the stream.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from api._http import problem_responses
from api.deps import CitiesDep, Conn, Now, SettingsDep
from core.charging import EvseReading, store_readings_async
from core.city import Cities, City, OcpiPeer
from core.ocpi import (
    CLIENT_ERROR,
    INVALID_PARAMETERS,
    UNKNOWN_LOCATION,
    EvseUpdate,
    OcpiError,
    envelope,
    evse_update,
    location_updates,
    token_matches,
)
from core.settings import Settings

__all__ = ["router"]

logger = logging.getLogger(__name__)


class OcpiResponse(BaseModel):
    """The OCPI response envelope."""

    data: Any = None
    status_code: int = Field(description="1000 success; 2000 client error; 2001 invalid or "
                                         "missing parameters; 2003 unknown location.")
    status_message: str
    timestamp: str = Field(description="RFC 3339, UTC.")


_ENVELOPE = {"model": OcpiResponse}
router = APIRouter(prefix="/ocpi/2.2.1/locations", tags=["ocpi"], responses={
    400: {**_ENVELOPE, "description": "Not an OCPI Location or EVSE (status_code 2001)."},
    401: {**_ENVELOPE, "description": "No valid OCPI token (status_code 2000)."},
    404: {**_ENVELOPE, "description": "Not a location or EVSE of this peer (status_code 2003)."},
    **problem_responses(422),
})

CountryCode = Annotated[str, Path(description="The peer's ISO 3166-1 alpha-2 country code.",
                                  max_length=2)]
PartyId = Annotated[str, Path(description="The peer's party id.", max_length=3)]
LocationId = Annotated[str, Path(description="The peer's location id.", max_length=36)]
EvseUid = Annotated[str, Path(description="The EVSE's uid (its EVSE id in parkleit).",
                              max_length=48)]
_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "description": "An OCPI 2.2.1 Location or EVSE object (PATCH: the "
                                     "changed fields and last_updated)."}}}}}


def _answer(now: datetime, status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(envelope(None, now, code, message), status_code=status)


def _peer(request: Request, cities: Cities, settings: Settings) -> tuple[City, OcpiPeer] | None:
    """The city and peer whose push token the request carries; every peer is compared."""
    header = request.headers.get("authorization")
    found: tuple[City, OcpiPeer] | None = None
    for city in cities:
        for peer in city.ocpi_peers:
            token = settings.secret(peer.push_token_env) if peer.push_token_env else None
            if token is not None and token_matches(header, token) and found is None:
                found = (city, peer)
    return found


@dataclass(frozen=True, slots=True)
class _Push:
    """A peer's PUT or PATCH as every route takes it: the request, the cities and settings its
    token is checked against, the connection and moment its statuses are stored with, and the
    location its path names."""

    request: Request
    cities: Cities
    settings: Settings
    conn: AsyncConnection[Any]
    now: datetime
    location: tuple[str, str, str]  # country_code, party_id, location_id


async def _push(request: Request, cities: CitiesDep, settings: SettingsDep, conn: Conn,
                now: Now, country_code: CountryCode, party_id: PartyId,
                location_id: LocationId) -> _Push:
    return _Push(request, cities, settings, conn, now, (country_code, party_id, location_id))


async def _evse_uid(evse_uid: EvseUid) -> str:
    # A dependency of its own only so that OpenAPI lists the parameter after the location's
    # (an operation's own parameters come before its dependencies').
    return evse_uid


Push = Annotated[_Push, Depends(_push)]
Evse = Annotated[str, Depends(_evse_uid)]


async def _receive(push: _Push, evse_uid: str | None, *, partial: bool) -> JSONResponse:
    now = push.now
    known = _peer(push.request, push.cities, push.settings)
    if known is None:
        return _answer(now, 401, CLIENT_ERROR, "Unknown or missing token")
    city, peer = known
    country_code, party_id, location_id = push.location
    if (country_code, party_id) != (peer.country_code, peer.party_id):
        return _answer(now, 404, UNKNOWN_LOCATION,
                       f"not a location of {peer.country_code}/{peer.party_id}")
    try:
        body = json.loads(await push.request.body())
        updates: list[EvseUpdate] = (
            [evse_update(body, evse_uid, partial=partial)] if evse_uid is not None
            else location_updates(body, partial=partial))
    except (ValueError, RecursionError) as exc:  # OcpiError, bad JSON, bad UTF-8
        reason = str(exc) if isinstance(exc, OcpiError) else "the body is not JSON"
        return _answer(now, 400, INVALID_PARAMETERS, reason[:200])
    ours = {evse.evse_id for _, evse in city.peer_evses(peer)}
    unknown = [update.evse_id for update in updates if update.evse_id not in ours]
    if unknown:
        logger.warning("OCPI peer %s pushed unknown EVSE %r (location %r)", peer.id,
                       unknown[0][:48], location_id)
        if evse_uid is not None or len(unknown) == len(updates):
            return _answer(now, 404, UNKNOWN_LOCATION, f"unknown EVSE {unknown[0][:48]!r}")
    readings = [EvseReading(update.evse_id, update.status, min(update.last_updated, now), "ocpi")
                for update in updates if update.evse_id in ours and update.status is not None]
    if readings:
        async with push.conn.transaction():
            await store_readings_async(push.conn, city.id, readings)
    return _answer(now, 200, 1000, "Success")


@router.put("/{country_code}/{party_id}/{location_id}", operation_id="ocpiPutLocation",
            response_model=OcpiResponse, openapi_extra=_BODY)
async def put_location(push: Push) -> JSONResponse:
    """A peer's whole Location: the status of each of its EVSEs that is ours."""
    return await _receive(push, None, partial=False)


@router.patch("/{country_code}/{party_id}/{location_id}", operation_id="ocpiPatchLocation",
              response_model=OcpiResponse, openapi_extra=_BODY)
async def patch_location(push: Push) -> JSONResponse:
    """Changed fields of a peer's Location (its EVSEs' status where it sends them)."""
    return await _receive(push, None, partial=True)


@router.put("/{country_code}/{party_id}/{location_id}/{evse_uid}", operation_id="ocpiPutEvse",
            response_model=OcpiResponse, openapi_extra=_BODY)
async def put_evse(push: Push, evse_uid: Evse) -> JSONResponse:
    """A peer's whole EVSE object: its status."""
    return await _receive(push, evse_uid, partial=False)


@router.patch("/{country_code}/{party_id}/{location_id}/{evse_uid}",
              operation_id="ocpiPatchEvse", response_model=OcpiResponse, openapi_extra=_BODY)
async def patch_evse(push: Push, evse_uid: Evse) -> JSONResponse:
    """Changed fields of a peer's EVSE (``status`` and ``last_updated``)."""
    return await _receive(push, evse_uid, partial=True)
