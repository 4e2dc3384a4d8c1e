"""HTTP semantics of every route in one place: validators and 304s, caching, compression,
CORS, RFC 9457 problem details, request metrics, the format of times clients send."""

from __future__ import annotations

import copy
import hashlib
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any, NoReturn

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Histogram
from psycopg_pool import PoolTimeout
from pydantic import BaseModel
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api._security import ERROR_HEADERS, install_security

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "RATE_LIMITED",
    "ApiMetrics",
    "HttpMiddleware",
    "Problem",
    "bad_parameter",
    "cache",
    "etag_matches",
    "http_date",
    "inline_schema",
    "install_http",
    "pagination_links",
    "problem",
    "problem_responses",
]

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
# Headers a 304 repeats from the 200 it stands for (RFC 9110 15.4.5).
_NOT_MODIFIED_KEEP = ("cache-control", "content-location", "date", "etag", "expires",
                      "last-modified", "vary")


class ProblemError(BaseModel):
    """One invalid parameter."""

    location: str
    name: str
    detail: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[ProblemError] | None = None


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of ``model`` with its nested models inlined (no ``$ref``), for
    response media types FastAPI does not register schemas for."""
    schema = model.model_json_schema(mode="serialization")
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(copy.deepcopy(definitions[ref.removeprefix("#/$defs/")]))
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


_PROBLEM_CONTENT = {PROBLEM_MEDIA_TYPE: {"schema": inline_schema(Problem)}}
_DESCRIPTIONS = {304: "Not modified: the If-None-Match ETag is current",
                 404: "No such resource",
                 422: "Invalid parameters or body (RFC 9457 problem naming each)",
                 429: "Too many requests (from this address, or with this API key); retry "
                      "after Retry-After seconds",
                 503: "The database or a part of the service is unavailable; retry after "
                      "Retry-After seconds"}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying",
                                "required": True,
                                "schema": {"type": "integer", "minimum": 1}}}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the problem documents (and 304) a route can answer with."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response: dict[str, Any] = {"description": _DESCRIPTIONS[status]}
        if status != 304:
            response["content"] = _PROBLEM_CONTENT
        if status in (429, 503):
            response["headers"] = _RETRY_AFTER
        responses[status] = response
    return responses


# Every request takes a token of its address's bucket (api/_ratelimit.py): the app documents
# the 429 on every operation, once.
RATE_LIMITED = problem_responses(429)



def problem(status: int, detail: str | None, request: Request, *,
            errors: list[ProblemError] | None = None,
            headers: Mapping[str, str] | None = None) -> JSONResponse:
    """An ``application/problem+json`` response."""
    body = Problem(title=HTTPStatus(status).phrase, status=status, detail=detail,
                   instance=request.url.path, errors=errors)
    response = JSONResponse(body.model_dump(exclude_none=True), status_code=status,
                            media_type=PROBLEM_MEDIA_TYPE, headers=dict(headers or {}))
    response.headers["Cache-Control"] = "no-store"
    return response


def bad_parameter(name: str, detail: str, location: str = "query") -> NoReturn:
    """Refuse a request with a 422 problem naming the parameter (as schema validation does)."""
    raise RequestValidationError([{"loc": (location, name), "msg": detail, "type": "value_error"}])


# FastAPI's 400 for a body it cannot read as JSON at all (not UTF-8, nested too deep); a JSON
# syntax error it answers 422. One fault, one answer: 422 like every invalid input.
_UNREADABLE_BODY = "There was an error parsing the body"
_ROUTED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request, allow: str) -> str:
    """Every method the request's path accepts: Starlette's 405 names only those of the first
    route with that path (POST of a sign's override, not its DELETE)."""
    methods = {method.strip() for method in allow.split(",") if method.strip()}
    methods.update(method for method in _ROUTED_METHODS if any(
        route.matches({**request.scope, "method": method})[0] is Match.FULL
        for route in request.app.router.routes))
    if "GET" in methods:
        methods.add("HEAD")  # _Validators answers HEAD for every GET route
    return ", ".join(sorted(methods))


async def _http_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _UNREADABLE_BODY:
        return await _validation_problem(request, RequestValidationError([{
            "loc": ("body",), "msg": "not UTF-8 or nested too deep", "type": "json_invalid"}]))
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request, headers.get("Allow", ""))
    detail = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else None
    return problem(exc.status_code, detail, request, headers=headers)


def _problem_error(error: Mapping[str, Any]) -> ProblemError:
    location, *name = [str(part) for part in error.get("loc", ())] or ["request"]
    if error.get("type") != "json_invalid":
        return ProblemError(location=location, name=".".join(name) or location,
                            detail=str(error.get("msg", "invalid")))
    # A body that is no JSON: FastAPI puts the character position where a field name goes.
    reason = error.get("ctx", {}).get("error") or error.get("msg", "invalid")
    where = f" at character {name[0]}" if name else ""
    return ProblemError(location="body", name="body", detail=f"not JSON: {reason}{where}")


async def _validation_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [_problem_error(error) for error in exc.errors()]
    detail = "; ".join(f"{error.name}: {error.detail}" for error in errors)
    return problem(422, detail, request, errors=errors)


