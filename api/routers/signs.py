"""Signs: every variable message sign (of every city or one) and what it shows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from psycopg.rows import dict_row

from api._http import cache, problem_responses
from api._models import ShownLine, Sign, SignLine, SignList
from api.deps import Now, ReadConn, SelectedCities
from core.city import City
from core.city import Sign as SignConfig
from core.db import queries

__all__ = ["router"]

LIVE_MAX_AGE = 10

router = APIRouter(prefix="/v1/signs", tags=["signs"], responses=problem_responses(304, 422, 503))


@router.get("", operation_id="listSigns", response_model=SignList,
            summary="Every sign with what it shows",
            description="Each sign's configured lines and what it last confirmed showing "
            "(acknowledged by the sign). Signs are few per city, so the list is not paged.")
async def list_signs(conn: ReadConn, cities: SelectedCities, now: Now) -> Response:
    """Every sign (of every city or the one asked for), ordered by id."""
    health: dict[str, dict[str, Any]] = {}
    async with conn.cursor(row_factory=dict_row) as cur:
        # The signage service's own read of sign health: one definition of what a sign shows.
        for city in cities:
            await cur.execute(queries("signage")["sign_health"], {"city": city.id})
            health.update((row["sign_id"], row) for row in await cur.fetchall())
    signs = [_sign(city, config, health.get(config.id, {}), now) for city, config in
             sorted(((city, sign) for city in cities for sign in city.signs),
                    key=lambda entry: entry[1].id)]
    response = JSONResponse(SignList(signs=signs).model_dump(mode="json"))
    cache(response, max_age=LIVE_MAX_AGE, last_modified=max(
        (row["updated"] for row in health.values() if row["updated"] is not None),
        default=None))
    return response


def _sign(city: City, config: SignConfig, row: dict[str, Any], now: datetime) -> Sign:
    content = row.get("content")
    last_ack: datetime | None = row.get("last_ack")
    return Sign(
        id=config.id, city=city.id, name=config.name, road=config.road, latitude=config.latitude,
        longitude=config.longitude,
        lines=[SignLine(label=line.label, arrow=line.arrow, lots=list(line.lots))
               for line in config.lines],
        showing=None if content is None else [
            ShownLine(label=str(line["label"]), arrow=line["arrow"], text=str(line["text"]))
            for line in content["lines"]],
        shown_since=row.get("shown_since"), last_ack=last_ack,
        # Past its stale limit without a push a sign falls back by itself (comm loss).
        stale=last_ack is None or now - last_ack > timedelta(seconds=config.stale_after_s),
        consecutive_failures=row.get("consecutive_failures") or 0)
