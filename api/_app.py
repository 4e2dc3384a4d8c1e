"""The FastAPI application factory: the routers (``api.routers.ROUTERS``), the middleware and
the one lifespan that opens and closes everything the app holds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from api._http import RATE_LIMITED, install_http
from api._hub import Hub
from api._keys import KeyStore
from api._limits import RequestLimits
from api._ratelimit import RateLimit, buckets
from api._snapshot import SeesOwnWrites
from api._statemetrics import CityGauges
from api.routers import ROUTERS
from api.routers.lots import LotsFastPath
from api.routers.stream import StreamSend
from core.city import Cities, City, load_cities
from core.settings import Settings, get_settings

__all__ = ["create_app"]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """What the app holds, in ``app.state``: opened in order, closed in reverse.

    The API keys (a bad file stops the start), the admin rate limit and the console's login
    limit (their Redis connections, and the per-address limit's, are closed here); the
    connection pool (and the read pool, where ``DATABASE_READ_URL`` names another database);
    the city gauges' cache; the live stream's hub (LISTEN, and the lots'
    views it keeps current), which needs the pool. ``settings``, ``cities`` and ``metrics`` are
    set by ``create_app``: the middleware needs them before the lifespan runs.
    """
    settings: Settings = app.state.settings
    async with AsyncExitStack() as stack:
        app.state.api_keys = KeyStore(settings.API_KEYS_FILE)
        shared = settings.API_RATE_LIMIT_URL
        app.state.key_buckets = buckets(shared, "key", settings.API_RATE_PER_KEY,
                                        settings.API_BURST_PER_KEY)
        app.state.console_logins = buckets(shared, "login", settings.CONSOLE_LOGIN_RATE,
                                           settings.CONSOLE_LOGIN_BURST)
        for limit in (app.state.ip_buckets, app.state.key_buckets, app.state.console_logins):
            stack.push_async_callback(limit.close)
        pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
            settings.DATABASE_URL, min_size=1, max_size=10, open=False,
            kwargs={"autocommit": True, "connect_timeout": 5}, name="parkleit-api")
        await pool.open(wait=True, timeout=10)
        stack.push_async_callback(pool.close)
        app.state.pool = app.state.read_pool = pool
        if settings.read_database_url != settings.DATABASE_URL:
            # The read-only queries' own pool (a streaming replica): what the primary's
            # NOTIFY invalidates (the lots' views, the stream) stays on the primary, so a
            # replica's lag never caches a state older than the notification.
            read_pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
                settings.read_database_url, min_size=1, max_size=10, open=False,
                kwargs={"autocommit": True, "connect_timeout": 5}, name="parkleit-api-read")
            await read_pool.open(wait=True, timeout=10)
            stack.push_async_callback(read_pool.close)
            app.state.read_pool = read_pool
        app.state.city_gauges = CityGauges()
        hub = Hub(settings, app.state, pool)
        app.state.hub = hub
        hub.start()
        stack.push_async_callback(hub.stop)
        yield


def create_app(settings: Settings | None = None, cities: Cities | City | None = None) -> FastAPI:
    """The API for ``settings`` (default: the process's) and its cities (default: the
    configs of ``settings.city_refs``)."""
    settings = settings or get_settings()
    if cities is None:
        cities = load_cities(settings.city_refs)
    elif isinstance(cities, City):
        cities = Cities([cities])
    app = FastAPI(title=f"parkleit – {', '.join(city.city.name for city in cities)}",
                  version="1",
                  description="Open parking data: live occupancy, forecasts, signs, DATEX II.",
                  lifespan=_lifespan, responses=RATE_LIMITED,
                  docs_url=None, redoc_url=None)  # /docs: api/routers/docs.py
    app.state.settings = settings
    app.state.cities = cities
    # Innermost: the lot list from the snapshot, inside every check and header.
    app.add_middleware(LotsFastPath)
    app.add_middleware(SeesOwnWrites)
    # Then the rate limit: a 429 still gets CORS headers and is counted in the metrics.
    app.state.ip_buckets = buckets(settings.API_RATE_LIMIT_URL, "ip", settings.API_RATE_PER_IP,
                                   settings.API_BURST_PER_IP)
    app.add_middleware(RateLimit, buckets=app.state.ip_buckets)
    # Outside the rate limit, inside the metrics and headers: an oversized or slow request is
    # refused (and counted) before a route, a key check or a body parser runs.
    app.add_middleware(RequestLimits, max_head_bytes=settings.API_MAX_HEADER_BYTES,
                       max_body_bytes=settings.API_MAX_BODY_BYTES,
                       body_timeout_s=settings.API_BODY_TIMEOUT_S)
    install_http(app)
    app.add_middleware(StreamSend)  # outermost: the stream's frames skip the others
    for router in ROUTERS:
        app.include_router(router)
    return app
