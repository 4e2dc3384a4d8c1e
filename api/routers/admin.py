"""Admin writes: close and open lots, override signs, reload the city configs.

Every route needs an API key (checked before the body is read: ``_KeyFirst``), takes a token
of the key's rate-limit bucket and writes an ``admin_audit`` row, in the transaction of the
change, with the key's name. Closing and opening a lot is ``api._lotadmin``'s, shared with the
operator console."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, Security
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPBearer
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field

from api import _lotadmin as lotadmin
from api._http import PROBLEM_MEDIA_TYPE, Problem, bad_parameter, inline_schema, problem_responses
from api._input import Moment, SafeText
from api._keys import KeyFileError, KeyStore
from api._lotadmin import AdminLot, CloseLot, Operator, Reason, audit, audit_row, future
from api._ratelimit import TokenBuckets, retry_after
from api.deps import CitiesDep, Conn, Now, SettingsDep
from core import channels
from core.city import ID_PATTERN, Cities, CityConfigError, Sign, load_cities
from core.db import queries
from core.registry import sync_registry
from signage import Arrow, LineContent, SignContent, content_json

__all__ = ["router"]

logger = logging.getLogger(__name__)


def _problems() -> dict[int | str, dict[str, Any]]:
    content = {PROBLEM_MEDIA_TYPE: {"schema": inline_schema(Problem)}}
    return {**problem_responses(404, 422, 503),
            401: {"description": "No API key", "content": content, "headers": {
                "WWW-Authenticate": {"required": True, "schema": {"type": "string"}}}},
            403: {"description": "The API key is not valid", "content": content}}


def _too_many(wait: float, detail: str) -> HTTPException:
    return HTTPException(429, detail, headers={"Retry-After": retry_after(wait)})


async def _authenticate(request: Request) -> Operator:
    """The operator whose API key the request carries (``Authorization: Bearer <key>`` or
    ``X-API-Key``): else 401 without one, 403 for a wrong one, 429 when its rate-limit bucket
    is empty, 503 when the keys cannot be read."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    x_api_key = request.headers.get("x-api-key")
    key = (x_api_key or (token.strip() if scheme.lower() == "bearer" else "")).strip()
    if not key:
        raise HTTPException(401, "an API key is needed: Authorization: Bearer <key> or X-API-Key",
                            headers={"WWW-Authenticate": 'Bearer realm="parkleit admin"'})
    store: KeyStore = request.app.state.api_keys
    buckets: TokenBuckets = request.app.state.key_buckets
    client = request.client.host if request.client else None
    name = store.cached(key)
    if name is None:
        # Hashing costs time: a client trying keys spends its address's key tokens first.
        wait = await buckets.take(f"unverified:{client}")
        if wait:
            raise _too_many(wait, "too many key checks from this address")
        try:
            name = await asyncio.to_thread(store.verify, key)
        except KeyFileError:
            raise HTTPException(503, "the API keys cannot be read; see the server log",
                                headers={"Retry-After": "60"}) from None
        if name is None:
            logger.warning("admin request with an invalid API key from %s", client)
            raise HTTPException(403, "the API key is not valid")
    wait = await buckets.take(name)
    if wait:
        raise _too_many(wait, f"too many admin requests with key {name!r}")
    return Operator(name, client)


