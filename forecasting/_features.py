"""The gradient-boosting forecaster's features: one table of name -> expression.

Every feature of a (lot, origin, horizon) example is one entry of ``_TABLE``, computed from
``Examples`` (the shared quantities of a batch of examples, each computed once when a feature
first needs it) and a ``Grid`` (what the features need of a panel: rates, calendar, the lots'
statistics). Every feature is a rate, a calendar value or missing, so one model serves all
lots, including lots it has never seen. ``FEATURES`` is the column order of the model's input:
a stored model reads its columns by position, so a new feature means retraining.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

import holidays
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from core.city import DatedEvent, Event
from forecasting._baselines import _per_group, last_observed
from forecasting._data import SLOTS_PER_WEEK, STEP, STEP_MINUTES, Panel

__all__ = ["DAY_SLOTS", "FEATURES", "Examples", "Grid", "LotStats", "feature_matrix",
           "lot_statistics", "panel_grid", "pooled_profile"]

DAY_SLOTS = 24 * 60 // STEP_MINUTES
_EVENT_LEAD = timedelta(hours=1)  # arrivals for an event begin before it does
# Country of the holiday flags for a panel's time zone (no entry: no holiday flags).
_COUNTRY = {"Europe/Berlin": "DE", "Europe/Busingen": "DE", "Europe/London": "GB",
            "Europe/Vienna": "AT", "Europe/Zurich": "CH", "Europe/Amsterdam": "NL"}


@dataclass(frozen=True)
class LotStats:
    """Per lot (a row each): the spread of its deviation from the profile, its mean
    step-to-step change, its mean profile level and, per decay step (columns), how much of a
    deviation is left that many steps later; NaN for a lot without data."""

    spread: NDArray[np.float64]
    volatility: NDArray[np.float64]
    level: NDArray[np.float64]
    decay: NDArray[np.float64]  # (n_lots, n_decay_steps)

    @classmethod
    def from_array(cls, columns: NDArray[np.float64]) -> LotStats:
        """From the one array models pickled before the statistics had names."""
        return cls(columns[:, 0], columns[:, 1], columns[:, 2], columns[:, 3:])

    def take(self, rows: NDArray[np.int64]) -> LotStats:
        """The statistics of ``rows`` (a copy)."""
        return LotStats(self.spread[rows], self.volatility[rows], self.level[rows],
                        self.decay[rows])

    def replaced(self, where: NDArray[np.bool_], other: LotStats) -> LotStats:
        """A copy with ``other``'s rows in the rows ``where`` is true."""
        def put(mine: NDArray[np.float64], theirs: NDArray[np.float64]) -> NDArray[np.float64]:
            merged = mine.copy()
            merged[where] = theirs
            return merged
        return LotStats(put(self.spread, other.spread), put(self.volatility, other.volatility),
                        put(self.level, other.level), put(self.decay, other.decay))


@dataclass(frozen=True)
class Grid:
    """What the features need of a panel, computed once per call."""

    rate: NDArray[np.float64]
    latest: NDArray[np.int64]
    slots: NDArray[np.int64]
    holiday: NDArray[np.float64]
    school: NDArray[np.float64]
    event: NDArray[np.float64]  # (n_lots, n_steps)
    log_capacity: NDArray[np.float64]
    capacity: NDArray[np.float64]
    lot_stats: LotStats


