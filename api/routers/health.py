"""Operations: the health check (is the database there) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg.rows import dict_row

from api._http import ApiMetrics, problem_responses
from api._models import Health
from api._statemetrics import CityGauges, stream_metrics
from api.deps import CitiesDep, Now, PoolDep
from core.db import queries

__all__ = ["router"]

HEALTH_TIMEOUT_S = 3.0

router = APIRouter(tags=["operations"])


@router.get("/healthz", operation_id="getHealth", response_model=Health,
            summary="Health: the database answers", responses=problem_responses(503))
async def healthz(pool: PoolDep) -> Response:
    """200 when the database answers within a few seconds, else a 503 problem."""
    # A connection from the pool within the timeout, or PoolTimeout: a 503 problem.
    async with pool.connection(timeout=HEALTH_TIMEOUT_S) as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(queries("api")["schema_version"])
        row = await cursor.fetchone()
    health = Health(status="ok", database="ok",
                    schema_version=row["version"] if row else None)
    return JSONResponse(health.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


@router.get("/metrics", operation_id="getMetrics", summary="Prometheus metrics",
            response_class=Response,
            responses={200: {"description": "Prometheus text exposition format",
                             "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}})
async def metrics(request: Request) -> Response:
    """Request counts and latency per route, and the live stream, of this process."""
    registry: ApiMetrics = request.app.state.metrics
    body = generate_latest(registry.registry) + stream_metrics(request.app.state)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


@router.get("/metrics/city", operation_id="getCityMetrics",
            summary="Prometheus gauges of every city's state (the same on every replica)",
            response_class=Response,
            responses={200: {"description": "Prometheus text exposition format",
                             "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
                       **problem_responses(503)})
async def city_metrics(request: Request, pool: PoolDep, cities: CitiesDep,
                       now: Now) -> Response:
    """Age of each lot's newest reading, newest forecast and model, published forecast
    error, each sign's last confirmation, the open alarms by kind and severity; read from the
    database, cached 10 s."""
    gauges: CityGauges = request.app.state.city_gauges
    body = await gauges.render(pool, cities, now)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
