"""Bulk export: the occupancy history of many lots as one streamed CSV file."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool
from pydantic import Field

from api._history import Resolution, To, from_query, history_range, newest_data, query_name
from api._http import bad_parameter, cache, etag_matches, problem_responses
from api._input import Moment
from api.deps import Now, ReadPoolDep, SelectedCities
from core.city import ID_PATTERN
from core.db import queries

__all__ = ["router"]

CSV_MEDIA_TYPE = "text/csv"
HEADER = ("lot_id", "time", "occupied", "free", "free_min", "capacity", "samples")
CHUNK_BYTES = 64 * 1024
MAX_AGE = 60
CLOSED_MAX_AGE = 3600

router = APIRouter(tags=["export"], responses=problem_responses(304, 422, 503))


class CsvResponse(StreamingResponse):
    """A streamed ``text/csv`` body."""

    media_type = CSV_MEDIA_TYPE


@router.get(
    "/v1/export.csv", operation_id="exportHistoryCsv", response_class=CsvResponse,
    summary="Occupancy history of many lots as CSV",
    responses={200: {"description": "RFC 4180 CSV with a header row: lot_id, time "
                     "(RFC 3339 UTC, bucket start), occupied, free (means over the bucket), "
                     "free_min, capacity, samples; ordered by lot_id and time",
                     "content": {CSV_MEDIA_TYPE: {"schema": {"type": "string"}}}}},
    description="Buckets of `resolution` (`raw`: every stored reading) starting in [`from`, "
    "`to`), for the lots named by `lot` (repeatable; default all). Defaults: the last 7 days "
    "at 1h. At most 400 days (3660 at 1d). Streamed; the ETag fingerprints the "
    "selection (buckets, newest bucket, readings), so a repeated request with If-None-Match "
    "answers 304 while nothing was added.")
async def export_csv(
    request: Request, pool: ReadPoolDep, cities: SelectedCities, now: Now,
    from_: Annotated[Moment | None, from_query("7 days")] = None, to: To = None,
    resolution: Annotated[Resolution, Query()] = "1h",
    lot: Annotated[list[Annotated[str, Field(pattern=ID_PATTERN)]] | None, Query(
        description="Lot ids (default: all).")] = None,
) -> Response:
    """The selected history as CSV, streamed from the database."""
    city_of = {candidate.id: city for city in cities for candidate in city.lots}
    if lot:
        unknown = sorted(set(lot) - set(city_of))
        if unknown:
            bad_parameter("lot", f"no such lot: {', '.join(unknown[:5])}")
    lot_ids = sorted(set(lot)) if lot else sorted(city_of)
    chosen = {city_of[lot_id].id: city_of[lot_id] for lot_id in lot_ids}
    timezones = {city.city.timezone for city in chosen.values()}
    if len(timezones) > 1:  # local days and the range's alignment need one timezone
        bad_parameter("city", "the lots' cities lie in different timezones "
                      f"({', '.join(sorted(timezones))}); export one city at a time")
    [timezone] = timezones
    start, end = history_range(from_, to, resolution, now=now, default=timedelta(days=7),
                               tz=ZoneInfo(timezone))
    params = {"lot_ids": lot_ids, "from": start, "to": end, "tz": timezone}
    query = queries("api")[query_name(resolution)].rstrip().rstrip(";")
    # Streamed, so the body cannot be hashed: history is insert-only, and buckets, the newest
    # bucket and the readings they hold change with every row added to the selection.
    fingerprint = sql.SQL(queries("api", "history")["export_fingerprint"])
    async with pool.connection() as conn:
        cursor = await conn.execute(fingerprint.format(selection=sql.SQL(query)), params)
        buckets, newest, readings = await cursor.fetchone() or (0, None, 0)
    digest = hashlib.sha256(repr((lot_ids, start, end, resolution, buckets, newest,
                                  readings)).encode()).hexdigest()[:32]
    etag = f'W/"{digest}"'
    closed = end < now - timedelta(hours=1)
    headers = {"ETag": etag, "Content-Disposition":
               f'attachment; filename="parkleit-{"-".join(chosen)}-{resolution}.csv"'}
    if etag_matches(request.headers.get("if-none-match"), etag):
        response: Response = Response(status_code=304, headers={"ETag": etag})
    else:
        response = CsvResponse(_rows(pool, query, params), headers=headers)
    cache(response, max_age=CLOSED_MAX_AGE if closed else MAX_AGE,
          last_modified=newest_data(newest, resolution, now))
    return response


async def _rows(pool: AsyncConnectionPool[AsyncConnection[Any]], query: str,
                params: dict[str, Any]) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    async with pool.connection() as conn, conn.cursor() as cur:
        async for lot_id, moment, occupied, free, free_min, capacity, samples in cur.stream(
                query, params, size=2000):
            writer.writerow((lot_id, moment.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                             _number(occupied), _number(free), free_min, capacity, samples))
            if buffer.tell() >= CHUNK_BYTES:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


def _number(value: float) -> str:
    # The means are rounded to hundredths in SQL; whole numbers without a trailing .0.
    return str(int(value)) if float(value).is_integer() else repr(value)