async def _database_problem(request: Request, exc: Exception) -> Response:
    logger.warning("database unavailable for %s: %s", request.url.path,
                   str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    return problem(503, "the database is unavailable; retry later", request,
                   headers={"Retry-After": "5"})


async def _server_problem(request: Request, exc: Exception) -> Response:
    # Logged here with the traceback; the client learns nothing about the internals.
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    # Sent from outside the middleware stack, so it brings its own security headers.
    return problem(500, "the server could not answer; the error is logged", request,
                   headers=ERROR_HEADERS)


def http_date(moment: datetime) -> str:
    """An HTTP date (``Last-Modified``) of an aware datetime."""
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


def cache(response: Response, *, max_age: int, last_modified: datetime | None = None,
          vary: str | None = None) -> None:
    """Set Cache-Control (public, ``max_age`` seconds) and Last-Modified (the data's newest
    time) on a response."""
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    if last_modified is not None:
        response.headers["Last-Modified"] = http_date(last_modified)
    if vary:
        response.headers["Vary"] = vary


def weak_etag(body: bytes) -> str:
    """A weak ETag of a body: the same for its gzip and identity encodings."""
    return f'W/"{hashlib.sha256(body).hexdigest()[:32]}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header matches ``etag`` (weak comparison)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in if_none_match.split(","))


def pagination_links(request: Request, *, offset: int, limit: int, total: int) -> str:
    """An RFC 8288 ``Link`` header with first, prev and next pages."""
    links = [(0, "first")]
    if offset > 0:
        links.append((max(0, min(offset, total) - limit), "prev"))
    if offset + limit < total:
        links.append((offset + limit, "next"))
    return ", ".join(f'<{request.url.include_query_params(offset=start, limit=limit)}>; '
                     f'rel="{rel}"' for start, rel in links)


class HttpMiddleware:
    """ASGI middleware whose ``handle`` sees every HTTP request; lifespan and other scopes
    pass through to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.handle(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the HTTP request ``scope`` (usually by passing it on to ``app``)."""
        raise NotImplementedError


class _Validators:
    """ETag on every complete GET answer, and 304 for a matching ``If-None-Match``.

    The ETag hashes the body, so it is right whatever a route's data depends on (a lot turns
    stale with time alone, without a newer reading). For the same reason ``If-Modified-Since``
    is not evaluated: a date cannot tell whether time has changed a status. Streamed answers
    (more than one body message: CSV export, SSE) pass through; a route can set its own ETag.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        if head:
            # HEAD is GET without the body (RFC 9110 9.3.2); FastAPI routes only know GET.
            scope["method"] = "GET"
        if_none_match = Headers(scope=scope).get("if-none-match")
        held: Message | None = None

        async def validate(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                held = message
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            body = message.get("body", b"")
            if head:
                message = {**message, "body": b""}
            if held is None:
                await send(message)
                return
            start, held = held, None
            headers = MutableHeaders(scope=start)
            if start["status"] != 200 or message.get("more_body", False):
                await send(start)
                await send(message)
                return
            etag = headers.get("etag")
            if etag is None:
                etag = headers["ETag"] = weak_etag(body)
            headers.setdefault("Cache-Control", "no-cache")
            if etag_matches(if_none_match, etag):
                kept = [(key, value) for key, value in start["headers"]
                        if key.decode("latin-1").lower() in _NOT_MODIFIED_KEEP]
                await send({"type": "http.response.start", "status": 304, "headers": kept})
                await send({"type": "http.response.body", "body": b""})
                return
            await send(start)
            await send(message)

        await self.app(scope, receive, validate)


class ApiMetrics:
    """Request counts and latency per route template, in a registry of the app's own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("parkleit_api_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.seconds = Histogram(
            "parkleit_api_request_seconds", "Time to answer a request (whole body)",
            ["method", "route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


class _Measure(HttpMiddleware):
    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        super().__init__(app)
        self.metrics = metrics

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        began = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            # The template, not the path: one series per route however many lot ids exist.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.seconds.labels(method, route).observe(time.perf_counter() - began)


def install_http(app: FastAPI) -> None:
    """Problem handlers and the middleware stack (outermost first: security headers, CORS,
    gzip, metrics, validators) of ``app`` (its ``state.settings`` set); its metrics go to
    ``app.state.metrics``."""
    app.add_exception_handler(StarletteHTTPException, _http_problem)
    app.add_exception_handler(RequestValidationError, _validation_problem)
    app.add_exception_handler(psycopg.OperationalError, _database_problem)
    app.add_exception_handler(PoolTimeout, _database_problem)
    app.add_exception_handler(Exception, _server_problem)
    metrics = ApiMetrics()
    app.state.metrics = metrics
    app.add_middleware(_Validators)
    app.add_middleware(_Measure, metrics=metrics)
    # Level 5 compresses JSON within 2 % of level 6 in two thirds of the time (a year of
    # 15-minute history, 3.5 MB: 17 ms instead of 25 ms; benchmarks/api.py).
    app.add_middleware(GZipMiddleware, minimum_size=1000, compresslevel=5)
    # CORS (never for admin routes) and, outermost, the security headers (api/_security.py).
    install_security(app, app.state.settings)
