"""Gradient-boosting forecaster: one model across lots on the free rate, with a 10-90 % interval.

The model learns the residual of the profile + last anomaly forecast (``ProfileAnomaly``): the
target of an example is the free rate ``horizon`` minutes after an origin minus that baseline's
forecast, and the features describe only what is known at the origin (the latest free rate, its
recent changes and age, the mean deviation from the profile over the last 2 and 6 hours and the
deviation at the target slot a day earlier), the profile at the origin and the target slot, the
baseline forecast, the calendar of the target time (weekday, time of day, public holiday) and
the lot's size (log capacity). As
every feature is a rate or a calendar value, a lot unseen in training gets forecasts as soon as
it has a profile.

Training examples are (lot, origin, horizon) triples drawn from the history. The profile used
for an example is computed from whole weeks *before* the origin's week only (an expanding
window), so the features of every training example use only data up to its origin, as at
forecast time; the decay of the deviation comes from a ``ProfileAnomaly`` fitted on the whole
history (it is tuned out of sample on the history's last days).

Three ``HistGradientBoostingRegressor`` are fitted: the median of the residual (absolute error
loss, the point forecast) on all examples, and its 10 % and 90 % quantiles (quantile loss, the
interval) on the examples before the last ``calibration_days``; on those held-out days one
factor scales the interval about the median so that it covers 80 % of them (quantile models
are over-confident out of sample). ``prob_space`` reads the probability of at least one free
space from a normal predictive distribution centred on the point forecast with the spread of
the interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Self

import holidays
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.ensemble import HistGradientBoostingRegressor

from forecasting._baselines import Forecaster, ProfileAnomaly, horizon_steps, last_observed
from forecasting._data import SLOTS_PER_WEEK, STEP, STEP_MINUTES, Panel

__all__ = ["FEATURES", "GradientBoostingForecaster"]

_DAY_SLOTS = 24 * 60 // STEP_MINUTES
_Z90 = 1.2815515655446004  # standard normal 90 % quantile
# Country of the public-holiday flag for a panel's time zone (no entry: no holiday flag).
_COUNTRY = {"Europe/Berlin": "DE", "Europe/Busingen": "DE", "Europe/London": "GB",
            "Europe/Vienna": "AT", "Europe/Zurich": "CH", "Europe/Amsterdam": "NL"}

FEATURES = ("rate_now", "age_steps", "change_15", "change_30", "change_60", "profile_origin",
            "profile_target", "baseline", "deviation_now", "weekday", "tod_sin", "tod_cos",
            "horizon", "holiday", "log_capacity", "deviation_mean_2h", "deviation_mean_6h",
            "deviation_yesterday")


@dataclass(frozen=True)
class _Grid:
    """What the features need of a panel, computed once per call."""

    rate: NDArray[np.float64]
    latest: NDArray[np.int64]
    slots: NDArray[np.int64]
    holiday: NDArray[np.float64]
    log_capacity: NDArray[np.float64]


class GradientBoostingForecaster(Forecaster):
    """Histogram gradient boosting on the residual of the profile + last anomaly forecast.

    ``horizons`` (minutes) are the horizons of the training examples; other horizons are
    forecast too (the horizon is a feature) but less reliably. ``max_samples`` caps the number
    of training examples (drawn at random with ``random_state``). ``min_profile_weeks`` is the
    number of whole weeks of history before an origin's week needed for it to be a training
    origin (fewer are used if the history is too short). Training origins need an observation
    at most ``max_age`` minutes old (forecasts from staler data are still made).
    ``country``/``subdiv`` choose the public holidays (``holidays`` package); by default the
    country follows the panel's time zone (Europe/Berlin: DE). ``calibration_days`` (0: none)
    is the held-out tail of the history on which the interval is calibrated.
    """

    def __init__(self, max_iter: int = 200, learning_rate: float = 0.05,
                 max_leaf_nodes: int = 31, min_samples_leaf: int = 40,
                 l2_regularization: float = 0.0,
                 horizons: tuple[int, ...] = (15, 30, 60, 120),
                 max_samples: int = 60_000, min_profile_weeks: int = 2, max_age: int = 30,
                 calibration_days: int = 14,
                 country: str | None = None, subdiv: str | None = None,
                 random_state: int = 0) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.horizons = horizons
        self.max_samples = max_samples
        self.min_profile_weeks = min_profile_weeks
        self.max_age = max_age
        self.calibration_days = calibration_days
        self.country = country
        self.subdiv = subdiv
        self.random_state = random_state

    # --- fit -----------------------------------------------------------------------------

    def fit(self, history: Panel) -> Self:
        """Build (lot, origin, horizon) examples from ``history`` and fit the three models."""
        if not self.horizons:
            raise ValueError("horizons must not be empty")
        steps_list = [horizon_steps(horizon) for horizon in self.horizons]
        if self.calibration_days < 0:
            raise ValueError(f"calibration_days must be >= 0: {self.calibration_days}")
        if self.max_age < 0:
            raise ValueError(f"max_age must be >= 0: {self.max_age}")
        if self.max_samples < 100:
            raise ValueError(f"max_samples must be >= 100: {self.max_samples}")
        super().fit(history)
        self.baseline_ = ProfileAnomaly().fit(history)
        grid = self._grid(history, history.n_steps)
        rng = np.random.default_rng(self.random_state)
        max_age = self.max_age // STEP_MINUTES

        # Expanding window: origins in week w use a profile from weeks before w only.
        n_weeks = max(1, math.ceil(history.n_steps / SLOTS_PER_WEEK))
        first = max(min(self.min_profile_weeks, n_weeks - 1), 0)
        candidates: list[tuple[NDArray[np.int64], NDArray[np.int64], int]] = []
        for steps in steps_list:
            stop = history.n_steps - steps
            if stop <= first * SLOTS_PER_WEEK:
                continue
            positions = np.arange(first * SLOTS_PER_WEEK, stop)
            latest = grid.latest[:, positions]
            usable = (np.isfinite(grid.rate[:, positions + steps]) & (latest >= 0)
                      & (positions[None, :] - latest <= max_age))
            lots, columns = np.nonzero(usable)
            candidates.append((lots, positions[columns], steps))
        total = sum(lots.size for lots, _, _ in candidates)
        if total == 0:
            raise ValueError("the history has no training example: it needs data in more than "
                             "one week with observations after the origins")
        keep = min(1.0, self.max_samples / total)
        examples: list[tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]] = []
        for lots, positions, steps in candidates:
            chosen = rng.random(lots.size) < keep
            examples.append((lots[chosen], positions[chosen],
                             np.full(int(chosen.sum()), steps, dtype=np.int64)))
        lots = np.concatenate([part[0] for part in examples])
        positions = np.concatenate([part[1] for part in examples])
        steps_all = np.concatenate([part[2] for part in examples])

        features = np.empty((lots.size, len(FEATURES)))
        baseline = np.empty(lots.size)
        weeks = positions // SLOTS_PER_WEEK
        for week in np.unique(weeks):
            rows = np.nonzero(weeks == week)[0]
            stop = int(week) * SLOTS_PER_WEEK
            # Without an earlier week there is no profile: the baseline is then persistence.
            profile = (self.baseline_._profile(grid.rate[:, :stop], grid.slots[:stop]) if stop
                       else np.full((len(history.lot_ids), SLOTS_PER_WEEK), np.nan))
            features[rows], baseline[rows] = self._features(
                grid, profile, lots[rows], positions[rows], steps_all[rows])
        target = grid.rate[lots, positions + steps_all] - baseline
        finite = np.isfinite(target)
        features, target = features[finite], target[finite]
        # A column with no value at all (no profile in a short history) breaks the binning;
        # constant, it is never split on, so the forecast ignores it.
        features[:, ~np.isfinite(features).any(axis=0)] = 0.0
        if target.size == 0:
            raise ValueError("the history has no training example with a baseline forecast")
        self.n_train_examples_ = int(target.size)
        self.models_ = {"p50": self._regressor("absolute_error", None).fit(features, target)}
        # The quantile models learn on all but the last calibration_days of origins; on those
        # the interval is widened (or narrowed) about the median until it covers 80 %.
        origins = positions[finite]
        held = origins >= history.n_steps - self.calibration_days * _DAY_SLOTS
        if self.calibration_days == 0 or held.sum() < 100 or (~held).sum() < 100:
            held = np.zeros(target.size, dtype=bool)
        for name, quantile in (("p10", 0.1), ("p90", 0.9)):
            self.models_[name] = self._regressor("quantile", quantile).fit(
                features[~held], target[~held])
        self.interval_scale_ = 1.0
        if held.any():
            middle = self.models_["p50"].predict(features[held])
            low = self.models_["p10"].predict(features[held]) - middle
            high = self.models_["p90"].predict(features[held]) - middle
            error = target[held] - middle
            # The smallest scale covering 80 %: per example the scale it needs, 80 % quantile.
            needed = np.where(error < 0, error / np.minimum(low, -1e-9),
                              error / np.maximum(high, 1e-9))
            self.interval_scale_ = float(np.quantile(np.maximum(needed, 0.0), 0.8))
        return self

    def _regressor(self, loss: str, quantile: float | None) -> HistGradientBoostingRegressor:
        extra = {} if quantile is None else {"quantile": quantile}
        return HistGradientBoostingRegressor(
            loss=loss, max_iter=self.max_iter, learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization, early_stopping=False,
            random_state=self.random_state, **extra)

    # --- predict -------------------------------------------------------------------------

    def predict(self, panel: Panel, origins: ArrayLike, horizon: int) -> NDArray[np.float64]:
        """Free spaces ``horizon`` minutes after each origin; (n_lots, n_origins)."""
        return self._quantiles(panel, origins, horizon, ("p50",))[0]

    def predict_interval(self, panel: Panel, origins: ArrayLike, horizon: int) -> tuple[
            NDArray[np.float64], NDArray[np.float64]]:
        """The 10 % and 90 % quantiles of the free spaces; two (n_lots, n_origins) arrays."""
        _, low, high = self._quantiles(panel, origins, horizon, ("p50", "p10", "p90"))
        return low, high

    def prob_space(self, panel: Panel, origins: ArrayLike, horizon: int) -> NDArray[np.float64]:
        """Probability that at least one space is free ``horizon`` minutes after each origin.

        A normal predictive distribution of the free spaces, centred on the point forecast with
        the spread of the 10-90 % interval, gives P(free >= 0.5) (a count, so >= 1)."""
        point, low, high = self._quantiles(panel, origins, horizon, ("p50", "p10", "p90"))
        sigma = np.maximum((high - low) / (2 * _Z90), 0.05)
        z = (point - 0.5) / sigma
        erf = np.vectorize(math.erf, otypes=[np.float64])
        probability = 0.5 * (1.0 + erf(z / math.sqrt(2.0)))
        return np.asarray(np.where(np.isfinite(point), probability, np.nan), dtype=np.float64)

    def _quantiles(self, panel: Panel, origins: ArrayLike, horizon: int,
                   names: tuple[str, ...]) -> list[NDArray[np.float64]]:
        positions, steps = self._check(panel, origins, horizon)
        n_lots = panel.free.shape[0]
        grid = self._grid(panel, max(panel.n_steps, int(positions.max(initial=0)) + steps + 1),
                          stop=positions.max(initial=0) + 1)
        lots = np.repeat(np.arange(n_lots), positions.size)
        where = np.tile(positions, n_lots)
        features, baseline = self._features(grid, self.baseline_.profile_, lots, where,
                                            np.full(lots.size, steps, dtype=np.int64))
        results: list[NDArray[np.float64]] = []
        residuals: list[NDArray[np.float64]] = []
        for name in names:
            residual = (self.models_[name].predict(features) if lots.size
                        else np.empty(0))
            residuals.append(residual)
        if len(residuals) == 3:
            middle = residuals[0]
            residuals = [middle, middle + self.interval_scale_ * (residuals[1] - middle),
                         middle + self.interval_scale_ * (residuals[2] - middle)]
        for residual in residuals:
            rate = np.clip(baseline + residual, 0.0, 1.0).reshape(n_lots, positions.size)
            results.append(rate * panel.capacity[:, None])
        if len(results) == 3:
            # Quantile crossing: keep p10 <= point <= p90.
            stacked = np.sort(np.stack(results), axis=0)
            results = [stacked[1], stacked[0], stacked[2]]
        return [np.asarray(result, dtype=np.float64) for result in results]

    # --- features ------------------------------------------------------------------------

    def _grid(self, panel: Panel, n_steps: int, stop: int | None = None) -> _Grid:
        """Rates and calendar of ``panel`` over ``n_steps`` positions; data after ``stop``
        (exclusive) are ignored."""
        rate = panel.rate()
        if stop is not None:
            rate = rate[:, :stop]
        times = pd.date_range(panel.start, periods=n_steps, freq=STEP).tz_convert(
            panel.timezone)
        days = times.normalize().date
        country = self.country or _COUNTRY.get(panel.timezone)
        holiday = np.zeros(n_steps)
        if country is not None:
            calendar = holidays.country_holidays(
                country, subdiv=self.subdiv,
                years=range(times[0].year, times[-1].year + 1))
            known: dict[date, bool] = {}
            for index, day in enumerate(days):
                if day not in known:
                    known[day] = day in calendar
                holiday[index] = known[day]
        return _Grid(rate=rate, latest=last_observed(rate), slots=panel.week_slots(n_steps),
                     holiday=holiday, log_capacity=np.log1p(panel.capacity))

    def _features(self, grid: _Grid, profile: NDArray[np.float64], lots: NDArray[np.int64],
                  positions: NDArray[np.int64], steps: NDArray[np.int64]) -> tuple[
            NDArray[np.float64], NDArray[np.float64]]:
        """Features of (lot, origin, steps) examples and the baseline forecast (a rate),
        from ``grid.rate[:, :origin + 1]`` only."""
        latest = grid.latest[lots, positions]
        seen = latest >= 0
        source = np.maximum(latest, 0)
        now = np.where(seen, grid.rate[lots, source], np.nan)
        age = np.where(seen, positions - latest, np.nan)

        def back(lag: int) -> NDArray[np.float64]:
            earlier = positions - lag
            index = grid.latest[lots, np.maximum(earlier, 0)]
            valid = (earlier >= 0) & (index >= 0)
            return np.where(valid, grid.rate[lots, np.maximum(index, 0)], np.nan)

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
        deviation_grid = grid.rate - profile[:, grid.slots[:grid.rate.shape[1]]]
        finite = np.isfinite(deviation_grid)
        sums = np.concatenate([np.zeros((finite.shape[0], 1)),
                               np.cumsum(np.where(finite, deviation_grid, 0.0), axis=1)], axis=1)
        counts = np.concatenate([np.zeros((finite.shape[0], 1)),
                                 np.cumsum(finite, axis=1)], axis=1)

        def mean_back(window: int) -> NDArray[np.float64]:
            end = positions + 1
            begin = np.maximum(end - window, 0)
            n = counts[lots, end] - counts[lots, begin]
            total = sums[lots, end] - sums[lots, begin]
            return np.where(n > 0, total / np.maximum(n, 1), np.nan)

        yesterday = targets - _DAY_SLOTS
        ok = (yesterday >= 0) & (yesterday <= positions)
        dev_yesterday = np.where(ok, deviation_grid[lots, np.clip(yesterday, 0, None)], np.nan)
        angle = 2 * np.pi * (target_slot % _DAY_SLOTS) / _DAY_SLOTS
        columns = [now, age, now - back(1), now - back(2), now - back(4), profile_origin,
                   profile_target, baseline, deviation, (target_slot // _DAY_SLOTS),
                   np.sin(angle), np.cos(angle), steps * float(STEP_MINUTES),
                   grid.holiday[targets], grid.log_capacity[lots], mean_back(8), mean_back(24),
                   dev_yesterday]
        return (np.column_stack([np.asarray(c, dtype=np.float64) for c in columns]),
                np.asarray(baseline, dtype=np.float64))