class Examples:
    """(lot, origin, steps) examples and the quantities their features share, each computed
    once on first use, from ``grid.rate[:, :origin + 1]`` only. ``profile`` and ``pooled``
    are the week-slot profiles (``pooled_profile``) per lot; ``decay`` the baseline's decay of
    a deviation per step ahead; ``decay_steps`` the steps of ``LotStats.decay``."""

    def __init__(self, grid: Grid, profile: NDArray[np.float64], pooled: NDArray[np.float64],
                 decay: NDArray[np.float64], decay_steps: NDArray[np.int64],
                 lots: NDArray[np.int64], positions: NDArray[np.int64],
                 steps: NDArray[np.int64]) -> None:
        self.grid, self.profile, self.pooled = grid, profile, pooled
        self.decay, self.decay_steps = decay, decay_steps
        self.lots, self.positions, self.steps = lots, positions, steps
        self.targets = positions + steps
        self.target_slot = grid.slots[self.targets]
        latest = grid.latest[lots, positions]
        self.source = np.maximum(latest, 0)  # the latest observation at or before the origin
        self.now = np.where(latest >= 0, grid.rate[lots, self.source], np.nan)

    # --- the lot at the origin and the baseline forecast ---------------------------------

    @cached_property
    def profile_origin(self) -> NDArray[np.float64]:
        return self.profile[self.lots, self.grid.slots[self.positions]]

    def at_target(self, profile: NDArray[np.float64]) -> NDArray[np.float64]:
        """A week-slot profile (``profile`` or ``pooled``) at each example's target."""
        return np.asarray(profile[self.lots, self.target_slot], dtype=np.float64)

    def deviation_from(self, profile: NDArray[np.float64]) -> NDArray[np.float64]:
        """The latest rate at or before the origin minus ``profile`` at its time."""
        return self.now - profile[self.lots, self.grid.slots[self.source]]

    @cached_property
    def profile_target(self) -> NDArray[np.float64]:
        return self.at_target(self.profile)

    @cached_property
    def deviation(self) -> NDArray[np.float64]:
        return self.deviation_from(self.profile)

    @cached_property
    def factor(self) -> NDArray[np.float64]:
        """How much of the deviation at the source the baseline keeps at the target."""
        decay, lead = self.decay, self.targets - self.source
        return np.where(lead < decay.size, decay[np.minimum(lead, decay.size - 1)], 0.0)

    @cached_property
    def baseline(self) -> NDArray[np.float64]:
        """The profile + last anomaly forecast (a rate): the model learns its residual."""
        adjusted = np.where(np.isfinite(self.deviation),
                            self.profile_target + self.factor * self.deviation,
                            self.profile_target)
        return np.clip(np.where(np.isfinite(adjusted), adjusted, self.now), 0.0, 1.0)

    @cached_property
    def ratio_forecast(self) -> NDArray[np.float64]:
        """Occupancy scaled by today's ratio to the profile: a busy day fills proportionally."""
        return np.asarray(1 - (1 - self.profile_target) * (1 - self.now)
                          / np.maximum(1 - self.profile_origin, 0.05), dtype=np.float64)

    @cached_property
    def pooled_target(self) -> NDArray[np.float64]:
        return self.at_target(self.pooled)

    @cached_property
    def pooled_deviation(self) -> NDArray[np.float64]:
        return self.deviation_from(self.pooled)

    @cached_property
    def lot_decay(self) -> NDArray[np.float64]:
        """The lot's own decay of a deviation at the nearest decay step."""
        nearest = np.abs(self.steps[:, None] - self.decay_steps[None, :]).argmin(axis=1)
        return np.asarray(self.grid.lot_stats.decay[self.lots, nearest], dtype=np.float64)

    # --- deviations from the profile over the whole grid --------------------------------

    @cached_property
    def expected_rate(self) -> NDArray[np.float64]:
        """The profile at every grid position, per lot."""
        return self.profile[:, self.grid.slots[:self.grid.rate.shape[1]]]

    @cached_property
    def deviations(self) -> NDArray[np.float64]:
        return self.grid.rate - self.expected_rate

    @cached_property
    def _cumulative(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Running sum and count of the finite deviations per lot (0 before the first)."""
        finite = np.isfinite(self.deviations)
        zero = np.zeros((finite.shape[0], 1))
        sums = np.concatenate(
            [zero, np.cumsum(np.where(finite, self.deviations, 0.0), axis=1)], axis=1)
        counts = np.concatenate([zero, np.cumsum(finite, axis=1)], axis=1)
        return sums, counts

    @cached_property
    def city(self) -> NDArray[np.float64]:
        """The deviation averaged over all lots, per grid position."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no lot observed: NaN
            return np.asarray(np.nanmean(self.deviations, axis=0), dtype=np.float64)

    @cached_property
    def city_ratio(self) -> NDArray[np.float64]:
        """All cars parked over the profile's, weighted by capacity, per grid position."""
        occupied = 1 - self.grid.rate
        expected = 1 - self.expected_rate
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no lot observed: NaN
            both = np.isfinite(occupied) & np.isfinite(expected)
            weight = self.grid.capacity[:, None] * both
            return np.asarray((np.where(both, occupied, 0.0) * weight).sum(axis=0)
                              / (np.where(both, expected, 0.0) * weight).sum(axis=0),
                              dtype=np.float64)

    # --- looking back from the origin ----------------------------------------------------

    def latest_of(self, values: NDArray[np.float64], lag: int) -> NDArray[np.float64]:
        """The latest value at or before ``lag`` steps before the origin."""
        earlier = self.positions - lag
        index = self.grid.latest[self.lots, np.maximum(earlier, 0)]
        return np.where((earlier >= 0) & (index >= 0),
                        values[self.lots, np.maximum(index, 0)], np.nan)

    def mean_back(self, window: int) -> NDArray[np.float64]:
        """The mean deviation over the last ``window`` steps up to the origin."""
        sums, counts = self._cumulative
        end = self.positions + 1
        begin = np.maximum(end - window, 0)
        n = counts[self.lots, end] - counts[self.lots, begin]
        total = sums[self.lots, end] - sums[self.lots, begin]
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)

    def at_target_before(self, period: int, times: int) -> NDArray[np.float64]:
        """Mean deviation at the target slot 1..times periods earlier (not after now)."""
        values = []
        for k in range(1, times + 1):
            earlier = self.targets - k * period
            ok = (earlier >= 0) & (earlier <= self.positions)
            values.append(np.where(ok, self.deviations[self.lots, np.clip(earlier, 0, None)],
                                   np.nan))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all missing: NaN
            return np.asarray(np.nanmean(np.stack(values), axis=0), dtype=np.float64)

    def city_change(self, lag: int) -> NDArray[np.float64]:
        positions = self.positions
        return np.where(positions >= lag, self.city[positions] - self.city[positions - lag],
                        np.nan)

    def echo(self, hours: int) -> NDArray[np.float64]:
        """How the deviation changed ``hours`` before the forecast window: the cars that came
        then leave now (dwell times cluster, e.g. a working day)."""
        lag = hours * 60 // STEP_MINUTES
        begin, end = self.positions - lag, np.minimum(self.targets - lag, self.positions)
        ok = begin >= 0
        return np.where(ok, self.latest_of(self.deviations, lag) - np.where(
            ok, self.deviations[self.lots, np.clip(end, 0, None)], np.nan), np.nan)

    @cached_property
    def angle(self) -> NDArray[np.float64]:
        """The target's time of day on the unit circle."""
        return np.asarray(2 * np.pi * (self.target_slot % DAY_SLOTS) / DAY_SLOTS,
                          dtype=np.float64)


