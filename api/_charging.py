"""The charging points' effective state as the API reads it: each point read together with
its bays (rules.sql ``evse_effective``), so a car parked without charging makes it blocked."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from core.charging import PointReading, effective_states_async
from core.city import City

__all__ = ["evse_points"]


async def evse_points(conn: AsyncConnection[Any], cities: Iterable[City],
                      now: datetime) -> dict[str, PointReading]:
    """Every charging point of ``cities`` that has reported, as it stands at ``now``."""
    return await effective_states_async(conn, cities, now)
