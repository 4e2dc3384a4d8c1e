"""Simulated ``http`` sign controllers: the contract of ``signage/_http_driver.py`` on a port.

One ``HttpSignSimulator`` listens on ``host:port`` and serves one sign per URL path (a
controller may drive several signs). ``POST {path}`` takes content and answers with the
acknowledgement (``_json_sign.JsonSignModel`` has the rules); ``GET {path}`` answers
``{"shown": [...]}``. A paused sign keeps its requests unanswered: the central times out.
``stop()`` also cuts the open keep-alive connections, as a controller that goes down does.

It is the standard library's threaded HTTP/1.1 server in a thread of its own: nothing to add
for a test tool, and a blocked (paused) request holds only its own connection's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from simulators._json_sign import JsonSignModel

__all__ = ["HttpSignSimulator"]

logger = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], signs: dict[str, JsonSignModel]) -> None:
        self.signs = signs
        self.stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer's own looks the host name up in DNS, which can take seconds.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("HTTP sign request from %s failed", client_address, exc_info=True)

    def cut_connections(self) -> None:
        with self._open_lock:
            for connection in self._open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the driver reuses connections
    server: _Server

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._answer(411, {"ok": False, "reason": "Content-Length needed"})
            self.close_connection = True
            return
        if not 0 <= length <= MAX_BODY:
            self._answer(413, {"ok": False, "reason": f"more than {MAX_BODY} bytes"})
            self.close_connection = True  # the body is left unread
            return
        body = self.rfile.read(length)
        model = self._model()
        if model is not None and not self._unanswered(model):
            self._answer(*model.take(body))

    def do_GET(self) -> None:
        model = self._model()
        if model is not None and not self._unanswered(model):
            self._answer(200, {"shown": list(model.shown())})

    def _model(self) -> JsonSignModel | None:
        model = self.server.signs.get(urlsplit(self.path).path)
        if model is None:
            self._answer(404, {"ok": False, "reason": f"no sign at {self.path}"})
        return model

    def _unanswered(self, model: JsonSignModel) -> bool:
        """Whether a paused sign swallows the request: held until it resumes, then dropped."""
        if not model.paused:
            return False
        while model.paused and not self.server.stopping.wait(0.05):
            pass
        self.close_connection = True
        return True

    def _answer(self, status: int, answer: dict[str, Any]) -> None:
        body = json.dumps(answer, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


class HttpSignSimulator:
    """Simulated sign controllers on ``host:port`` (0: any free port), one sign per path."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.signs: dict[str, JsonSignModel] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def add(self, path: str, model: JsonSignModel) -> None:
        """Serve ``model`` at ``path`` (before ``start``)."""
        self.signs[path] = model

    def address(self, path: str) -> str:
        """The address of the sign at ``path`` as a city config writes it."""
        return f"http://{self.host}:{self.port}{path}"

    async def start(self) -> None:
        """Listen on the port."""
        server = _Server((self.host, self.port), self.signs)
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={
            "poll_interval": 0.05}, name=f"http-signs-{self.port}", daemon=True)
        self._thread.start()
        self._server = server
        logger.info("HTTP signs %s listen on http://%s:%d", ", ".join(
            model.name for model in self.signs.values()), self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and cut open connections; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        server.cut_connections()
        self._thread = None
