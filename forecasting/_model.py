"""Gradient-boosting forecaster: one model across lots on the free rate, with a 10-90 % interval.

The model learns the residual of the profile + last anomaly forecast (``ProfileAnomaly``): the
target of an example is the free rate ``horizon`` minutes after an origin minus that baseline's
forecast. The features describe only what is known at the origin: the latest free rate and its
recent changes, the deviation from the lot's profile (now, its change, its mean over the last
2 h, 6 h and 3 days, at the target slot one and 1-7 days and 1-3 weeks earlier, and how it
changed 4, 8 and 9 hours before the forecast window: the cars that came then leave now), the
same deviation averaged over all lots and the ratio of all cars parked to the profile's (a busy
day is busy everywhere), the profile at the origin and the target slot, a smoother profile by
day type (Monday to Friday pooled, Saturday, Sunday) and the deviation from it, the baseline
forecast and a multiplicative variant of it, the calendar of the target time (weekday, time of
day, public and school holiday, an event at the lot from the city config), and the lot (log
capacity; spread of its deviation, volatility, level and how much of a deviation is left after
the horizon, with the forecast that decay gives). Every feature is a rate, a calendar value or
missing, so one model serves all lots, including lots it has never seen: their profiles and
statistics come from their own data before the first origin, as fit would have taken them (or
the mean profile of the known lots while they have too little).

Training examples are (lot, origin, horizon) triples drawn from the history, with an
observation at the origin. The profile for an example is computed from every week of the
history *except* the origin's week, so its features see the profile as out of sample as a
forecast does; the decay of the deviation comes from a ``ProfileAnomaly`` fitted on the whole
history (tuned out of sample on its last days).

Per training horizon two ``HistGradientBoostingRegressor`` (absolute and squared error loss)
learn the residual; their mean is the point forecast (another horizon uses the nearest one's
models, with the horizon as a feature). Two more, over all horizons, give its 10 % and 90 %
quantiles (quantile loss: the interval) and learn on the examples before the last
``calibration_days``; on those held-out days one factor per horizon scales the interval about
the median so that it covers 80 % of them (quantile models are over-confident out of sample).
``prob_space`` reads the probability of at least one free space from a normal predictive
distribution centred on the point forecast with the spread of the interval.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Self
from zoneinfo import ZoneInfo

import holidays
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.ensemble import HistGradientBoostingRegressor

from core.city import Event
from forecasting._baselines import (
    Forecaster,
    ProfileAnomaly,
    _per_group,
    horizon_steps,
    known_before_first,
    last_observed,
)
from forecasting._data import SLOTS_PER_WEEK, STEP, STEP_MINUTES, Panel

__all__ = ["FEATURES", "GradientBoostingForecaster"]

_DAY_SLOTS = 24 * 60 // STEP_MINUTES
_Z90 = 1.2815515655446004  # standard normal 90 % quantile
_MIN_HORIZON_EXAMPLES = 1000  # fewer: the nearest horizon's model forecasts it
_MIN_CALIBRATION_EXAMPLES = 50  # fewer: the interval scale over all horizons
# The quantile models only shape the interval (calibrated on held-out days afterwards): a
# random subset of this many examples and half the iterations at twice the learning rate
# cut their share of the fit time (~18 of ~44 s on 40 lots x 90 days) to ~5 s.
_QUANTILE_MAX_SAMPLES = 40_000
_ECHO_HOURS = (4, 8, 9)
_EVENT_LEAD = timedelta(hours=1)  # arrivals for an event begin before it does
# Country of the holiday flags for a panel's time zone (no entry: no holiday flags).
_COUNTRY = {"Europe/Berlin": "DE", "Europe/Busingen": "DE", "Europe/London": "GB",
            "Europe/Vienna": "AT", "Europe/Zurich": "CH", "Europe/Amsterdam": "NL"}

FEATURES = (
    "rate_now", "change_15", "change_30", "change_60", "profile_origin", "profile_target",
    "profile_change", "baseline", "ratio_forecast", "deviation_now", "deviation_change_30",
    "deviation_change_60", "deviation_mean_2h", "deviation_mean_6h", "deviation_mean_3d",
    "deviation_yesterday", "deviation_same_slot_7d", "deviation_last_week",
    "deviation_same_slot_3w", "city_deviation", "city_change_30", "city_change_60", "weekday",
    "tod_sin", "tod_cos", "horizon", "holiday", "school_holiday", "event", "log_capacity",
    "lot_deviation_spread", "lot_volatility", "lot_level", "lot_decay", "lot_forecast",
    "city_ratio", "pooled_target", "pooled_deviation", "pooled_forecast", "echo_4h", "echo_8h",
    "echo_9h",
)


@dataclass(frozen=True)
class _Grid:
    """What the features need of a panel, computed once per call."""

    rate: NDArray[np.float64]
    latest: NDArray[np.int64]
    slots: NDArray[np.int64]
    holiday: NDArray[np.float64]
    school: NDArray[np.float64]
    event: NDArray[np.float64]  # (n_lots, n_steps)
    log_capacity: NDArray[np.float64]
    capacity: NDArray[np.float64]
    lot_stats: NDArray[np.float64]  # (n_lots, 3 + decay steps): see _lot_stats


class GradientBoostingForecaster(Forecaster):
    """Histogram gradient boosting on the residual of the profile + last anomaly forecast.

    ``horizons`` (minutes) are the horizons of the training examples; other horizons are
    forecast too (the horizon is a feature) but less reliably. ``max_samples`` caps the number
    of training examples (drawn at random with ``random_state``). Training origins need an
    observation at most ``max_age`` minutes old (forecasts from staler data are still made).
    ``country``/``subdiv`` choose the public and school holidays (``holidays`` package); by
    default the country follows the panel's time zone (Europe/Berlin: DE) and school holidays,
    which German states set, need ``subdiv`` (e.g. ``"ST"``). ``events`` are the city
    config's events; the flag is set for a lot from an hour before an event to its end.
    ``calibration_days`` (0: none) is the held-out tail of the history on which the interval is
    calibrated.
    """

    def __init__(self, max_iter: int = 400, learning_rate: float = 0.03,
                 max_leaf_nodes: int = 31, min_samples_leaf: int = 80,
                 l2_regularization: float = 0.0,
                 horizons: tuple[int, ...] = (15, 30, 60, 120),
                 max_samples: int = 100_000, max_age: int = 0, calibration_days: int = 14,
                 country: str | None = None, subdiv: str | None = None,
                 events: Sequence[Event] = (), random_state: int = 0) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.horizons = horizons
        self.max_samples = max_samples
        self.max_age = max_age
        self.calibration_days = calibration_days
        self.country = country
        self.subdiv = subdiv
        self.events = events
        self.random_state = random_state

    # --- fit -----------------------------------------------------------------------------

    def fit(self, history: Panel) -> Self:
        """Build (lot, origin, horizon) examples from ``history`` and fit the models."""
        if not self.horizons:
            raise ValueError("horizons must not be empty")
        steps_list = sorted({horizon_steps(horizon) for horizon in self.horizons})
        if self.calibration_days < 0:
            raise ValueError(f"calibration_days must be >= 0: {self.calibration_days}")
        if self.max_age < 0:
            raise ValueError(f"max_age must be >= 0: {self.max_age}")
        if self.max_samples < 100:
            raise ValueError(f"max_samples must be >= 100: {self.max_samples}")
        super().fit(history)
        self.baseline_ = ProfileAnomaly().fit(history)
        rate = history.rate()
        self.decay_steps_ = np.array(steps_list, dtype=np.int64)
        self.lot_stats_ = _lot_stats(rate, self.baseline_.profile_, history.week_slots(),
                                     self.decay_steps_)
        self.pooled_profile_ = _pooled_profile(rate, history.week_slots(),
                                               self.baseline_.profile_)
        grid = self._grid(history, history.n_steps, lot_stats=self.lot_stats_)
        lots, positions, steps = self._examples(grid, steps_list)

        features = np.empty((lots.size, len(FEATURES)))
        baseline = np.empty(lots.size)
        weeks = positions // SLOTS_PER_WEEK
        for week in np.unique(weeks):
            rows = np.nonzero(weeks == week)[0]
            begin = int(week) * SLOTS_PER_WEEK
            others = rate.copy()
            others[:, begin:begin + SLOTS_PER_WEEK] = np.nan
            profile = self.baseline_._profile(others, grid.slots[:history.n_steps])
            pooled = _pooled_profile(others, grid.slots[:history.n_steps], profile)
            features[rows], baseline[rows] = self._features(
                grid, profile, pooled, lots[rows], positions[rows], steps[rows])
        target = rate[lots, positions + steps] - baseline
        finite = np.isfinite(target)
        features, target, origins, steps = (features[finite], target[finite],
                                            positions[finite], steps[finite])
        if target.size == 0:
            raise ValueError("the history has no training example with a baseline forecast")
        self.n_train_examples_ = int(target.size)
        # Per horizon: a shared model spends its splits on the long horizons' large residuals.
        trained = [int(step) for step in np.unique(steps)
                   if (steps == step).sum() >= _MIN_HORIZON_EXAMPLES]
        self.medians_ = {step: self._centre(features[steps == step], target[steps == step])
                         for step in trained}
        if not self.medians_:
            self.medians_ = {int(steps[0]): self._centre(features, target)}
        # The quantile models learn on all but the last calibration_days of origins; on those
        # the interval is widened (or narrowed) about the median until it covers 80 %.
        held = origins >= history.n_steps - self.calibration_days * _DAY_SLOTS
        if self.calibration_days == 0 or held.sum() < 100 or (~held).sum() < 100:
            held = np.zeros(target.size, dtype=bool)
        rows = np.nonzero(~held)[0]
        if rows.size > _QUANTILE_MAX_SAMPLES:
            rows = np.sort(np.random.default_rng(self.random_state).choice(
                rows, _QUANTILE_MAX_SAMPLES, replace=False))
        self.quantiles_ = {name: self._fitted("quantile", quantile, features[rows],
                                              target[rows])
                           for name, quantile in (("p10", 0.1), ("p90", 0.9))}
        self.interval_scale_, self.interval_scales_ = 1.0, {}
        if held.any():
            middle, low, high = self._residuals(features[held], steps[held], interval=True)
            error = target[held] - middle
            # The smallest scale covering 80 %: per example the scale it needs, 80 % quantile;
            # per horizon where it has enough held-out examples, else over all of them.
            needed = np.maximum(np.where(error < 0, error / np.minimum(low - middle, -1e-9),
                                         error / np.maximum(high - middle, 1e-9)), 0.0)
            self.interval_scale_ = float(np.quantile(needed, 0.8))
            self.interval_scales_ = {
                int(step): float(np.quantile(needed[steps[held] == step], 0.8))
                for step in np.unique(steps[held])
                if (steps[held] == step).sum() >= _MIN_CALIBRATION_EXAMPLES}
        return self

    def _examples(self, grid: _Grid, steps_list: list[int]) -> tuple[
            NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """(lot, origin, steps) of the training examples, at most ``max_samples`` of them."""
        n_steps = grid.rate.shape[1]
        max_age = self.max_age // STEP_MINUTES
        candidates: list[tuple[NDArray[np.int64], NDArray[np.int64], int]] = []
        for steps in steps_list:
            positions = np.arange(max(n_steps - steps, 0))
            latest = grid.latest[:, positions]
            usable = (np.isfinite(grid.rate[:, positions + steps]) & (latest >= 0)
                      & (positions[None, :] - latest <= max_age))
            lots, columns = np.nonzero(usable)
            candidates.append((lots, positions[columns], steps))
        total = sum(lots.size for lots, _, _ in candidates)
        if total == 0:
            raise ValueError("the history has no training example: it needs observations at "
                             "an origin and a horizon later")
        keep = min(1.0, self.max_samples / total)
        rng = np.random.default_rng(self.random_state)
        chosen = [rng.random(lots.size) < keep for lots, _, _ in candidates]
        return (np.concatenate([lots[c] for (lots, _, _), c in zip(candidates, chosen,
                                                                    strict=True)]),
                np.concatenate([origins[c] for (_, origins, _), c in zip(candidates, chosen,
                                                                         strict=True)]),
                np.concatenate([np.full(int(c.sum()), steps, dtype=np.int64)
                                for (_, _, steps), c in zip(candidates, chosen, strict=True)]))

    def _fitted(self, loss: str, quantile: float | None, features: NDArray[np.float64],
                target: NDArray[np.float64]) -> HistGradientBoostingRegressor:
        extra = {} if quantile is None else {"quantile": quantile}
        max_iter, learning_rate = self.max_iter, self.learning_rate
        if quantile is not None:  # see _QUANTILE_MAX_SAMPLES
            max_iter = max(1, self.max_iter // 2)
            learning_rate = self.learning_rate * self.max_iter / max_iter
        model = HistGradientBoostingRegressor(
            loss=loss, max_iter=max_iter, learning_rate=learning_rate,
            max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization, early_stopping=False,
            random_state=self.random_state, **extra)
        # A column with no value at all (e.g. last week's deviation in a short history) breaks
        # the binning; constant, it is never split on, so the forecast ignores it.
        empty = ~np.isfinite(features).any(axis=0)
        if empty.any():
            features = features.copy()
            features[:, empty] = 0.0
        return model.fit(features, target)

    def _centre(self, features: NDArray[np.float64], target: NDArray[np.float64]) -> tuple[
            HistGradientBoostingRegressor, ...]:
        """The point forecast's models: absolute and squared error, averaged (the mean of the
        two beats either alone on held-out data at every horizon)."""
        return tuple(self._fitted(loss, None, features, target)
                     for loss in ("absolute_error", "squared_error"))

    def _residuals(self, features: NDArray[np.float64], steps: NDArray[np.int64], *,
                   interval: bool) -> list[NDArray[np.float64]]:
        """The median residual (each example by the model of its nearest training horizon)
        and, with ``interval``, the uncalibrated 10 % and 90 % quantiles."""
        trained = np.array(sorted(self.medians_))
        nearest = trained[np.abs(steps[:, None] - trained[None, :]).argmin(axis=1)]
        middle = np.empty(steps.size)
        for step in np.unique(nearest):
            rows = nearest == step
            middle[rows] = np.mean([model.predict(features[rows])
                                    for model in self.medians_[int(step)]], axis=0)
        if not interval:
            return [middle]
        return [middle] + [self.quantiles_[name].predict(features) for name in ("p10", "p90")]

    # --- predict -------------------------------------------------------------------------

    def predict(self, panel: Panel, origins: ArrayLike, horizon: int) -> NDArray[np.float64]:
        """Free spaces ``horizon`` minutes after each origin; (n_lots, n_origins)."""
        return self._quantiles(panel, origins, horizon, interval=False)[0]

    def predict_interval(self, panel: Panel, origins: ArrayLike, horizon: int) -> tuple[
            NDArray[np.float64], NDArray[np.float64]]:
        """The 10 % and 90 % quantiles of the free spaces; two (n_lots, n_origins) arrays."""
        _, low, high = self._quantiles(panel, origins, horizon, interval=True)
        return low, high

    def prob_space(self, panel: Panel, origins: ArrayLike, horizon: int) -> NDArray[np.float64]:
        """Probability that at least one space is free ``horizon`` minutes after each origin.

        A normal predictive distribution of the free spaces, centred on the point forecast with
        the spread of the 10-90 % interval, gives P(free >= 0.5) (a count, so >= 1)."""
        return self.predict_all(panel, origins, horizon)[3]

    def predict_all(self, panel: Panel, origins: ArrayLike, horizon: int) -> tuple[
            NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """``predict``, ``predict_interval`` and ``prob_space`` from one pass over the
        features (many origins at once cost a third); four (n_lots, n_origins) arrays."""
        point, low, high = self._quantiles(panel, origins, horizon, interval=True)
        sigma = np.maximum((high - low) / (2 * _Z90), 0.05)
        z = (point - 0.5) / sigma
        erf = np.vectorize(math.erf, otypes=[np.float64])
        probability = 0.5 * (1.0 + erf(z / math.sqrt(2.0)))
        return point, low, high, np.asarray(np.where(np.isfinite(point), probability, np.nan),
                                            dtype=np.float64)

    def features(self, panel: Panel, origins: ArrayLike, horizon: int) -> pd.DataFrame:
        """The model's inputs for every lot and origin (rows lot by lot, ``FEATURES``
        columns, plus ``lot_id`` and ``origin``): what a forecast was made from."""
        positions, steps = self._check(panel, origins, horizon)
        features, _ = self._design(panel, positions, steps)
        frame = pd.DataFrame(features, columns=list(FEATURES))
        frame.insert(0, "origin", np.tile(positions, len(panel.lot_ids)))
        frame.insert(0, "lot_id", np.repeat(panel.lot_ids, positions.size))
        return frame

    def _design(self, panel: Panel, positions: NDArray[np.int64], steps: int) -> tuple[
            NDArray[np.float64], NDArray[np.float64]]:
        """Features and baseline forecast of every lot (outer) and origin (inner). A lot
        unseen in fit gets its profiles and statistics from its data before the first
        origin, as fit would have from the same data."""
        n_lots = panel.free.shape[0]
        stop = int(positions.max(initial=0)) + 1
        known = known_before_first(positions)
        profile = self.baseline_.profiles(panel, known)
        rows = self._fitted_rows(panel)
        pooled = self.pooled_profile_[np.maximum(rows, 0)]
        stats = self.lot_stats_[np.maximum(rows, 0)]
        new = rows < 0
        if new.any():
            rate, slots = panel.rate()[new, :known], panel.week_slots(known)
            pooled[new] = _pooled_profile(rate, slots, profile[new])
            stats[new] = _lot_stats(rate, profile[new], slots, self.decay_steps_)
        grid = self._grid(panel, max(panel.n_steps, stop + steps), stop=stop, lot_stats=stats)
        lots = np.repeat(np.arange(n_lots), positions.size)
        where = np.tile(positions, n_lots)
        return self._features(grid, profile, pooled, lots, where,
                              np.full(lots.size, steps, dtype=np.int64))

    def _quantiles(self, panel: Panel, origins: ArrayLike, horizon: int, *,
                   interval: bool) -> list[NDArray[np.float64]]:
        positions, steps = self._check(panel, origins, horizon)
        n_lots = panel.free.shape[0]
        features, baseline = self._design(panel, positions, steps)
        if not baseline.size:
            empty = np.empty((n_lots, 0))
            return [empty] * (3 if interval else 1)
        step_all = np.full(baseline.size, steps, dtype=np.int64)
        residuals = self._residuals(features, step_all, interval=interval)
        if interval:
            middle = residuals[0]
            scale = self.interval_scales_.get(steps, self.interval_scale_)
            residuals = [middle] + [middle + scale * (quantile - middle)
                                    for quantile in residuals[1:]]
        results = [np.clip(baseline + residual, 0.0, 1.0).reshape(n_lots, positions.size)
                   * panel.capacity[:, None] for residual in residuals]
        # Free spaces are counts: the best point forecast under absolute error is a whole
        # number (a median of counts), which measurably helps small lots.
        results[0] = np.round(results[0])
        if interval:
            # Quantile crossing: keep p10 <= point <= p90.
            low, high = np.minimum(results[1], results[2]), np.maximum(results[1], results[2])
            results[1], results[2] = np.minimum(low, results[0]), np.maximum(high, results[0])
        return [np.asarray(result, dtype=np.float64) for result in results]

    # --- features ------------------------------------------------------------------------

    def _grid(self, panel: Panel, n_steps: int, *, lot_stats: NDArray[np.float64],
              stop: int | None = None) -> _Grid:
        """Rates and calendar of ``panel`` over ``n_steps`` positions, with the statistics of
        its lots (``_lot_stats``, a row per lot); data after ``stop`` (exclusive) are
        ignored."""
        rate = panel.rate()
        if stop is not None:
            rate = rate[:, :stop]
        times = pd.date_range(panel.start, periods=n_steps, freq=STEP).tz_convert(
            panel.timezone)
        days = np.asarray(times.normalize().date)
        country = self.country or _COUNTRY.get(panel.timezone)
        years = range(times[0].year, times[-1].year + 1)
        holiday, school = np.zeros(n_steps), np.zeros(n_steps)
        if country is not None:
            public = holidays.country_holidays(country, subdiv=self.subdiv, years=years)
            holiday = _on_days(days, public)
            if self.subdiv and "school" in holidays.country_holidays(
                    country, subdiv=self.subdiv).supported_categories:
                school = _on_days(days, holidays.country_holidays(
                    country, subdiv=self.subdiv, years=years, categories=("school",)))
        return _Grid(rate=rate, latest=last_observed(rate), slots=panel.week_slots(n_steps),
                     holiday=holiday, school=school,
                     event=self._event_flags(panel, times.to_pydatetime(), days),
                     log_capacity=np.log1p(panel.capacity), capacity=panel.capacity,
                     lot_stats=lot_stats)

    def _event_flags(self, panel: Panel, times: Sequence[datetime],
                     days: NDArray[np.object_]) -> NDArray[np.float64]:
        """1 where an event is on at a lot (from an hour before it starts to its end)."""
        flags = np.zeros((len(panel.lot_ids), len(times)))
        row = {lot: index for index, lot in enumerate(panel.lot_ids)}
        zone = ZoneInfo(panel.timezone)
        stamps = np.array([moment.timestamp() for moment in times])
        for event in self.events:
            lots = np.array([row[lot] for lot in event.lots if lot in row], dtype=np.int64)
            if not lots.size:
                continue
            for day in sorted(set(days)):
                if not event.occurs_on(day):
                    continue
                start = datetime.combine(day, event.start, zone) - _EVENT_LEAD
                end = datetime.combine(day, event.end, zone)  # the config: end after start
                on = (stamps >= start.timestamp()) & (stamps < end.timestamp())
                flags[np.ix_(lots, np.nonzero(on)[0])] = 1.0
        return flags

    def _features(self, grid: _Grid, profile: NDArray[np.float64],
                  pooled: NDArray[np.float64], lots: NDArray[np.int64],
                  positions: NDArray[np.int64], steps: NDArray[np.int64]) -> tuple[
            NDArray[np.float64], NDArray[np.float64]]:
        """Features of (lot, origin, steps) examples and the baseline forecast (a rate),
        from ``grid.rate[:, :origin + 1]`` only."""
        latest = grid.latest[lots, positions]
        seen = latest >= 0
        source = np.maximum(latest, 0)
        now = np.where(seen, grid.rate[lots, source], np.nan)
        targets = positions + steps
        target_slot = grid.slots[targets]
        profile_origin = profile[lots, grid.slots[positions]]
        profile_target = profile[lots, target_slot]
        deviation = now - profile[lots, grid.slots[source]]
        decay = self.baseline_.decay_
        lead = targets - source
        factor = np.where(lead < decay.size, decay[np.minimum(lead, decay.size - 1)], 0.0)
        adjusted = np.where(np.isfinite(deviation), profile_target + factor * deviation,
                            profile_target)
        baseline = np.clip(np.where(np.isfinite(adjusted), adjusted, now), 0.0, 1.0)
        # Occupancy scaled by today's ratio to the profile: a busy day fills proportionally.
        ratio = 1 - (1 - profile_target) * (1 - now) / np.maximum(1 - profile_origin, 0.05)

        expected_rate = profile[:, grid.slots[:grid.rate.shape[1]]]
        deviations = grid.rate - expected_rate
        finite = np.isfinite(deviations)
        zero = np.zeros((finite.shape[0], 1))
        sums = np.concatenate([zero, np.cumsum(np.where(finite, deviations, 0.0), axis=1)],
                              axis=1)
        counts = np.concatenate([zero, np.cumsum(finite, axis=1)], axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no lot observed: NaN
            city = np.nanmean(deviations, axis=0)

        def latest_of(values: NDArray[np.float64], lag: int) -> NDArray[np.float64]:
            """The latest value at or before ``lag`` steps before the origin."""
            earlier = positions - lag
            index = grid.latest[lots, np.maximum(earlier, 0)]
            return np.where((earlier >= 0) & (index >= 0), values[lots, np.maximum(index, 0)],
                            np.nan)

        def mean_back(window: int) -> NDArray[np.float64]:
            end = positions + 1
            begin = np.maximum(end - window, 0)
            n = counts[lots, end] - counts[lots, begin]
            total = sums[lots, end] - sums[lots, begin]
            return np.where(n > 0, total / np.maximum(n, 1), np.nan)

        def at_target_before(period: int, times: int) -> NDArray[np.float64]:
            """Mean deviation at the target slot 1..times periods earlier (not after now)."""
            values = []
            for k in range(1, times + 1):
                earlier = targets - k * period
                ok = (earlier >= 0) & (earlier <= positions)
                values.append(np.where(ok, deviations[lots, np.clip(earlier, 0, None)], np.nan))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all missing: NaN
                return np.asarray(np.nanmean(np.stack(values), axis=0), dtype=np.float64)

        def city_change(lag: int) -> NDArray[np.float64]:
            return np.where(positions >= lag, city[positions] - city[positions - lag], np.nan)

        pooled_target = pooled[lots, target_slot]
        pooled_deviation = now - pooled[lots, grid.slots[source]]
        pooled_forecast = np.clip(pooled_target + factor * np.where(
            np.isfinite(pooled_deviation), pooled_deviation, 0.0), 0.0, 1.0)
        decay_steps = self.decay_steps_
        nearest = np.abs(steps[:, None] - decay_steps[None, :]).argmin(axis=1)
        lot_decay = grid.lot_stats[lots, 3 + nearest]
        lot_forecast = np.clip(profile_target + lot_decay * np.where(
            np.isfinite(deviation), deviation, 0.0), 0.0, 1.0)
        occupied = 1 - grid.rate
        expected = 1 - expected_rate
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no lot observed: NaN
            both = np.isfinite(occupied) & np.isfinite(expected)
            weight = grid.capacity[:, None] * both
            city_ratio = ((np.where(both, occupied, 0.0) * weight).sum(axis=0)
                          / (np.where(both, expected, 0.0) * weight).sum(axis=0))

        def echo(lag: int) -> NDArray[np.float64]:
            """How the deviation changed ``lag`` steps before the forecast window: the cars
            that came then leave now (dwell times cluster, e.g. a working day)."""
            begin, end = positions - lag, np.minimum(targets - lag, positions)
            ok = begin >= 0
            return np.where(ok, latest_of(deviations, lag) - np.where(
                ok, deviations[lots, np.clip(end, 0, None)], np.nan), np.nan)

        angle = 2 * np.pi * (target_slot % _DAY_SLOTS) / _DAY_SLOTS
        columns = [
            now, now - latest_of(grid.rate, 1), now - latest_of(grid.rate, 2),
            now - latest_of(grid.rate, 4), profile_origin, profile_target,
            profile_target - profile_origin, baseline, ratio, deviation,
            deviation - latest_of(deviations, 2), deviation - latest_of(deviations, 4),
            mean_back(8), mean_back(24), mean_back(3 * _DAY_SLOTS),
            at_target_before(_DAY_SLOTS, 1), at_target_before(_DAY_SLOTS, 7),
            at_target_before(SLOTS_PER_WEEK, 1), at_target_before(SLOTS_PER_WEEK, 3),
            city[positions], city_change(2), city_change(4),
            target_slot // _DAY_SLOTS, np.sin(angle), np.cos(angle),
            steps * float(STEP_MINUTES), grid.holiday[targets], grid.school[targets],
            grid.event[lots, targets], grid.log_capacity[lots],
            grid.lot_stats[lots, 0], grid.lot_stats[lots, 1], grid.lot_stats[lots, 2],
            lot_decay, lot_forecast, city_ratio[positions], pooled_target, pooled_deviation,
            pooled_forecast, *(echo(hours * 4) for hours in _ECHO_HOURS),
        ]
        return (np.column_stack([np.asarray(c, dtype=np.float64) for c in columns]),
                np.asarray(baseline, dtype=np.float64))


def _pooled_profile(rate: NDArray[np.float64], slots: NDArray[np.int64],
                    profile: NDArray[np.float64]) -> NDArray[np.float64]:
    """The free rate by day type (Monday to Friday, Saturday, Sunday) and 15-minute slot,
    smoothed over the neighbouring slots, per week slot: five times the data of a weekday's
    own slot. Where it has no value, ``profile``."""
    day = slots // _DAY_SLOTS
    kind = np.where(day < 5, 0, day - 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN slot: NaN
        by_kind = _per_group(rate, kind * _DAY_SLOTS + slots % _DAY_SLOTS, 3 * _DAY_SLOTS,
                             np.nanmean)
    days = by_kind.reshape(rate.shape[0], 3, _DAY_SLOTS)
    padded = np.concatenate([days[:, :, -1:], days, days[:, :, :1]], axis=2)
    smooth = (padded[:, :, :-2] + 2 * padded[:, :, 1:-1] + padded[:, :, 2:]) / 4
    smooth = np.where(np.isfinite(smooth), smooth, days)
    week = np.arange(SLOTS_PER_WEEK)
    week_day = week // _DAY_SLOTS
    result = smooth[:, np.where(week_day < 5, 0, week_day - 4), week % _DAY_SLOTS]
    return np.asarray(np.where(np.isfinite(result), result, profile), dtype=np.float64)


def _lot_stats(rate: NDArray[np.float64], profile: NDArray[np.float64],
               slots: NDArray[np.int64], steps: NDArray[np.int64]) -> NDArray[np.float64]:
    """Per lot: the spread of its deviation from ``profile``, its mean step-to-step change,
    its mean profile level and, for each of ``steps``, how much of a deviation is left that
    many steps later (least squares, in [0, 1]); NaN for a lot without data."""
    deviation = rate - profile[:, slots]
    n_steps = rate.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a lot without data: NaN
        columns = [np.nanstd(deviation, axis=1),
                   np.nanmean(np.abs(np.diff(rate, axis=1)), axis=1) if n_steps > 1
                   else np.full(rate.shape[0], np.nan),
                   np.nanmean(profile, axis=1)]
        for step in steps:
            now = deviation[:, :max(n_steps - step, 0)]
            later = deviation[:, step:]
            both = np.isfinite(now) & np.isfinite(later)
            cross = np.where(both, now * later, 0.0).sum(axis=1)
            square = np.where(both, now * now, 0.0).sum(axis=1)
            columns.append(np.where(both.sum(axis=1) >= 50,
                                    np.clip(cross / np.maximum(square, 1e-12), 0.0, 1.0),
                                    np.nan))
    return np.column_stack(columns)


def _on_days(days: NDArray[np.object_], calendar: holidays.HolidayBase) -> NDArray[np.float64]:
    """1.0 for each entry of ``days`` that is in ``calendar``."""
    known: dict[date, float] = {}
    for day in days:
        if day not in known:
            known[day] = float(day in calendar)
    return np.array([known[day] for day in days], dtype=np.float64)