class _KeyFirst(APIRoute):
    """An admin route: the API key is checked before FastAPI reads and parses the body (it
    does that before any dependency), so a request without a valid key gets its 401, 403 or
    429 whatever its body, and no one without a key makes the API parse anything."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def key_first(request: Request) -> Response:
            request.state.operator = await _authenticate(request)
            return await handler(request)

        return key_first


# The two ways to send a key, for the OpenAPI (security schemes); _KeyFirst checks them.
_API_KEY = APIKeyHeader(name="X-API-Key", scheme_name="apiKey", auto_error=False,
                        description="An admin key (parkleit api add-key NAME)")
_BEARER = HTTPBearer(scheme_name="bearer", auto_error=False,
                     description="An admin key as a bearer token")


async def _operator(request: Request) -> Operator:
    """The operator ``_KeyFirst`` authenticated."""
    operator: Operator = request.state.operator
    return operator


router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=_KeyFirst,
                   responses=_problems(),
                   dependencies=[Security(_API_KEY), Security(_BEARER)])
OperatorDep = Annotated[Operator, Depends(_operator)]
LotId = Annotated[str, Path(pattern=ID_PATTERN, description="The lot's id.")]
SignId = Annotated[str, Path(pattern=ID_PATTERN, description="The sign's id.")]


# -- lots ----------------------------------------------------------------------------------


@router.post("/lots/{lot_id}/close", operation_id="closeLot", response_model=AdminLot,
             summary="Close a lot (status closed everywhere until opened or until `until`)")
async def close_lot(lot_id: LotId, body: CloseLot, operator: OperatorDep, conn: Conn, now: Now,
                    cities: CitiesDep) -> AdminLot:
    """Close ``lot_id`` for every consumer: API, stream, signs, DATEX II, MQTT."""
    return await lotadmin.close_lot(conn, cities, lot_id, body, operator, now)


@router.post("/lots/{lot_id}/open", operation_id="openLot", response_model=AdminLot,
             summary="End an operator's closure of a lot")
async def open_lot(lot_id: LotId, operator: OperatorDep, conn: Conn, now: Now,
                   cities: CitiesDep) -> AdminLot:
    """End the closure of ``lot_id`` (if any); its status is derived from its count again."""
    return await lotadmin.open_lot(conn, cities, lot_id, operator, now)


# -- signs ---------------------------------------------------------------------------------


class OverrideLine(BaseModel):
    """One line of an override: its text, and the configured label and arrow unless given."""

    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, SafeText(max_length=80)]
    label: Annotated[str, SafeText(max_length=24)] | None = None
    arrow: Arrow | None = None


class OverrideSign(BaseModel):
    """What a sign shows instead of its rendered content, why, and until when."""

    model_config = ConfigDict(extra="forbid")
    lines: Annotated[list[OverrideLine], Field(min_length=1, description="One per line of "
                                               "the sign, in order")]
    reason: Reason
    until: Moment | None = Field(None, description="End of the override (RFC 3339 with "
                                 "offset; default: until cleared)")


class ShownLine(BaseModel):
    """A line as the sign will show it."""

    label: str
    arrow: Arrow
    text: str


class SignOverride(BaseModel):
    """A sign's override, or None once cleared."""

    sign_id: str
    lines: list[ShownLine] | None
    reason: str | None = None
    set_by: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _sign(cities: Cities, sign_id: str) -> Sign:
    try:
        return cities.sign(sign_id)[1]
    except KeyError:
        raise HTTPException(404, f"no sign {sign_id!r}") from None


def _override_content(cities: Cities, sign_id: str, body: OverrideSign) -> SignContent:
    sign = _sign(cities, sign_id)
    if len(body.lines) != len(sign.lines):
        bad_parameter("lines", f"sign {sign_id} has {len(sign.lines)} lines, "
                      f"not {len(body.lines)}", "body")
    lines = []
    for number, (line, configured) in enumerate(zip(body.lines, sign.lines, strict=True), 1):
        label = configured.label if line.label is None else line.label
        shown = LineContent(label, configured.arrow if line.arrow is None else line.arrow,
                            line.text)
        width = len(f"{label} {line.text}" if label else line.text)
        if width > sign.display.line_width:
            bad_parameter("lines", f"line {number} is {width} characters with its label; "
                          f"the sign has {sign.display.line_width}", "body")
        lines.append(shown)
    return SignContent(sign_id, tuple(lines))


async def _registered(conn: AsyncConnection[Any], sign_id: str) -> None:
    cursor = await conn.execute(queries("api", "admin")["sign_registered"],
                                {"sign_id": sign_id})
    if await cursor.fetchone() is None:
        raise HTTPException(404, f"sign {sign_id!r} is not in the registry yet")


@router.post("/signs/{sign_id}/override", operation_id="overrideSign",
             response_model=SignOverride,
             summary="Show an operator's text on a sign (until cleared or until `until`)")
