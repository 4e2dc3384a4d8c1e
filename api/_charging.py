"""The charging points' current state as the API reads it (table ``evse_state``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from psycopg import AsyncConnection

from core.charging import EvseState, EvseStatus
from core.city import City
from core.db import queries

__all__ = ["evse_states"]


async def evse_states(conn: AsyncConnection[Any], cities: Iterable[City]) -> dict[str, EvseState]:
    """The state of every charging point of ``cities`` that has one, by EVSE id."""
    evse_ids = [evse.evse_id for city in cities for _, evse in city.evses()]
    if not evse_ids:
        return {}
    async with conn.cursor() as cur:
        await cur.execute(queries("api")["evse_states"], {"evse_ids": evse_ids})
        return {row[0]: EvseState(row[0], EvseStatus(row[1]), row[2], row[3], row[4])
                for row in await cur.fetchall()}
