"""Response models of the open-data API (what clients see; database rows stay inside)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from core.status import Status

__all__ = [
    "Accuracy",
    "Forecast",
    "ForecastPoint",
    "Health",
    "History",
    "HistoryPoint",
    "Lot",
    "LotFeature",
    "LotFeatureCollection",
    "LotForecast",
    "LotList",
    "Point",
    "ShownLine",
    "Sign",
    "SignLine",
    "SignList",
    "SpecialSpaces",
]


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


# Serialised as RFC 3339 in UTC (``...Z``) whatever time zone the database session has.
UtcTime = Annotated[datetime, AfterValidator(_utc)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class SpecialSpaces(_Model):
    """Spaces of one kind (disabled, EV charging) within a lot."""

    capacity: int = Field(description="Spaces of this kind (part of the lot's capacity).")
    free: int | None = Field(
        description="Free spaces of this kind right now, where a bay sensor covers every one "
        "of them and the lot's count is fresh; otherwise null.")


class LotForecast(_Model):
    """The lot's forecast 30 minutes ahead (from its newest forecast run)."""

    target_time: UtcTime
    free: float
    free_p10: float | None = Field(description="10 % quantile of free spaces.")
    free_p90: float | None = Field(description="90 % quantile of free spaces.")
    p_space: float | None = Field(description="Probability of at least one free space.")
    model: str
    origin: UtcTime = Field(description="When the forecast was made.")


class Lot(_Model):
    """A car park, surface lot or on-street zone with its live status."""

    id: str = Field(description="Unique across the cities of this installation.")
    city: str = Field(description="The id of the lot's city.")
    name: str
    kind: Literal["garage", "surface", "on_street"]
    counting: Literal["counter", "bays"] = Field(
        description="How it is counted: entry/exit counters or a sensor per bay.")
    address: str
    latitude: float
    longitude: float
    opening_hours: str = Field(description="OpenStreetMap opening_hours syntax, local time.")
    capacity: int
    free: int | None = Field(description="Free spaces; null while the lot is closed, its "
                             "count is stale or there has been none (never a guess).")
    occupied: int | None
    status: Status = Field(description="unknown when the count is older than the lot's "
                           "staleness limit (stale is not free); closed outside opening hours.")
    updated: UtcTime | None = Field(description="Time of the newest count (null: none yet).")
    stale: bool = Field(description="The newest count is older than the lot's staleness "
                        "limit, or there is none; free and occupied are then null.")
    stale_after_s: int
    quality: float | None = Field(
        description="0..1: how far the count can be trusted (share of working bay sensors; "
        "counter drift, clamped counts and counter jumps). 0 when stale.")
    quality_flags: list[str] = Field(
        description="Reasons behind the quality score, e.g. stale, silent_sensors:3, drift:4, "
        "clamped, counter_jump (within 24 h a garage counter changed by more than the lot can "
        "pass: the count carried over it).")
    disabled: SpecialSpaces
    ev: SpecialSpaces
    forecast_30: LotForecast | None = Field(
        description="Forecast for 30 minutes ahead; null while there is none that lies ahead.")


class LotList(_Model):
    """One page of the lots (of every city, or of the one asked for)."""

    lots: list[Lot]
    total: int
    limit: int
    offset: int


class Point(_Model):
    """A GeoJSON Point (RFC 7946): longitude first."""

    type: Literal["Point"] = "Point"
    coordinates: list[float] = Field(min_length=2, max_length=2,
                                     description="[longitude, latitude] (WGS 84).")


class LotFeature(_Model):
    """A lot as a GeoJSON Feature; ``properties`` is the lot as in the JSON list."""

    type: Literal["Feature"] = "Feature"
    id: str
    geometry: Point
    properties: Lot


class LotFeatureCollection(_Model):
    """One page of the lots as a GeoJSON FeatureCollection (RFC 7946)."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[LotFeature]


class HistoryPoint(_Model):
    """One time bucket of a lot's occupancy."""

    time: UtcTime = Field(description="Start of the bucket (1d: local midnight, as UTC).")
    free: float = Field(description="Mean free spaces over the bucket's readings.")
    occupied: float
    free_min: int = Field(description="Fewest free spaces read in the bucket.")
    capacity: int
    samples: int = Field(description="Readings in the bucket.")


class History(_Model):
    """A lot's occupancy over time."""

    lot_id: str
    resolution: Literal["15m", "1h", "1d"]
    from_: UtcTime = Field(serialization_alias="from",
                           description="Start of the first bucket (the query's from, aligned).")
    to: UtcTime = Field(description="Buckets start before this time.")
    timezone: str = Field(description="Time zone of the 1d buckets' local days.")
    points: list[HistoryPoint]


class ForecastPoint(_Model):
    """The forecast for one horizon."""

    horizon_min: int
    target_time: UtcTime
    free: float
    free_p10: float | None
    free_p90: float | None
    p_space: float | None = Field(description="Probability of at least one free space.")
    model: str


class Accuracy(_Model):
    """The published error of past forecasts for one horizon."""

    horizon_min: int
    window_days: int = Field(description="Forecasts whose target lay in this many last days.")
    mae: float = Field(description="Mean absolute error in free spaces.")
    mae_rate: float | None = Field(description="Mean absolute error as a share of capacity.")
    points: int = Field(description="Forecasts scored.")
    backtest_points: int = Field(
        description="Of the points, backtest forecasts: made after the fact from the history "
        "before the first live forecast, so a new installation publishes an error from its "
        "first day; 0 once live forecasts fill the window.")
    computed_at: UtcTime


class Forecast(_Model):
    """A lot's newest forecast run (horizons still ahead) and the published error."""

    lot_id: str
    origin: UtcTime | None = Field(description="When the newest run was made (null: none).")
    points: list[ForecastPoint]
    accuracy: list[Accuracy]


class SignLine(_Model):
    """A configured line of a sign: which lots it counts."""

    label: str
    arrow: Literal["left", "right", "straight", "none"]
    lots: list[str]


class ShownLine(_Model):
    """What one line of a sign showed at its last confirmed push."""

    label: str
    arrow: Literal["left", "right", "straight", "none"]
    text: str = Field(description="A free count, a fixed text, or the safe state (-- or "
                      "empty) for stale data.")


class Sign(_Model):
    """A variable message sign and what it shows."""

    id: str
    city: str = Field(description="The id of the sign's city.")
    name: str
    road: str
    latitude: float
    longitude: float
    lines: list[SignLine]
    showing: list[ShownLine] | None = Field(
        description="What the sign last confirmed showing (null: not served yet).")
    shown_since: UtcTime | None
    last_ack: UtcTime | None = Field(description="The sign's newest acknowledged push.")
    stale: bool = Field(description="No acknowledged push within the sign's own staleness "
                        "limit: it may have fallen back to its safe state.")
    consecutive_failures: int


class SignList(_Model):
    """Every sign (of every city, or of the one asked for)."""

    signs: list[Sign]


class Health(_Model):
    """The service's health."""

    status: Literal["ok"]
    database: Literal["ok"]
    schema_version: int | None