async def override_sign(sign_id: SignId, body: OverrideSign, operator: OperatorDep, conn: Conn,
                        now: Now, cities: CitiesDep) -> SignOverride:
    """Set the override of ``sign_id``; the signage service pushes it at once."""
    content = _override_content(cities, sign_id, body)
    until = future(body.until, now)
    document = content_json(content)
    async with conn.transaction():
        await _registered(conn, sign_id)
        q = queries("api", "admin")
        await conn.execute(q["set_sign_override"], {
            "sign_id": sign_id, "content": Jsonb(document), "reason": body.reason,
            "key_name": operator.name, "since": now, "until": until, "mode": "text"})
        await conn.execute(q["notify"], {"channel": channels.SIGN_OVERRIDE, "payload": sign_id})
        await audit(conn, operator, "override_sign", sign_id,
                     {**document, "reason": body.reason, "until": until and until.isoformat()},
                     now)
    return SignOverride(sign_id=sign_id, lines=[ShownLine(**line) for line in document["lines"]],
                        reason=body.reason, set_by=operator.name, since=now, until=until)


@router.delete("/signs/{sign_id}/override", operation_id="clearSignOverride",
               response_model=SignOverride, summary="End a sign's override")
async def clear_override(sign_id: SignId, operator: OperatorDep, conn: Conn, now: Now,
                         cities: CitiesDep) -> SignOverride:
    """Clear the override of ``sign_id`` (if any); the sign shows its rendered content."""
    _sign(cities, sign_id)
    async with conn.transaction():
        q = queries("api", "admin")
        cursor = await conn.execute(q["clear_sign_override"], {"sign_id": sign_id})
        await conn.execute(q["notify"], {"channel": channels.SIGN_OVERRIDE, "payload": sign_id})
        await audit(conn, operator, "clear_sign_override", sign_id,
                     {"was_set": cursor.rowcount > 0}, now)
    return SignOverride(sign_id=sign_id, lines=None)


# -- config --------------------------------------------------------------------------------


class ReloadedCity(BaseModel):
    """A city config now in force."""

    city: str
    lots: int
    signs: int


class Reloaded(BaseModel):
    """The city configs now in force."""

    cities: list[ReloadedCity]


def _sync(url: str, cities: Cities, audit: dict[str, Any]) -> None:
    q = queries("api", "admin")
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn, conn.transaction():
        for city in cities:
            sync_registry(conn, city)
        conn.execute(q["audit"], audit)
        for city in cities:
            conn.execute(q["notify"], {"channel": channels.CONFIG, "payload": city.id})


def _not_taken(exc: CityConfigError) -> HTTPException:
    return HTTPException(422, f"the city configs were not taken, the old ones stay: {exc}")


@router.post("/reload", operation_id="reloadConfig", response_model=Reloaded,
             summary="Read the city configs again and sync the registry")
async def reload_config(request: Request, operator: OperatorDep, settings: SettingsDep, now: Now,
                        cities: CitiesDep) -> Reloaded:
    """Read the configs of ``PARKLEIT_CITIES`` (or ``PARKLEIT_CITY``) again, sync lots,
    bays and signs, and put them in force. With its own database role (docs/operations.md,
    "Database roles") the API may not write the registry: it checks that ``db migrate`` has
    synced these configs, and refuses them (422) if not.

    Every API process takes them (they hear ``parkleit_config``); ingest, signage and the
    forecaster read their config at their start and need a restart for it.
    """
    try:
        new = await asyncio.to_thread(load_cities, settings.city_refs)
    except CityConfigError as exc:
        raise _not_taken(exc) from None
    before, after = [city.id for city in cities], [city.id for city in new]
    if before != after:
        raise HTTPException(422, f"the city ids changed ({', '.join(before)} -> "
                            f"{', '.join(after)}); restart the services instead")
    detail = [ReloadedCity(city=city.id, lots=len(city.lots), signs=len(city.signs))
              for city in new]
    document = [entry.model_dump() for entry in detail]
    try:
        await asyncio.to_thread(_sync, settings.DATABASE_URL, new, audit_row(
            operator, "reload", ",".join(after), document, now))
    except CityConfigError as exc:  # an id of another city's, or (own role) not migrated yet
        raise _not_taken(exc) from None
    logger.info("admin: reload by key %s from %s: %s", operator.name, operator.client,
                json.dumps(document))
    request.app.state.cities = new
    return Reloaded(cities=detail)
