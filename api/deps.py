"""Dependencies of the routes: the connection pool, the city, the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from core.city import City
from core.settings import Settings

__all__ = ["CityDep", "Conn", "PoolDep", "SettingsDep"]


# The dependencies are coroutines though they wait for nothing: FastAPI runs a plain function
# dependency in its thread pool, a thread hand-off on every request.


async def _pool(request: Request) -> AsyncConnectionPool[AsyncConnection[Any]]:
    pool: AsyncConnectionPool[AsyncConnection[Any]] = request.app.state.pool
    return pool


async def _connection(request: Request) -> AsyncIterator[AsyncConnection[Any]]:
    """One pooled autocommit connection for the request."""
    async with (await _pool(request)).connection() as conn:
        yield conn


async def _city(request: Request) -> City:
    city: City = request.app.state.city
    return city


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


PoolDep = Annotated[AsyncConnectionPool[AsyncConnection[Any]], Depends(_pool)]
Conn = Annotated[AsyncConnection[Any], Depends(_connection)]
CityDep = Annotated[City, Depends(_city)]
SettingsDep = Annotated[Settings, Depends(_settings)]
