"""A city's monthly report for the console (issue 15, "Reports"): occupancy per lot, the share
of time above 85 %, data quality, sign availability and forecast error, as JSON and CSV.

The month is a calendar month in the city's time zone (``Europe/Berlin`` for Zeitz): October
2026 has 745 hours, March 2027 743. The month under way is reported up to now (``complete``
false); a month that has not begun is refused. Occupancy comes from the 15-minute aggregate
(``lot_occupancy_15m``): every quarter hour weighs the same, so a mean or a share is one of the
time the lot had data, and ``coverage`` says how much of the period that was. Alarms are not
in the report: their table is another part's, which this one cannot count on.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from core.city import City
from core.db import queries

__all__ = ["ABOVE", "CSV_COLUMNS", "MONTH_PATTERN", "MonthNotBegun", "MonthlyReport", "Period",
           "monthly_report", "period_of", "report_csv"]

MONTH_PATTERN = r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])$"
ABOVE = 0.85  # a lot more than this full counts as "above 85 %"
BUCKET = timedelta(minutes=15)
CSV_COLUMNS = ("section", "subject", "horizon_min", "figure", "value")


class MonthNotBegun(ValueError):
    """The month asked for lies in the future."""


@dataclass(frozen=True, slots=True)
class Period:
    """A month in a time zone, as UTC instants: [start, end), reported up to ``until``."""

    month: str
    start: datetime
    end: datetime
    until: datetime


def period_of(month: str, tz: ZoneInfo, now: datetime) -> Period:
    """The bounds of ``month`` (``YYYY-MM``) in ``tz``; MonthNotBegun if it starts after
    ``now``."""
    year, number = (int(part) for part in month.split("-"))
    start = datetime(year, number, 1, tzinfo=tz)
    if start > now:
        raise MonthNotBegun(f"{month} has not begun yet")
    following = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=tz)
    end = following.astimezone(UTC)
    return Period(month, start.astimezone(UTC), end, min(end, now.astimezone(UTC)))


# -- the answer ---------------------------------------------------------------------------------


class ReportPeriod(BaseModel):
    """What the report covers."""

    city: str
    city_name: str
    month: str = Field(description="YYYY-MM, in the city's time zone")
    timezone: str
    start: datetime = Field(description="The month's first instant (UTC)")
    end: datetime = Field(description="The instant after the month (UTC)")
    until: datetime = Field(description="Reported up to here: the end, or now for the month "
                            "under way")
    complete: bool = Field(description="Whether the month is over")
    hours: float = Field(description="The month's length in hours (743 or 745 in a month with "
                         "a clock change)")
    generated: datetime


class LotOccupancy(BaseModel):
    """A lot's occupancy over the period, from its 15-minute means (null without data)."""

    lot_id: str
    name: str
    capacity: int
    mean_occupied: float | None = Field(description="Mean parked cars")
    mean_rate: float | None = Field(description="Mean occupancy, a share of capacity (0-1)")
    peak_occupied: float | None = Field(description="Cars in the fullest quarter hour (its "
                                        "mean)")
    peak_rate: float | None = Field(description="Occupancy of the fullest quarter hour (0-1)")
    peak_at: datetime | None = Field(description="Start of the fullest quarter hour")
    share_above_85: float | None = Field(description="Share of the time with data the lot was "
                                         "more than 85 % full (0-1)")


class LotQuality(BaseModel):
    """A lot's data quality: the time it had data, its bay sensors' faults in the period, and
    (for the month under way only: no history of them is kept) its quality score and flags."""

    lot_id: str
    buckets: int = Field(description="Quarter hours with at least one reading")
    coverage: float | None = Field(description="Share of the period's quarter hours with data")
    bays: int = Field(description="Bay sensors (0: a counter lot)")
    bays_silent: int = Field(description="Bays silent (nothing heard for four staleness limits) "
                             "at some time in the period")
    bays_stuck: int = Field(description="Bays stuck (one state longer than the lot allows) at "
                            "some time in the period")
    quality_now: float | None = Field(description="The lot's quality score now (month under "
                                      "way only)")
    flags_now: list[str] | None = Field(description="The lot's quality flags now (month under "
                                        "way only)")


class SignAvailability(BaseModel):
    """A sign over the period, from its push log (sign_log)."""

    sign_id: str
    name: str
    available_share: float = Field(description="Share of the period its latest push had been "
                                   "answered and acknowledged")
    known_share: float = Field(description="Share of the period with any push known (before a "
                               "sign's first push nothing is known)")
    pushes: int
    failed_pushes: int


class ForecastError(BaseModel):
    """The error of a lot's forecasts for one horizon whose target lay in the period."""

    lot_id: str
    horizon_min: int
    mae: float = Field(description="Mean absolute error in free spaces")
    mae_rate: float | None = Field(description="The error as a share of capacity")
    points: int
    backtest_points: int = Field(description="Of the points, backtest forecasts")


class AlarmFigures(BaseModel):
    """The alarms of one kind and severity whose cause began in the period."""

    kind: str
    severity: str
    raised: int
    acknowledged: int
    mean_minutes_to_ack: float | None = Field(description="From the cause to a person's "
                                              "acknowledgement, of those acknowledged")
    max_minutes_to_ack: float | None
    open_at_end: int = Field(description="Not cleared by the period's end")


