"""Request limits on a request's head and body, refused (a problem document with
``Connection: close``) before any route, authentication or parser sees the request.
"""

from __future__ import annotations

import asyncio

from fastapi import Request
from starlette.datastructures import Headers
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api._http import HttpMiddleware, problem

__all__ = ["BODY_METHODS", "RequestLimits", "head_bytes"]

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _routed(scope: Scope) -> bool:
    """Whether a route of the app takes the request's method on its path."""
    if "content-length" not in (headers := Headers(scope=scope)) and (
            "transfer-encoding" not in headers):
        return True  # no body: nothing to decide (and no routes walked on every GET)
    return any(route.matches(scope)[0] == Match.FULL for route in scope["app"].router.routes)


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class _Gone(Exception):
    """The client left while sending its body: there is no one to answer."""


def head_bytes(scope: Scope) -> tuple[int, int]:
    """The request target's length and the request head's (request line and header fields
    as a client writes them: ``Name: value`` lines ending in CRLF), in bytes."""
    query = scope.get("query_string", b"")
    path = scope.get("raw_path") or scope["path"].encode()
    target = len(path) + (len(query) + 1 if query else 0)
    line = len(scope["method"]) + 1 + target + len(" HTTP/1.1\r\n")
    fields = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
    return target, line + fields + 2


class RequestLimits(HttpMiddleware):
    """ASGI middleware: the limits on a request's head and body.

    - **Head**: the request line and header fields, counted as sent (``Name: value`` and CRLF), at
      most ``API_MAX_HEADER_BYTES``: a longer target is a 414, longer header fields a 431.
      ``parkleit api``'s server stops reading a head at the same bound (``api._server``), so an
      endless one is never buffered; this middleware refuses what a server let through.
    - **Body**: requests whose method takes a body (POST, PUT, PATCH) may send at most
      ``API_MAX_BODY_BYTES``; every other method none (a GET with a body is a 413), except where no
      route takes the method on that path: that is the router's 405, its body unread. A declared
      ``Content-Length`` above the bound is refused before a byte of the body is read; a chunked
      body is read only up to it. The body is read here, whole, before the route runs, and must
      arrive within ``API_BODY_TIMEOUT_S`` (408 otherwise: a client trickling bytes holds no
      connection for long).

    Refusals are problem documents with ``Connection: close``: the rest of what the client sends is
    never read.
    """

    def __init__(self, app: ASGIApp, *, max_head_bytes: int, max_body_bytes: int,
                 body_timeout_s: float) -> None:
        super().__init__(app)
        self.max_head, self.max_body = max_head_bytes, max_body_bytes
        self.body_timeout = body_timeout_s

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self._check_head(scope)
            if scope["method"] not in BODY_METHODS and not _routed(scope):
                # No route takes this method on this path: the router's 405 (or 404) it is,
                # and the body, if any, is never read.
                await self.app(scope, receive, send)
                return
            limit = self.max_body if scope["method"] in BODY_METHODS else 0
            body = await self._body(scope, receive, limit)
        except _Refused as refused:
            response = problem(refused.status, refused.detail, Request(scope),
                               headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        except _Gone:
            return
        if body is None:
            await self.app(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # the disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _check_head(self, scope: Scope) -> None:
        target, head = head_bytes(scope)
        if target > self.max_head:
            raise _Refused(414, f"the request target is {target} bytes; at most "
                           f"{self.max_head} are read")
        if head > self.max_head:
            raise _Refused(431, f"the request line and header fields are {head} bytes; at "
                           f"most {self.max_head} are read")

    async def _body(self, scope: Scope, receive: Receive, limit: int) -> bytes | None:
        """The whole body, or None when the request has none; refused above ``limit`` bytes
        or when it takes longer than the timeout."""
        headers = Headers(scope=scope)
        if "content-length" not in headers and "transfer-encoding" not in headers:
            return None
        try:
            declared = int(headers.get("content-length", ""))
        except ValueError:  # chunked (a server refuses a malformed length itself)
            declared = None
        if declared == 0:
            return None
        if declared is not None and declared > limit:
            raise _Refused(413, self._too_large(scope, limit))
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _Gone
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise _Refused(413, self._too_large(scope, limit))
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise _Refused(408, f"the body did not arrive within {self.body_timeout:g} s "
                           f"({size} bytes came)") from None

    @staticmethod
    def _too_large(scope: Scope, limit: int) -> str:
        if limit == 0:
            return f"a {scope['method']} request takes no body"
        return f"the body may be at most {limit} bytes"
