"""Rate limits: token buckets per client IP (every request) and per API key (admin writes)."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api._http import HttpMiddleware, problem

__all__ = ["RateLimit", "TokenBuckets", "client_address", "retry_after"]

MAX_BUCKETS = 100_000


class TokenBuckets:
    """Token buckets by name, all of one rate and size; thread-safe.

    A bucket holds up to ``burst`` tokens and refills at ``rate`` per second; a request takes one
    token or is answered 429 with ``Retry-After`` (the seconds until a token is there) and a problem
    body. The buckets live in the process: behind N API processes a client may make N times the
    configured rate (the database is not asked on every request for a shared count). At most
    ``MAX_BUCKETS`` are kept; the least recently used goes first, and a client whose bucket went
    starts again with a full one. The client IP is the one the server saw: behind a reverse proxy
    set ``PARKLEIT_API_FORWARDED_ALLOW_IPS`` to the proxy's address, so that it is the client's
    (from ``X-Forwarded-For``), not the proxy's.
    """

    def __init__(self, rate: float, burst: int, max_buckets: int = MAX_BUCKETS) -> None:
        self.rate, self.burst, self.max_buckets = rate, burst, max_buckets
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, name: str, now: float | None = None) -> float:
        """Take a token of bucket ``name``: 0.0 if there was one, else seconds until one is."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, then = self._buckets.pop(name, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            self._buckets[name] = (tokens - 1 if not wait else tokens, now)
            while len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
        return wait


def client_address(scope: Scope) -> str:
    """The client IP of a request as the server saw it (``API_FORWARDED_ALLOW_IPS``)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def retry_after(wait: float) -> str:
    """The ``Retry-After`` value (whole seconds, at least 1) for a wait in seconds."""
    return str(max(1, math.ceil(wait)))


class RateLimit(HttpMiddleware):
    """ASGI middleware: one token of the client IP's bucket per HTTP request, or a 429."""

    def __init__(self, app: ASGIApp, buckets: TokenBuckets) -> None:
        super().__init__(app)
        self.buckets = buckets

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        wait = self.buckets.take(client_address(scope))
        if not wait:
            await self.app(scope, receive, send)
            return
        response = problem(429, f"too many requests from this address; at most "
                           f"{self.buckets.rate:g} per second (bursts of {self.buckets.burst})",
                           Request(scope), headers={"Retry-After": retry_after(wait)})
        await response(scope, receive, send)