class MonthlyReport(BaseModel):
    """A city's monthly report (the console's Reports)."""

    period: ReportPeriod
    occupancy: list[LotOccupancy]
    data_quality: list[LotQuality]
    signs: list[SignAvailability]
    forecast_error: list[ForecastError]
    alarms: list[AlarmFigures]


# -- building it --------------------------------------------------------------------------------


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


async def _rows(conn: AsyncConnection[Any], name: str,
                params: dict[str, Any]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(queries("api", "reports")[name], params)
        return await cur.fetchall()


async def monthly_report(conn: AsyncConnection[Any], city: City, period: Period,
                         now: datetime) -> MonthlyReport:
    """The report of ``city`` over ``period``."""
    lots = {lot.id: lot for lot in city.lots}
    params = {"lot_ids": list(lots), "sign_ids": [sign.id for sign in city.signs],
              "from": period.start, "until": period.until, "above": ABOVE, "city": city.id}
    seconds = (period.until - period.start).total_seconds()
    expected = math.ceil(seconds / BUCKET.total_seconds())
    complete = period.until == period.end

    occupancy, quality = [], []
    bays = {row["lot_id"]: row for row in await _rows(conn, "bay_quality", params)}
    state = {row["lot_id"]: row for row in await _rows(conn, "lot_state", params)}
    figures = {row["lot_id"]: row for row in await _rows(conn, "occupancy", params)}
    for lot in city.lots:  # in the city's order
        row = figures[lot.id]
        occupancy.append(LotOccupancy(
            lot_id=lot.id, name=lot.name, capacity=lot.capacity,
            mean_occupied=_round(row["mean_occupied"], 2), mean_rate=_round(row["mean_rate"], 4),
            peak_occupied=_round(row["peak_occupied"], 2), peak_rate=_round(row["peak_rate"], 4),
            peak_at=row["peak_at"], share_above_85=_round(row["share_above"], 4)))
        sensors = bays.get(lot.id, {"bays": 0, "silent": 0, "stuck": 0})
        quality.append(LotQuality(
            lot_id=lot.id, buckets=row["buckets"],
            coverage=round(row["buckets"] / expected, 4) if expected else None,
            bays=sensors["bays"], bays_silent=sensors["silent"], bays_stuck=sensors["stuck"],
            quality_now=None if complete else _round(state[lot.id]["quality"], 3),
            flags_now=None if complete else list(state[lot.id]["flags"])))

    names = {sign.id: sign.name for sign in city.signs}
    signs = [SignAvailability(
        sign_id=row["sign_id"], name=names[row["sign_id"]],
        available_share=round(row["ok_s"] / seconds, 4) if seconds else 0.0,
        known_share=round(row["known_s"] / seconds, 4) if seconds else 0.0,
        pushes=row["pushes"], failed_pushes=row["failed_pushes"])
        for row in (await _rows(conn, "sign_availability", params) if names else [])]

    errors = [ForecastError(
        lot_id=row["lot_id"], horizon_min=row["horizon_min"], mae=round(row["mae"], 2),
        mae_rate=_round(row["mae_rate"], 4), points=row["points"],
        backtest_points=row["backtest_points"])
        for row in await _rows(conn, "forecast_error", params)]

    return MonthlyReport(
        period=ReportPeriod(
            city=city.id, city_name=city.city.name, month=period.month,
            timezone=city.city.timezone, start=period.start, end=period.end,
            until=period.until, complete=complete,
            hours=(period.end - period.start).total_seconds() / 3600, generated=now),
        occupancy=occupancy, data_quality=quality, signs=signs, forecast_error=errors,
        alarms=[AlarmFigures(**{**row, "mean_minutes_to_ack": _round(row["mean_minutes_to_ack"], 1),
                                "max_minutes_to_ack": _round(row["max_minutes_to_ack"], 1)})
                for row in await _rows(conn, "alarms", params)])


# -- as CSV ---------------------------------------------------------------------------------------

_SUBJECTS = {"occupancy": "lot_id", "data_quality": "lot_id", "signs": "sign_id",
             "forecast_error": "lot_id", "alarms": "kind"}


def _text(value: Any) -> str:
    """A figure as the CSV writes it: as in the JSON, lists joined by ``;``, null empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(str(item) for item in value)
    return str(value)


def report_csv(report: MonthlyReport) -> str:
    """The report as one CSV (RFC 4180, header row ``CSV_COLUMNS``): a row per figure, its
    section (``period``, ``occupancy``, ``data_quality``, ``signs``, ``forecast_error``,
    ``alarms``), the lot, sign or alarm kind it is of (the city for the period) and the horizon
    of a forecast error."""
    data = report.model_dump(mode="json")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    period = data["period"]
    for figure, value in period.items():
        writer.writerow(("period", period["city"], "", figure, _text(value)))
    for section, key in _SUBJECTS.items():
        for item in data[section]:
            horizon = item.get("horizon_min", "")
            for figure, value in item.items():
                if figure not in (key, "horizon_min"):
                    writer.writerow((section, item[key], horizon, figure, _text(value)))
    return out.getvalue()
