"""Live: ``GET /v1/stream``, Server-Sent Events of lot status and sign content changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api._http import bad_parameter, problem_responses
from api._hub import Event, Hub
from api.deps import CitiesDep, SelectedCities, SettingsDep

__all__ = ["router"]

logger = logging.getLogger(__name__)

RETRY_MS = 3000  # how long EventSource waits before it reconnects


router = APIRouter(tags=["live"], responses=problem_responses(422, 503))


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    if not hub.alive:
        raise HTTPException(503, "the live stream is not running", headers={"Retry-After": "5"})
    return hub


def _ids(name: str, text: str | None, known: set[str]) -> frozenset[str]:
    wanted = frozenset(part.strip() for part in (text or "").split(",") if part.strip())
    unknown = sorted(wanted - known)
    if unknown:
        bad_parameter(name, f"unknown ids: {', '.join(unknown)[:300]}")
    return wanted


Filters = tuple[frozenset[str] | None, frozenset[str] | None, frozenset[str] | None]


def _filters(
    all_cities: CitiesDep, cities: SelectedCities,
    lots: Annotated[str | None, Query(description="Comma list of lot ids: only these lots "
                                      "(and no signs unless `signs` is given)")] = None,
    signs: Annotated[str | None, Query(description="Comma list of sign ids: only these signs "
                                       "(and no lots unless `lots` is given)")] = None,
) -> Filters:
    """Lot ids, sign ids and city ids the client wants (None: any)."""
    city_ids = None if len(cities) == len(all_cities) else frozenset(c.id for c in cities)
    if lots is None and signs is None:
        return None, None, city_ids
    return (_ids("lots", lots, {lot.id for city in cities for lot in city.lots}),
            _ids("signs", signs, {sign.id for city in cities for sign in city.signs}),
            city_ids)


def _sse(event: Event) -> ServerSentEvent:
    return ServerSentEvent(raw_data=event.data, event=event.kind, id=event.id)


@router.get(
    "/v1/stream", operation_id="streamChanges", response_class=EventSourceResponse,
    summary="Live lot status and sign content (Server-Sent Events)",
    description="First one `lot` event per lot with its current status (the payload of the MQTT "
    "status topic, with `lot_id`) and one `sign` event per sign with what it confirmed showing; "
    "then each change as it is committed, and `unknown` for a lot whose count goes stale. "
    "Every event has an `id`; a reconnecting client (`Last-Event-ID`) gets the current state "
    "again, which supersedes whatever it missed. A comment line keeps the connection open "
    "when nothing changes. A client that falls too far behind is disconnected and "
    "reconnects.")
async def stream(
    hub: Annotated[Hub, Depends(_hub)],
    filters: Annotated[Filters, Depends(_filters)],
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(
        description="Sent by EventSource on reconnecting; answered with the current state")
    ] = None,
) -> AsyncIterator[ServerSentEvent]:
    """The current state of the lots and signs asked for, then each change."""
    if last_event_id:
        logger.debug("stream client back after event %s", last_event_id[:40])
    subscriber, current = hub.subscribe(*filters)
    try:
        yield ServerSentEvent(comment="parkleit: the current state, then each change",
                              retry=RETRY_MS)
        for event in current:
            yield _sse(event)
        while not subscriber.closed:
            try:
                async with asyncio.timeout(settings.API_STREAM_HEARTBEAT_S):
                    next_event = await subscriber.queue.get()
            except TimeoutError:
                yield ServerSentEvent(comment="keep-alive")
                continue
            if next_event is None or subscriber.closed:
                break
            yield _sse(next_event)
    finally:
        hub.unsubscribe(subscriber)
