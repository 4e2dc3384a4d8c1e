"""Live: ``GET /v1/stream``, Server-Sent Events of lot status, sign content and charging
point state changes."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.sse import format_sse_event
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api._http import bad_parameter, problem_responses
from api._hub import Hub, Subscriber, TooManyStreams
from api._ratelimit import client_address, retry_after
from api.deps import CitiesDep, SelectedCities, SettingsDep

__all__ = ["RAW_SEND", "StreamSend", "router"]

logger = logging.getLogger(__name__)

RETRY_MS = 3000  # how long EventSource waits before it reconnects
_OPENING = format_sse_event(comment="parkleit: the current state, then each change",
                            retry=RETRY_MS)
_KEEP_ALIVE = format_sse_event(comment="keep-alive")


router = APIRouter(tags=["live"], responses=problem_responses(422, 503))


# The server's own ``send`` of a stream request, put in its scope by ``StreamSend``.
RAW_SEND = "parkleit.stream_send"


class StreamSend:
    """ASGI middleware, outermost: keeps the server's ``send`` of a ``/v1/stream`` request in
    its scope. The stream's head and opening line go through every middleware (security
    headers, CORS, metrics; gzip leaves text/event-stream alone), its event frames straight to
    the server: thousands of frames a second through ten wrappers that pass them on unchanged
    were most of the fan-out's cost per client and event."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/stream":
            scope[RAW_SEND] = send
        await self.app(scope, receive, send)


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


class _EventStream(Response):
    """The stream of one subscriber: what it has pending, as the hub encoded it, in one write
    per wake-up; a comment when the hub finds it quiet for ``API_STREAM_HEARTBEAT_S``. No task
    per event and no timer of its own; a task of its own waits for the client to go, which
    ends the stream at once (a normal event: one line at debug)."""

    media_type = "text/event-stream"

    def __init__(self, hub: Hub, subscriber: Subscriber) -> None:
        self.hub, self.subscriber = hub, subscriber
        self.status_code, self.background = 200, None
        # As FastAPI streams events: no caching, no buffering by nginx.
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscriber = self.subscriber
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            async with anyio.create_task_group() as group:
                group.start_soon(self._client_gone, receive, group.cancel_scope)
                await self._events(send, scope.get(RAW_SEND, send))
                group.cancel_scope.cancel()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (OSError, anyio.BrokenResourceError, asyncio.CancelledError) as exc:
            logger.debug("stream client of %s gone: %s", subscriber.address,
                         type(exc).__name__)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self.hub.unsubscribe(subscriber)

    async def _events(self, send: Send, frames_send: Send) -> None:
        subscriber = self.subscriber
        # Through the middleware: the head goes out with the first body (gzip holds it).
        await send({"type": "http.response.body", "body": _OPENING, "more_body": True})
        send = frames_send
        while True:
            if not (subscriber.pending or subscriber.closed or subscriber.heartbeat_due):
                await subscriber.wake.wait()  # no timer of its own: the hub wakes it to beat
            if subscriber.pending:
                frames = subscriber.take()
            elif subscriber.closed:
                return
            else:
                frames = _KEEP_ALIVE
            subscriber.sent()
            await send({"type": "http.response.body", "body": frames, "more_body": True})

    async def _client_gone(self, receive: Receive, stream: anyio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        logger.debug("stream client of %s disconnected", self.subscriber.address)
        stream.cancel()


# Each event as OpenAPI 3.2 describes Server-Sent Events (what FastAPI writes for a generator).
_STREAM_CONTENT: dict[str, Any] = {"text/event-stream": {"itemSchema": {
    "type": "object", "properties": {
        "data": {"type": "string"}, "event": {"type": "string"}, "id": {"type": "string"},
        "retry": {"type": "integer", "minimum": 0}}}}}


@router.get(
    "/v1/stream", operation_id="streamChanges", response_class=_EventStream,
    summary="Live lot status and sign content (Server-Sent Events)",
    description="First one `lot` event per lot with its current status (the payload of the MQTT "
    "status topic, with `lot_id`), one `sign` event per sign with what it confirmed showing "
    "and one `evse` event per charging point that reported (the payload of its retained MQTT "
    "state topic: `evse_id`, OCPI `status` read with its bays - `BLOCKED` when a car has stood "
    "there without charging - `since`, `updated`, `source`, and `free` as in "
    "/v1/charging/locations; not with `lots` or `signs`); "
    "then each change as it is committed, and `unknown` for a lot whose count goes stale. "
    "Every event has an `id`; a reconnecting client (`Last-Event-ID`) gets the current state "
    "again, which supersedes whatever it missed. A comment line keeps the connection open "
    "when nothing changes. A client that is slower than the changes gets the newest state of "
    "each lot and sign (in the order they first changed); one that reads nothing for "
    "`API_STREAM_MAX_LAG_S` is disconnected and reconnects. At most `API_STREAM_MAX_PER_IP` "
    "streams per client address: 429 beyond.",
    status_code=200, responses={200: {"content": _STREAM_CONTENT}})
async def stream(
    request: Request,
    hub: Annotated[Hub, Depends(_hub)],
    filters: Annotated[Filters, Depends(_filters)],
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(
        description="Sent by EventSource on reconnecting; answered with the current state")
    ] = None,
) -> Response:
    """The current state of the lots and signs asked for, then each change."""
    if last_event_id:
        logger.debug("stream client back after event %s", last_event_id[:40])
    try:
        lots, signs, cities = filters
        subscriber = hub.subscribe(
            lots, signs, cities, address=client_address(request.scope),
            # Asking for some lots or signs asks for no charging points.
            evses=None if lots is None and signs is None else frozenset())
    except TooManyStreams:
        raise HTTPException(429, f"too many streams from this address; at most "
                            f"{settings.API_STREAM_MAX_PER_IP} at once", headers={
                                "Retry-After": retry_after(RETRY_MS / 1000)}) from None
    return _EventStream(hub, subscriber)
