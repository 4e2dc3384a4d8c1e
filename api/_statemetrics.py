"""Prometheus gauges beyond request counts: this process's live stream, and the state of the
city as the database holds it (``CityGauges``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from starlette.datastructures import State

from core.alarms import ALARM_KINDS, SEVERITIES
from core.city import City
from core.db import queries

__all__ = ["CITY_CACHE_S", "CityGauges", "stream_metrics"]

CITY_CACHE_S = 10.0


def _age(seconds: float | None) -> float:
    """An age in seconds; +Inf for never (Prometheus compares it like any number)."""
    return math.inf if seconds is None else max(0.0, seconds)


class _StreamCollector(Collector):
    def __init__(self, state: State) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        hub = getattr(self.state, "hub", None)
        yield GaugeMetricFamily("parkleit_api_stream_clients",
                                "Clients of GET /v1/stream on this process",
                                value=len(hub.subscribers) if hub else 0)
        yield CounterMetricFamily("parkleit_api_stream_dropped",
                                  "Stream clients dropped for falling behind (they reconnect)",
                                  value=hub.dropped if hub else 0)
        yield GaugeMetricFamily("parkleit_api_stream_listening",
                                "1 while this process LISTENs to the database for changes",
                                value=1 if hub is not None and hub.alive and hub.connected else 0)


def stream_metrics(state: State) -> bytes:
    """The live stream's metrics of this process, in the text exposition format."""
    registry = CollectorRegistry()
    registry.register(_StreamCollector(state))
    return generate_latest(registry)


class CityGauges:
    """The city gauges, cached for ``ttl_s``: a scrape storm asks the database once.

    The city gauges (``GET /metrics/city``) are what no single service can report about itself: a
    lot no message has come from, a forecaster that stopped writing forecasts, a sign that has
    confirmed nothing for minutes. They are read from the database when scraped (at most once per
    ``CITY_CACHE_S`` per process), so they are the same whichever API replica answers: scrape them
    once, through the load balancer, not per replica. The forecaster has no metrics port of its own;
    these gauges and its retained ``services/forecast`` topic are its health. The open alarms
    (ingest's evaluator) are counted by kind and severity, every kind and severity present (0
    when none), so a rule can tell "none" from "not scraped".
    """

    def __init__(self, ttl_s: float = CITY_CACHE_S) -> None:
        self.ttl_s = ttl_s
        self._body = b""
        self._at = -math.inf
        self._lock = asyncio.Lock()

    async def render(self, pool: AsyncConnectionPool[AsyncConnection[Any]],
                     cities: Iterable[City], now: datetime) -> bytes:
        """The gauges of ``cities`` at ``now`` in the text exposition format (read again when
        older than the TTL)."""
        async with self._lock:
            if time.monotonic() - self._at >= self.ttl_s:
                async with pool.connection(timeout=5) as conn:
                    self._body = await _read(conn, cities, now)
                self._at = time.monotonic()
            return self._body


async def _rows(conn: AsyncConnection[Any], name: str, city: City,
                now: datetime) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(queries("api", "metrics")[name], {"city": city.id, "now": now})
        return await cur.fetchall()


_LOT, _HORIZON, _SIGN = ("city", "lot"), ("city", "lot", "horizon_min"), ("city", "sign")
_ALARM = ("city", "kind", "severity")

def _gauges(registry: CollectorRegistry) -> dict[str, Gauge]:
    """Every gauge of ``_read`` by its key there. Every gauge carries the city; lot, sign and
    forecast gauges name the lot or sign."""
    return {
        "age": Gauge("parkleit_lot_data_age_seconds",
                     "Seconds since the lot's newest reading (+Inf: none yet)", _LOT,
                     registry=registry),
        "limit": Gauge("parkleit_lot_stale_after_seconds",
                       "The lot's staleness limit: older counts are shown as unknown", _LOT,
                       registry=registry),
        "closed": Gauge("parkleit_lot_closed",
                        "1 while the lot is closed (opening hours, operator)", _LOT,
                        registry=registry),
        "quality": Gauge("parkleit_lot_quality", "The lot's data quality score (0-1)", _LOT,
                         registry=registry),
        "forecast_age": Gauge("parkleit_forecast_age_seconds",
                              "Seconds since the origin of the newest forecast run (+Inf: none)",
                              ("city",), registry=registry),
        "model_age": Gauge("parkleit_forecast_model_age_seconds",
                           "Seconds since the newest model was trained", ("city",),
                           registry=registry),
        "mae": Gauge("parkleit_forecast_mae_spaces",
                     "Published rolling mean absolute error of the forecast, in spaces",
                     _HORIZON, registry=registry),
        "mae_ratio": Gauge("parkleit_forecast_mae_ratio",
                           "Published rolling mean absolute error as a share of capacity",
                           _HORIZON, registry=registry),
        "ack": Gauge("parkleit_sign_ack_age_seconds",
                     "Seconds since the sign last confirmed its content (+Inf: never)", _SIGN,
                     registry=registry),
        "alarms": Gauge("parkleit_alarms_open",
                        "Open alarms (raised, not cleared; acknowledged or not)", _ALARM,
                        registry=registry),
        "unacked": Gauge("parkleit_alarms_unacknowledged",
                         "Open alarms nobody has acknowledged yet", _ALARM, registry=registry),
    }


async def _read(conn: AsyncConnection[Any], cities: Iterable[City], now: datetime) -> bytes:
    """The gauges of ``_gauges`` of ``cities`` at ``now``."""
    registry = CollectorRegistry()
    gauge = _gauges(registry)
    for city in cities:
        for row in await _rows(conn, "lot_freshness", city, now):
            ids = (city.id, row["lot_id"])
            gauge["age"].labels(*ids).set(_age(row["age_s"]))
            gauge["limit"].labels(*ids).set(row["stale_after_s"])
            gauge["closed"].labels(*ids).set(1 if row["status"] == "closed" else 0)
            if row["quality"] is not None:
                gauge["quality"].labels(*ids).set(row["quality"])
        newest = await _rows(conn, "newest_forecast", city, now)
        gauge["forecast_age"].labels(city.id).set(_age(newest[0]["age_s"] if newest else None))
        model = await _rows(conn, "newest_model", city, now)
        gauge["model_age"].labels(city.id).set(_age(model[0]["age_s"] if model else None))
        for row in await _rows(conn, "forecast_accuracy", city, now):
            labels = (city.id, row["lot_id"], str(row["horizon_min"]))
            gauge["mae"].labels(*labels).set(row["mae"])
            if row["mae_rate"] is not None:
                gauge["mae_ratio"].labels(*labels).set(row["mae_rate"])
        for row in await _rows(conn, "sign_acks", city, now):
            gauge["ack"].labels(city.id, row["sign_id"]).set(_age(row["ack_age_s"]))
        for kind in ALARM_KINDS:
            for severity in SEVERITIES:
                gauge["alarms"].labels(city.id, kind, severity).set(0)
                gauge["unacked"].labels(city.id, kind, severity).set(0)
        for row in await _rows(conn, "open_alarms", city, now):
            labels = (city.id, row["kind"], row["severity"])
            gauge["alarms"].labels(*labels).set(row["open"])
            gauge["unacked"].labels(*labels).set(row["unacknowledged"])
    return generate_latest(registry)