def _or_zero(values: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.where(np.isfinite(values), values, 0.0)


# Name -> expression, in the model's column order. Rates are free rates (free / capacity);
# a deviation is a rate minus the lot's profile at its week slot.
_TABLE: tuple[tuple[str, Callable[[Examples], ArrayLike]], ...] = (
    ("rate_now", lambda ex: ex.now),
    ("change_15", lambda ex: ex.now - ex.latest_of(ex.grid.rate, 1)),
    ("change_30", lambda ex: ex.now - ex.latest_of(ex.grid.rate, 2)),
    ("change_60", lambda ex: ex.now - ex.latest_of(ex.grid.rate, 4)),
    ("profile_origin", lambda ex: ex.profile_origin),
    ("profile_target", lambda ex: ex.profile_target),
    ("profile_change", lambda ex: ex.profile_target - ex.profile_origin),
    ("baseline", lambda ex: ex.baseline),
    ("ratio_forecast", lambda ex: ex.ratio_forecast),
    ("deviation_now", lambda ex: ex.deviation),
    ("deviation_change_30", lambda ex: ex.deviation - ex.latest_of(ex.deviations, 2)),
    ("deviation_change_60", lambda ex: ex.deviation - ex.latest_of(ex.deviations, 4)),
    ("deviation_mean_2h", lambda ex: ex.mean_back(8)),
    ("deviation_mean_6h", lambda ex: ex.mean_back(24)),
    ("deviation_mean_3d", lambda ex: ex.mean_back(3 * DAY_SLOTS)),
    ("deviation_yesterday", lambda ex: ex.at_target_before(DAY_SLOTS, 1)),
    ("deviation_same_slot_7d", lambda ex: ex.at_target_before(DAY_SLOTS, 7)),
    ("deviation_last_week", lambda ex: ex.at_target_before(SLOTS_PER_WEEK, 1)),
    ("deviation_same_slot_3w", lambda ex: ex.at_target_before(SLOTS_PER_WEEK, 3)),
    ("city_deviation", lambda ex: ex.city[ex.positions]),
    ("city_change_30", lambda ex: ex.city_change(2)),
    ("city_change_60", lambda ex: ex.city_change(4)),
    ("weekday", lambda ex: ex.target_slot // DAY_SLOTS),
    ("tod_sin", lambda ex: np.sin(ex.angle)),
    ("tod_cos", lambda ex: np.cos(ex.angle)),
    ("horizon", lambda ex: ex.steps * float(STEP_MINUTES)),
    ("holiday", lambda ex: ex.grid.holiday[ex.targets]),
    ("school_holiday", lambda ex: ex.grid.school[ex.targets]),
    ("event", lambda ex: ex.grid.event[ex.lots, ex.targets]),
    ("log_capacity", lambda ex: ex.grid.log_capacity[ex.lots]),
    ("lot_deviation_spread", lambda ex: ex.grid.lot_stats.spread[ex.lots]),
    ("lot_volatility", lambda ex: ex.grid.lot_stats.volatility[ex.lots]),
    ("lot_level", lambda ex: ex.grid.lot_stats.level[ex.lots]),
    ("lot_decay", lambda ex: ex.lot_decay),
    ("lot_forecast", lambda ex: np.clip(
        ex.profile_target + ex.lot_decay * _or_zero(ex.deviation), 0.0, 1.0)),
    ("city_ratio", lambda ex: ex.city_ratio[ex.positions]),
    ("pooled_target", lambda ex: ex.pooled_target),
    ("pooled_deviation", lambda ex: ex.pooled_deviation),
    ("pooled_forecast", lambda ex: np.clip(
        ex.pooled_target + ex.factor * _or_zero(ex.pooled_deviation), 0.0, 1.0)),
    ("echo_4h", lambda ex: ex.echo(4)),
    ("echo_8h", lambda ex: ex.echo(8)),
    ("echo_9h", lambda ex: ex.echo(9)),
)

FEATURES = tuple(name for name, _ in _TABLE)


def feature_matrix(examples: Examples) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The features of ``examples`` (a row each, ``FEATURES`` columns) and their baseline
    forecast (a rate)."""
    return (np.column_stack([np.asarray(expression(examples), dtype=np.float64)
                             for _, expression in _TABLE]),
            np.asarray(examples.baseline, dtype=np.float64))


# --- what the features read of a panel -------------------------------------------------------

def panel_grid(panel: Panel, n_steps: int, *, lot_stats: LotStats, country: str | None,
         subdiv: str | None, events: Sequence[Event | DatedEvent],
         stop: int | None = None) -> Grid:
    """Rates and calendar of ``panel`` over ``n_steps`` positions, with the statistics of its
    lots; data after ``stop`` (exclusive) are ignored. ``country`` (default: from the panel's
    time zone) and ``subdiv`` choose the public and school holidays."""
    rate = panel.rate()
    if stop is not None:
        rate = rate[:, :stop]
    times = pd.date_range(panel.start, periods=n_steps, freq=STEP).tz_convert(panel.timezone)
    days = np.asarray(times.normalize().date)
    country = country or _COUNTRY.get(panel.timezone)
    years = range(times[0].year, times[-1].year + 1)
    holiday, school = np.zeros(n_steps), np.zeros(n_steps)
    if country is not None:
        public = holidays.country_holidays(country, subdiv=subdiv, years=years)
        holiday = _on_days(days, public)
        if subdiv and "school" in holidays.country_holidays(
                country, subdiv=subdiv).supported_categories:
            school = _on_days(days, holidays.country_holidays(
                country, subdiv=subdiv, years=years, categories=("school",)))
    return Grid(rate=rate, latest=last_observed(rate), slots=panel.week_slots(n_steps),
                holiday=holiday, school=school,
                event=_event_flags(panel, events, times.to_pydatetime(), days),
                log_capacity=np.log1p(panel.capacity), capacity=panel.capacity,
                lot_stats=lot_stats)


def _event_flags(panel: Panel, events: Sequence[Event | DatedEvent], times: Sequence[datetime],
                 days: NDArray[np.object_]) -> NDArray[np.float64]:
    """1 where an event is on at a lot (from an hour before it starts to its end): the city
    config's events on each day they take place, the console's in their window."""
    flags = np.zeros((len(panel.lot_ids), len(times)))
    row = {lot: index for index, lot in enumerate(panel.lot_ids)}
    zone = ZoneInfo(panel.timezone)
    stamps = np.array([moment.timestamp() for moment in times])
    calendar_days = sorted(set(days))
    for event in events:
        lots = np.array([row[lot] for lot in event.lots if lot in row], dtype=np.int64)
        if not lots.size:
            continue
        for start, end in event.windows(calendar_days, zone):  # end after start
            on = (stamps >= (start - _EVENT_LEAD).timestamp()) & (stamps < end.timestamp())
            flags[np.ix_(lots, np.nonzero(on)[0])] = 1.0
    return flags


def _on_days(days: NDArray[np.object_], calendar: holidays.HolidayBase) -> NDArray[np.float64]:
    """1.0 for each entry of ``days`` that is in ``calendar``."""
    known: dict[date, float] = {}
    for day in days:
        if day not in known:
            known[day] = float(day in calendar)
    return np.array([known[day] for day in days], dtype=np.float64)


def pooled_profile(rate: NDArray[np.float64], slots: NDArray[np.int64],
                   profile: NDArray[np.float64]) -> NDArray[np.float64]:
    """The free rate by day type (Monday to Friday, Saturday, Sunday) and 15-minute slot,
    smoothed over the neighbouring slots, per week slot: five times the data of a weekday's
    own slot. Where it has no value, ``profile``."""
    day = slots // DAY_SLOTS
    kind = np.where(day < 5, 0, day - 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN slot: NaN
        by_kind = _per_group(rate, kind * DAY_SLOTS + slots % DAY_SLOTS, 3 * DAY_SLOTS,
                             np.nanmean)
    days = by_kind.reshape(rate.shape[0], 3, DAY_SLOTS)
    padded = np.concatenate([days[:, :, -1:], days, days[:, :, :1]], axis=2)
    smooth = (padded[:, :, :-2] + 2 * padded[:, :, 1:-1] + padded[:, :, 2:]) / 4
    smooth = np.where(np.isfinite(smooth), smooth, days)
    week = np.arange(SLOTS_PER_WEEK)
    week_day = week // DAY_SLOTS
    result = smooth[:, np.where(week_day < 5, 0, week_day - 4), week % DAY_SLOTS]
    return np.asarray(np.where(np.isfinite(result), result, profile), dtype=np.float64)


def lot_statistics(rate: NDArray[np.float64], profile: NDArray[np.float64],
              slots: NDArray[np.int64], steps: NDArray[np.int64]) -> LotStats:
    """Each lot's statistics (``LotStats``) from its rates and ``profile``; the decay for
    each of ``steps`` by least squares, in [0, 1], from at least 50 pairs."""
    deviation = rate - profile[:, slots]
    n_steps = rate.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a lot without data: NaN
        spread = np.nanstd(deviation, axis=1)
        volatility = (np.nanmean(np.abs(np.diff(rate, axis=1)), axis=1) if n_steps > 1
                      else np.full(rate.shape[0], np.nan))
        level = np.nanmean(profile, axis=1)
        decay = []
        for step in steps:
            now = deviation[:, :max(n_steps - step, 0)]
            later = deviation[:, step:]
            both = np.isfinite(now) & np.isfinite(later)
            cross = np.where(both, now * later, 0.0).sum(axis=1)
            square = np.where(both, now * now, 0.0).sum(axis=1)
            decay.append(np.where(both.sum(axis=1) >= 50,
                                  np.clip(cross / np.maximum(square, 1e-12), 0.0, 1.0),
                                  np.nan))
    return LotStats(spread, volatility, level,
                    np.column_stack(decay) if decay else np.empty((rate.shape[0], 0)))
