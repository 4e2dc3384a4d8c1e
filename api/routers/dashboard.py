"""The JSON the dashboard and kiosk read beyond the open API (``/v1/dashboard/...``):
city-wide series, heatmap, target share, forecast against actual, sensor health, signs and
their log, today. Their queries are in ``api/pages.sql``."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from psycopg.rows import dict_row
from pydantic import BaseModel

from api._http import bad_parameter, problem_responses
from api._input import Moment
from api.deps import CityDep, Now, ReadConn, SettingsDep
from core.city import ID_PATTERN, City
from core.db import queries

__all__ = ["TARGET", "router"]

MAX_RANGE = timedelta(days=92)
TARGET = 0.85  # the planners' target: occupancy above this share of capacity is too much
GATEWAY_SILENT_AFTER = timedelta(hours=1)  # sensor_status()'s 4 × staleness, at 900 s
GATEWAY_WINDOW = timedelta(days=7)

router = APIRouter()

From = Annotated[Moment | None, Query(
    alias="from", description="start (RFC 3339, 1970 to 2199); default: `to` - 7 days")]
To = Annotated[Moment | None, Query(
    alias="to", description="end, exclusive (RFC 3339, 1970 to 2199); default now")]
LotId = Annotated[str | None, Query(pattern=ID_PATTERN, description="a lot id; none: the city")]


def _window(start: datetime | None, end: datetime | None, now: datetime,
            default: timedelta = timedelta(days=7)) -> tuple[datetime, datetime]:
    end = (end or now).astimezone(UTC)
    start = (start or end - default).astimezone(UTC)
    if start >= end:
        bad_parameter("from", "must be before `to`")
    if end - start > MAX_RANGE:
        bad_parameter("from", f"at most {MAX_RANGE.days} days before `to`")
    return start, end


def _known_lot(city: City, lot_id: str | None) -> str | None:
    if lot_id is not None and all(lot.id != lot_id for lot in city.lots):
        raise HTTPException(404, f"no lot {lot_id!r} in {city.id}")
    return lot_id


async def _rows(conn: ReadConn, query: str, params: dict[str, Any],
                package: str = "api", file: str = "pages") -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(queries(package, file)[query], params)
        return await cur.fetchall()


class LotSeries(BaseModel):
    id: str
    name: str
    capacity: int
    occupied: list[float | None]


class CitySeries(BaseModel):
    occupied: list[float | None]
    capacity: list[int | None]  # of the lots with data in that period


class Occupancy(BaseModel):
    resolution: Literal["15m", "1h", "1d"]
    times: list[datetime]
    city: CitySeries
    lots: list[LotSeries]


@router.get("/v1/dashboard/occupancy", response_model=Occupancy, tags=["dashboard"],
            responses=problem_responses(404, 422, 503),
            operation_id="dashboard_occupancy")
async def occupancy(conn: ReadConn, city: CityDep, now: Now, start: From = None, end: To = None,
                    resolution: Literal["15m", "1h", "1d"] = "1h") -> Occupancy:
    """Mean occupied spaces of every lot and of the whole city per period, aligned in time."""
    start, end = _window(start, end, now)
    rows = await _rows(conn, f"occupancy_{resolution}",
                       {"city": city.id, "from": start, "to": end, "tz": city.city.timezone})
    lots = await _rows(conn, "lots", {"city": city.id})
    times = sorted({row["bucket"] for row in rows})
    index = {moment: i for i, moment in enumerate(times)}
    series: dict[str, list[float | None]] = {lot["lot_id"]: [None] * len(times) for lot in lots}
    city_occupied: list[float | None] = [None] * len(times)
    city_capacity: list[int | None] = [None] * len(times)
    for row in rows:
        i = index[row["bucket"]]
        if row["lot_id"] in series:
            series[row["lot_id"]][i] = round(row["occupied"], 2)
        city_occupied[i] = round((city_occupied[i] or 0) + row["occupied"], 2)
        city_capacity[i] = (city_capacity[i] or 0) + row["capacity"]
    return Occupancy(
        resolution=resolution, times=times,
        city=CitySeries(occupied=city_occupied, capacity=city_capacity),
        lots=[LotSeries(id=lot["lot_id"], name=lot["name"], capacity=lot["capacity"],
                        occupied=series[lot["lot_id"]]) for lot in lots])


class Heatmap(BaseModel):
    lot_id: str | None
    # rates[weekday - 1][hour]: mean share of capacity occupied (Monday first, local hours)
    rates: list[list[float | None]]
    hours: list[list[int]]  # how many hours of data each cell averages


@router.get("/v1/dashboard/heatmap", response_model=Heatmap, tags=["dashboard"],
            responses=problem_responses(404, 422, 503),
            operation_id="dashboard_heatmap")
async def heatmap(conn: ReadConn, city: CityDep, now: Now, start: From = None, end: To = None,
                  lot_id: LotId = None) -> Heatmap:
    """Mean occupancy by hour of the week (local time), of one lot or the city."""
    start, end = _window(start, end, now, timedelta(days=28))
    rows = await _rows(conn, "heatmap", {"city": city.id, "from": start, "to": end,
                                         "tz": city.city.timezone,
                                         "lot_id": _known_lot(city, lot_id)})
    rates: list[list[float | None]] = [[None] * 24 for _ in range(7)]
    hours = [[0] * 24 for _ in range(7)]
    for row in rows:
        rates[row["weekday"] - 1][row["hour"]] = (
            None if row["rate"] is None else round(row["rate"], 4))
        hours[row["weekday"] - 1][row["hour"]] = row["hours"]
    return Heatmap(lot_id=lot_id, rates=rates, hours=hours)


class TargetShare(BaseModel):
    id: str | None  # None: the whole city
    name: str
    periods: int  # 15-minute periods with data
    above: int  # of which above the target
    share: float | None


class Target(BaseModel):
    threshold: float
    city: TargetShare
    lots: list[TargetShare]


@router.get("/v1/dashboard/target", response_model=Target, tags=["dashboard"],
            responses=problem_responses(404, 422, 503),
            operation_id="dashboard_target")
async def target(conn: ReadConn, city: CityDep, now: Now, start: From = None,
                 end: To = None) -> Target:
    """Share of the time (15-minute periods) each lot and the city were above 85 % occupied."""
    start, end = _window(start, end, now)
    rows = await _rows(conn, "share_above", {"city": city.id, "from": start, "to": end,
                                             "threshold": TARGET})
    counts = {row["lot_id"]: (row["periods"], row["above"]) for row in rows}

    def share(lot_id: str | None, name: str) -> TargetShare:
        periods, above = counts.get(lot_id, (0, 0))
        return TargetShare(id=lot_id, name=name, periods=periods, above=above,
                           share=round(above / periods, 4) if periods else None)

    lots = await _rows(conn, "lots", {"city": city.id})
    return Target(threshold=TARGET, city=share(None, city.city.name),
                  lots=[share(lot["lot_id"], lot["name"]) for lot in lots])


class Accuracy(BaseModel):
    # The OpenAPI names a schema by its module where two models share a name (api._models
    # has one too): the name it had before the dashboard routes left pages.py.
    __module__ = "api.routers.pages"

    lot_id: str
    name: str
    horizon_min: int
    window_days: int
    mae: float
    mae_rate: float | None
    points: int
    backtest_points: int  # of the points, backtest forecasts (0 once live ones fill the window)
    computed_at: datetime


class ForecastVsActual(BaseModel):
    lot_id: str | None
    horizon_min: int
    times: list[datetime]  # target periods (15 minutes)
    forecast: list[float | None]
    p10: list[float | None]
    p90: list[float | None]
    actual: list[float | None]
    backtest: list[bool]  # per period: a backtest forecast (made after the fact), not a live one
    published: list[Accuracy]  # the published error of every lot and horizon


@router.get("/v1/dashboard/forecast", response_model=ForecastVsActual, tags=["dashboard"],
            responses=problem_responses(404, 422, 503),
            operation_id="dashboard_forecast")
async def forecast(conn: ReadConn, city: CityDep, now: Now, settings: SettingsDep,
                   start: From = None, end: To = None, lot_id: LotId = None,
                   horizon: Annotated[int, Query(ge=1, le=1440)] = 30) -> ForecastVsActual:
    """Free spaces forecast ``horizon`` minutes ahead against those counted, per 15 minutes."""
    if horizon not in settings.FORECAST_HORIZONS:
        bad_parameter("horizon", f"must be one of {list(settings.FORECAST_HORIZONS)}")
    start, end = _window(start, end, now, timedelta(days=2))
    rows = await _rows(conn, "forecast_vs_actual", {
        "city": city.id, "lot_id": _known_lot(city, lot_id), "horizon": horizon,
        "from": start, "to": end})
    published = await _rows(conn, "accuracy", {"city": city.id})

    def column(name: str) -> list[float | None]:
        return [None if row[name] is None else round(row[name], 1) for row in rows]

    return ForecastVsActual(
        lot_id=lot_id, horizon_min=horizon, times=[row["bucket"] for row in rows],
        forecast=column("forecast"), p10=column("p10"), p90=column("p90"),
        actual=column("actual"), backtest=[row["backtest"] for row in rows],
        published=[Accuracy(**row) for row in published])


class SensorLot(BaseModel):
    id: str
    name: str
    counting: str
    sensors: int
    silent: int
    stuck: int
    battery_low: int
    counter_jump: int
    status: str | None
    updated: datetime | None
    quality: float | None
    flags: list[str]


class SensorProblem(BaseModel):
    sensor_id: str
    lot_id: str
    network: str
    last_seen: datetime | None
    state_since: datetime | None
    battery_v: float | None
    battery_pct: float | None
    rssi: float | None
    snr: float | None
    gateway_id: str | None
    silent: bool
    stuck: bool
    battery_low: bool
    counter_jump: bool  # a garage counter's change no lot could see: re-baselined (24 h)


class Gateway(BaseModel):
    id: str
    last_seen: datetime
    sensors: int
    silent: bool


class SensorHealth(BaseModel):
    lots: list[SensorLot]
    problems: list[SensorProblem]  # the first ``limit`` silent/stuck/low/jumped sensors
    gateways: list[Gateway]


@router.get("/v1/dashboard/sensors", response_model=SensorHealth, tags=["dashboard"],
            responses=problem_responses(404, 422, 503),
            operation_id="dashboard_sensors")
async def sensors(conn: ReadConn, city: CityDep, now: Now,
                  limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> SensorHealth:
    """Sensor health: per lot, sensors silent, stuck, low on battery or (garage counters)
    jumped; gateways heard."""
    lots = await _rows(conn, "sensor_lots", {"city": city.id, "now": now})
    problems = await _rows(conn, "sensor_problems", {"city": city.id, "limit": limit,
                                                     "now": now})
    gateways = await _rows(conn, "gateways", {
        "city": city.id, "since": now - GATEWAY_WINDOW, "now": now,
        "silent_after": GATEWAY_SILENT_AFTER})
    return SensorHealth(
        lots=[SensorLot(id=row["lot_id"], **{k: v for k, v in row.items() if k != "lot_id"})
              for row in lots],
        problems=[SensorProblem(**row) for row in problems],
        gateways=[Gateway(id=row["gateway_id"], last_seen=row["last_seen"],
                          sensors=row["sensors"], silent=row["silent"]) for row in gateways])


class SignStatus(BaseModel):
    id: str
    name: str
    driver: str
    content: dict[str, Any] | None  # {"lines": [{"label", "arrow", "text"}]}, as confirmed
    shown_since: datetime | None
    last_ack: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    updated: datetime | None


class SignLogEntry(BaseModel):
    time: datetime
    sign_id: str
    content: dict[str, Any]
    ok: bool
    error: str | None
    ack: str | None


class Signs(BaseModel):
    signs: list[SignStatus]
    log: list[SignLogEntry]  # newest first


@router.get("/v1/dashboard/signs", response_model=Signs, tags=["dashboard"],
            responses=problem_responses(404, 422, 503),
            operation_id="dashboard_signs")
async def signs(conn: ReadConn, city: CityDep, now: Now, start: From = None, end: To = None,
                limit: Annotated[int, Query(ge=0, le=5000)] = 100) -> Signs:
    """Every sign's confirmed content and health, and the newest entries of the sign log."""
    start, end = _window(start, end, now)
    # The signage service's own read of sign health: one definition of what a sign shows.
    states = await _rows(conn, "sign_health", {"city": city.id}, "signage", "queries")
    log = await _rows(conn, "sign_log", {"city": city.id, "from": start, "to": end,
                                         "limit": limit}) if limit else []
    return Signs(signs=[SignStatus(id=row["sign_id"], **{k: v for k, v in row.items()
                                                         if k != "sign_id"})
                        for row in states],
                 log=[SignLogEntry(**row) for row in log])


