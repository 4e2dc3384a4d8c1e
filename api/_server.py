"""The HTTP server of ``parkleit api``: uvicorn, ending the live streams when it drains, and
reading no request head beyond the app's bounds."""

from __future__ import annotations

import asyncio
import socket
from http import HTTPStatus
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from api._http import PROBLEM_MEDIA_TYPE, Problem
from api._security import ERROR_HEADERS
from core.settings import Settings

__all__ = ["ApiServer", "http_protocol"]


class ApiServer(uvicorn.Server):
    """uvicorn's server for ``app``, which ends every event stream as it starts shutting down.

    On SIGTERM uvicorn stops accepting connections, waits up to ``timeout_graceful_shutdown``
    for the open ones to finish and only then runs the lifespan shutdown. An event stream
    never finishes by itself, so one open ``/v1/stream`` would hold every stop for the whole
    timeout; ending the streams first lets them finish like any other response (the clients
    reconnect after their ``retry`` hint, to another process or to the restarted one).
    """

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """End the streams, then drain as uvicorn does."""
        hub = getattr(self.app.state, "hub", None)  # None if the lifespan never started
        if hub is not None:
            hub.end_streams()
        await super().shutdown(sockets)


class _BoundedHead(HttpToolsProtocol):
    """uvicorn's httptools protocol, which stops reading a request head at ``max_head_bytes``
    (414 or 431) and at ``head_timeout_s`` after a connection opens or a request begins (408;
    a connection that sent nothing is closed without an answer).

    httptools bounds neither (uvicorn's ``h11_max_incomplete_event_size`` is h11's alone): a
    50 MiB header was buffered whole and stalled every other request, and a client sending a
    byte now and then held its connection for ever. The app refuses the same bounds exactly
    (``api._limits``); this is the guard that keeps a head from being buffered at all, so it
    errs towards letting a head through: the bytes a request shares a read with the previous
    one are not counted.
    """

    max_head_bytes = 16_384
    head_timeout_s = 10.0

    def __init__(self, config: uvicorn.Config, server_state: ServerState,
                 app_state: dict[str, Any], _loop: asyncio.AbstractEventLoop | None = None
                 ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_bytes: int | None = 0  # None: not reading a head
        self._began = False
        self._read = 0
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._read = len(data)
        super().data_received(data)
        if self._head_bytes is None or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > self.max_head_bytes:
            target = len(getattr(self, "url", b""))
            if target > self.max_head_bytes:
                self._refuse(414, f"the request target is over {self.max_head_bytes} bytes")
            else:
                self._refuse(431, f"the request line and header fields are over "
                             f"{self.max_head_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._began = True
        if self._head_bytes is None:  # a request after another: count the reads after this
            self._head_bytes = -self._read
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timeout)

    def on_headers_complete(self) -> None:
        self._head_bytes, self._began = None, False
        self._stop_head_timer()
        super().on_headers_complete()

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self._head_bytes is None or self.transport.is_closing():
            return
        if self._began:
            self._refuse(408, f"the request head did not arrive within {self.head_timeout_s:g} s")
        else:
            self.transport.close()

    def _refuse(self, status: int, detail: str) -> None:
        """Answer a problem document and close: the rest of the request is never read."""
        phrase = HTTPStatus(status).phrase
        body = Problem(title=phrase, status=status, detail=detail).model_dump_json(
            exclude_none=True).encode()
        headers = [*self.server_state.default_headers,
                   (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                   (b"content-length", str(len(body)).encode()),
                   (b"cache-control", b"no-store"), (b"connection", b"close"),
                   *((name.lower().encode(), value.encode())
                     for name, value in ERROR_HEADERS.items())]
        head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        self.transport.write(f"HTTP/1.1 {status} {phrase}\r\n".encode() + head + b"\r\n" + body)
        self.transport.close()
        self._stop_head_timer()


def http_protocol(settings: Settings) -> type[asyncio.Protocol]:
    """The HTTP protocol of ``parkleit api``: httptools bounded as the app is (``settings``'
    ``API_MAX_HEADER_BYTES`` and ``API_HEADER_TIMEOUT_S``)."""
    return type("BoundedHttpTools", (_BoundedHead,), {
        "max_head_bytes": settings.API_MAX_HEADER_BYTES,
        "head_timeout_s": settings.API_HEADER_TIMEOUT_S})
