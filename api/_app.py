"""The FastAPI application factory; the lifespan owns the connection pool."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

import api.routers
from api._http import RATE_LIMITED, install_http
from api._limits import RequestLimits
from api._ratelimit import RateLimit, TokenBuckets
from core.city import Cities, City, load_cities
from core.settings import Settings, get_settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None, cities: Cities | City | None = None) -> FastAPI:
    """The API for ``settings`` (default: the process's) and its cities (default: the
    configs of ``settings.city_refs``)."""
    settings = settings or get_settings()
    if cities is None:
        cities = load_cities(settings.city_refs)
    elif isinstance(cities, City):
        cities = Cities([cities])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
            settings.DATABASE_URL, min_size=1, max_size=10, open=False,
            kwargs={"autocommit": True, "connect_timeout": 5}, name="parkleit-api")
        await pool.open(wait=True, timeout=10)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(title=f"parkleit – {', '.join(city.city.name for city in cities)}",
                  version="1",
                  description="Open parking data: live occupancy, forecasts, signs, DATEX II.",
                  lifespan=lifespan, responses=RATE_LIMITED,
                  docs_url=None, redoc_url=None)  # /docs: api/routers/docs.py
    app.state.settings = settings
    app.state.cities = cities
    # Added first, so innermost: a 429 still gets CORS headers and is counted in the metrics.
    app.add_middleware(RateLimit, buckets=TokenBuckets(settings.API_RATE_PER_IP,
                                                       settings.API_BURST_PER_IP))
    # Outside the rate limit, inside the metrics and headers: an oversized or slow request is
    # refused (and counted) before a route, a key check or a body parser runs.
    app.add_middleware(RequestLimits, max_head_bytes=settings.API_MAX_HEADER_BYTES,
                       max_body_bytes=settings.API_MAX_BODY_BYTES,
                       body_timeout_s=settings.API_BODY_TIMEOUT_S)
    install_http(app)
    for module in pkgutil.iter_modules(api.routers.__path__):
        router = getattr(importlib.import_module(f"api.routers.{module.name}"), "router", None)
        if router is not None:
            app.include_router(router)
    return app