class LotForecast(BaseModel):
    __module__ = "api.routers.pages"  # as Accuracy's

    horizon_min: int
    target_time: datetime
    free: float
    p10: float | None
    p90: float | None


class LotToday(BaseModel):
    id: str
    name: str
    capacity: int
    forecasts: list[LotForecast]  # the newest run's, one per horizon


class Today(BaseModel):
    date: date
    times: list[datetime]  # today's 15-minute periods, local midnight to midnight
    actual: list[float | None]  # the city's occupancy (share) so far
    typical: list[float | None]  # the same weekday's mean over the last four weeks
    lots: list[LotToday]


@router.get("/v1/dashboard/today", response_model=Today, tags=["dashboard"],
            responses=problem_responses(404, 422, 503),
            operation_id="dashboard_today")
async def today(conn: ReadConn, city: CityDep, now: Now) -> Today:
    """Today for the city: occupancy so far, a typical day like it, and each lot's forecast."""
    tz = city.tz
    day = now.astimezone(tz).date()
    midnight = datetime.combine(day, time(), tz).astimezone(UTC)
    tomorrow = datetime.combine(day + timedelta(days=1), time(), tz).astimezone(UTC)
    # Wall-clock steps of 15 minutes in UTC: a clock-change day has 92 or 100 of them.
    times = [midnight + timedelta(minutes=15 * i)
             for i in range(int((tomorrow - midnight).total_seconds() // 900))]
    params = {"city": city.id, "tz": city.city.timezone}
    actual_rows = await _rows(conn, "city_rate", {**params, "from": midnight, "to": tomorrow})
    typical_rows = await _rows(conn, "typical_day", {
        **params, "from": midnight - timedelta(days=28), "to": midnight,
        "weekday": day.isoweekday()})
    forecast_rows = await _rows(conn, "latest_forecasts",
                                {**params, "since": now - timedelta(hours=1)})
    actual = {row["bucket"]: row["rate"] for row in actual_rows}
    typical = {row["clock"]: row["rate"] for row in typical_rows}

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    forecasts: dict[str, list[LotForecast]] = defaultdict(list)
    for row in forecast_rows:
        forecasts[row["lot_id"]].append(LotForecast(
            horizon_min=row["horizon_min"], target_time=row["target_time"],
            free=round(row["free"], 1), p10=row["free_p10"], p90=row["free_p90"]))
    lots = await _rows(conn, "lots", params)
    return Today(
        date=day, times=times,
        actual=[rounded(actual.get(moment)) for moment in times],
        typical=[rounded(typical.get(moment.astimezone(tz).time())) for moment in times],
        lots=[LotToday(id=lot["lot_id"], name=lot["name"], capacity=lot["capacity"],
                       forecasts=forecasts[lot["lot_id"]]) for lot in lots])


class PointBlocked(BaseModel):
    evse_id: str
    station_id: str
    station: str
    lot_id: str
    bays: list[str]
    blocked_hours: float


class ChargersBlocked(BaseModel):
    start: datetime
    end: datetime
    blocked_after_min: int
    points: list[PointBlocked]  # the most blocked first


@router.get("/v1/dashboard/chargers", response_model=ChargersBlocked, tags=["dashboard"],
            responses=problem_responses(404, 422, 503),
            operation_id="dashboard_chargers")
async def chargers(conn: ReadConn, city: CityDep, now: Now, start: From = None,
                   end: To = None) -> ChargersBlocked:
    """Hours each charging point was blocked (a car on its bay not charging for the city's
    limit, or its own BLOCKED report), for planners who justify enforcement with them."""
    start, end = _window(start, end, now)
    points = list(city.evses())
    rows = await _rows(conn, "evse_blocked_hours", {
        "evse_ids": [evse.evse_id for _, evse in points], "from": start, "to": end,
        "blocked_after_s": city.city.charger_blocked_after_min * 60}) if points else []
    hours = {row["evse_id"]: row["blocked_hours"] for row in rows}
    entries = [PointBlocked(evse_id=evse.evse_id, station_id=station.id, station=station.name,
                            lot_id=station.lot, bays=list(evse.bays),
                            blocked_hours=round(hours.get(evse.evse_id, 0.0), 2))
               for station, evse in points]
    entries.sort(key=lambda entry: (-entry.blocked_hours, entry.evse_id))
    return ChargersBlocked(start=start, end=end,
                           blocked_after_min=city.city.charger_blocked_after_min, points=entries)
