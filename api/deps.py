"""Dependencies of the routes: the connection pool, the cities, the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from api._http import bad_parameter
from api._snapshot import LotViews
from core.city import ID_PATTERN, Cities, City
from core.settings import Settings

__all__ = ["CitiesDep", "CityDep", "Conn", "Now", "PoolDep", "ReadConn", "ReadPoolDep",
           "SelectedCities", "SettingsDep", "Views"]


# The dependencies are coroutines though they wait for nothing: FastAPI runs a plain function
# dependency in its thread pool, a thread hand-off on every request.


_Pool = AsyncConnectionPool[AsyncConnection[Any]]


def _pooled(name: str) -> tuple[Callable[[Request], Awaitable[_Pool]],
                                Callable[[Request], AsyncIterator[AsyncConnection[Any]]]]:
    """The dependencies of the pool ``app.state.<name>``: the pool, and one pooled autocommit
    connection of it for the request."""
    async def pool(request: Request) -> _Pool:
        found: _Pool = getattr(request.app.state, name)
        return found

    async def connection(request: Request) -> AsyncIterator[AsyncConnection[Any]]:
        async with (await pool(request)).connection() as conn:
            yield conn

    return pool, connection


# The primary (DATABASE_URL): writes, LISTEN, the lots' live views.
_pool, _connection = _pooled("pool")
# Read-only queries, on DATABASE_READ_URL (a replica) where set: they may lag the primary by
# the replica's delay (history, export, ...).
_read_pool, _read_connection = _pooled("read_pool")


async def _cities(request: Request) -> Cities:
    """Every city of the installation (``app.state.cities``; an admin reload swaps it)."""
    cities: Cities = request.app.state.cities
    return cities


CitiesDep = Annotated[Cities, Depends(_cities)]


def _named(cities: Cities, city_id: str) -> City:
    city = cities.get(city_id)
    if city is None:
        bad_parameter("city", f"no city {city_id!r} here; there are: "
                      f"{', '.join(c.id for c in cities)}")
    return city


async def _selected(cities: CitiesDep, city: Annotated[str | None, Query(
        pattern=ID_PATTERN, description="Only this city's (its id); none: every city's.")
] = None) -> tuple[City, ...]:
    return cities.all if city is None else (_named(cities, city),)


async def _one(cities: CitiesDep, city: Annotated[str | None, Query(
        pattern=ID_PATTERN, description="The city (its id); none: the installation's first.")
] = None) -> City:
    return cities.all[0] if city is None else _named(cities, city)


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _now(request: Request) -> datetime:
    """The moment of the request by the process's clock (``Settings.clock``)."""
    settings: Settings = request.app.state.settings
    return settings.clock.now()


async def _views(request: Request) -> LotViews:
    """The lots' views of this process (held by the live stream's hub)."""
    views: LotViews = request.app.state.hub.views
    return views


PoolDep = Annotated[_Pool, Depends(_pool)]
Conn = Annotated[AsyncConnection[Any], Depends(_connection)]
ReadPoolDep = Annotated[_Pool, Depends(_read_pool)]
ReadConn = Annotated[AsyncConnection[Any], Depends(_read_connection)]
# The cities a list covers (``?city=``: one; none: all) and the one city of a city-wide view.
SelectedCities = Annotated[tuple[City, ...], Depends(_selected)]
CityDep = Annotated[City, Depends(_one)]
SettingsDep = Annotated[Settings, Depends(_settings)]
Now = Annotated[datetime, Depends(_now)]
Views = Annotated[LotViews, Depends(_views)]
