"""Rate limits: token buckets per client IP (every request) and per API key (admin writes).

The buckets live in the process (``TokenBuckets``), or, with ``PARKLEIT_API_RATE_LIMIT_URL``
set, in Redis (``SharedTokenBuckets``), shared by every API process: behind N processes a
client gets the configured rate, not N times it. Why Redis and not PostgreSQL: every request
takes a token, thousands a second, and a token is a read-modify-write of one small key with a
time to live - one round trip to Redis (an atomic script), where PostgreSQL would write a row
(and WAL) per request on the database the city's data lives in.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from typing import Any

import redis.asyncio as aioredis
from fastapi import Request
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Receive, Scope, Send

from api._http import HttpMiddleware, problem

__all__ = ["RateLimit", "SharedTokenBuckets", "TokenBuckets", "buckets", "client_address",
           "retry_after"]

logger = logging.getLogger(__name__)

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

    async def take(self, name: str) -> float:
        """Take a token of bucket ``name``: 0.0 if there was one, else seconds until one is."""
        return self.take_now(name)

    async def close(self) -> None:
        """Nothing to close (the buckets are in memory)."""

    def take_now(self, name: str, now: float | None = None) -> float:
        """``take`` at ``now`` (monotonic seconds)."""
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


# One bucket's token taken atomically, at the Redis server's clock (the same for every API
# process): KEYS[1] the bucket, ARGV rate and burst; returns the wait in seconds (0: taken).
_TAKE = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(held[1]) or burst, tonumber(held[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class SharedTokenBuckets(TokenBuckets):
    """``TokenBuckets`` kept in Redis, shared by every API process. Should Redis be away, the
    process's own buckets count meanwhile (a limit per process rather than none), and a warning
    is logged once per outage."""

    def __init__(self, url: str, prefix: str, rate: float, burst: int) -> None:
        super().__init__(rate, burst)
        self.prefix = prefix
        self._redis: Any = aioredis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._script = self._redis.register_script(_TAKE)
        self._away = False

    async def take(self, name: str) -> float:
        if self.rate <= 0:
            return 0.0
        try:
            wait = float(await self._script(keys=[f"{self.prefix}{name}"],
                                            args=[self.rate, self.burst]))
        except (RedisError, OSError) as exc:
            if not self._away:
                logger.warning("rate limits: Redis unavailable (%s); counting in this process "
                               "until it is back", type(exc).__name__)
                self._away = True
            return self.take_now(name)
        if self._away:
            logger.info("rate limits: Redis is back; counting across the processes again")
            self._away = False
        return wait

    async def close(self) -> None:
        await self._redis.aclose()


def buckets(url: str, kind: str, rate: float, burst: int) -> TokenBuckets:
    """The buckets of ``kind`` (``ip``, ``key``, ``login``): shared in Redis at ``url``, or in
    the process without one."""
    if not url:
        return TokenBuckets(rate, burst)
    return SharedTokenBuckets(url, f"parkleit:rate:{kind}:", rate, burst)


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
        wait = await self.buckets.take(client_address(scope))
        if not wait:
            await self.app(scope, receive, send)
            return
        response = problem(429, f"too many requests from this address; at most "
                           f"{self.buckets.rate:g} per second (bursts of {self.buckets.burst})",
                           Request(scope), headers={"Retry-After": retry_after(wait)})
        await response(scope, receive, send)
