"""The gradient-boosting forecaster: one model across lots on the free rate, with a 10-90 %
interval and the probability of a free space; it learns the residual of the profile + last
anomaly baseline from the features of ``forecasting._features``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.ensemble import HistGradientBoostingRegressor

from core.city import DatedEvent, Event
from forecasting._baselines import (
    Forecaster,
    ProfileAnomaly,
    horizon_steps,
    known_before_first,
)
from forecasting._data import SLOTS_PER_WEEK, STEP_MINUTES, Panel
from forecasting._features import (
    DAY_SLOTS,
    FEATURES,
    Examples,
    Grid,
    LotStats,
    feature_matrix,
    lot_statistics,
    panel_grid,
    pooled_profile,
)

__all__ = ["FEATURES", "GradientBoostingForecaster"]

_Z90 = 1.2815515655446004  # standard normal 90 % quantile
_MIN_HORIZON_EXAMPLES = 1000  # fewer: the nearest horizon's model forecasts it
_MIN_CALIBRATION_EXAMPLES = 50  # fewer: the interval scale over all horizons
# The quantile models only shape the interval (calibrated on held-out days afterwards): a
# random subset of this many examples and half the iterations at twice the learning rate
# cut their share of the fit time (~18 of ~44 s on 40 lots x 90 days) to ~5 s.
_QUANTILE_MAX_SAMPLES = 40_000


class GradientBoostingForecaster(Forecaster):
    """Histogram gradient boosting on the residual of the profile + last anomaly forecast.

    A training example is a (lot, origin, horizon) triple with an observation at the origin;
    its target is the free rate ``horizon`` later minus the forecast of ``ProfileAnomaly``
    (fitted on the whole history; the example's profiles leave out its origin's week). Per
    training horizon two regressors (absolute and squared error) give the point forecast as
    their mean; another horizon uses the nearest one's. Two quantile regressors over all
    horizons give the 10 % and 90 % quantiles, scaled about the median per horizon so that the
    interval covers 80 % of the last ``calibration_days``. ``prob_space`` reads P(free >= 1)
    from a normal distribution around the point forecast with the interval's spread.

    ``horizons`` (minutes) are the horizons of the training examples; other horizons are
    forecast too (the horizon is a feature) but less reliably. ``max_samples`` caps the number
    of training examples (drawn at random with ``random_state``). Training origins need an
    observation at most ``max_age`` minutes old (forecasts from staler data are still made).
    ``country``/``subdiv`` choose the public and school holidays (``holidays`` package); by
    default the country follows the panel's time zone (Europe/Berlin: DE) and school holidays,
    which German states set, need ``subdiv`` (e.g. ``"ST"``). ``events`` are the city
    config's events and the console's (``DatedEvent``, see ``forecasting.event_calendar``);
    the flag is set for a lot from an hour before an event to its end.
    ``calibration_days`` (0: none) is the held-out tail of the history on which the interval is
    calibrated.
    """

    def __init__(self, max_iter: int = 400, learning_rate: float = 0.03,
                 max_leaf_nodes: int = 31, min_samples_leaf: int = 80,
                 l2_regularization: float = 0.0,
                 horizons: tuple[int, ...] = (15, 30, 60, 120),
                 max_samples: int = 100_000, max_age: int = 0, calibration_days: int = 14,
                 country: str | None = None, subdiv: str | None = None,
                 events: Sequence[Event | DatedEvent] = (), random_state: int = 0) -> None:
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
        self.lot_stats_ = lot_statistics(rate, self.baseline_.profile_, history.week_slots(),
                                         self.decay_steps_)
        self.pooled_profile_ = pooled_profile(rate, history.week_slots(),
                                              self.baseline_.profile_)
        features, target, origins, steps = self._training_set(history, steps_list)
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
        held = origins >= history.n_steps - self.calibration_days * DAY_SLOTS
        if self.calibration_days == 0 or held.sum() < 100 or (~held).sum() < 100:
            held = np.zeros(target.size, dtype=bool)
        rows = np.nonzero(~held)[0]
        if rows.size > _QUANTILE_MAX_SAMPLES:
            rows = np.sort(np.random.default_rng(self.random_state).choice(
                rows, _QUANTILE_MAX_SAMPLES, replace=False))
        self.quantiles_ = {name: self._fitted("quantile", quantile, features[rows],
                                              target[rows])
                           for name, quantile in (("p10", 0.1), ("p90", 0.9))}
        self._calibrate(features[held], target[held], steps[held])
        return self

    def _training_set(self, history: Panel, steps_list: list[int]) -> tuple[
            NDArray[np.float64], NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
        """Features, target (the baseline's residual), origin and steps of the training
        examples. An example's profiles come from every week of ``history`` but its origin's:
        its features see them as out of sample as a forecast does."""
        rate = history.rate()
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
            pooled = pooled_profile(others, grid.slots[:history.n_steps], profile)
            features[rows], baseline[rows] = self._features(
                grid, profile, pooled, lots[rows], positions[rows], steps[rows])
        target = rate[lots, positions + steps] - baseline
        finite = np.isfinite(target)
        if not finite.any():
            raise ValueError("the history has no training example with a baseline forecast")
        return features[finite], target[finite], positions[finite], steps[finite]

    def _calibrate(self, features: NDArray[np.float64], target: NDArray[np.float64],
                   steps: NDArray[np.int64]) -> None:
        """Set the interval's scale about the median (``interval_scale_``, per horizon
        ``interval_scales_``) on held-out examples: the smallest covering 80 % of them."""
        self.interval_scale_, self.interval_scales_ = 1.0, {}
        if not target.size:
            return
        middle, low, high = self._residuals(features, steps, interval=True)
        error = target - middle
        # Per example the scale it needs, 80 % quantile; per horizon where it has enough
        # held-out examples, else over all of them.
        needed = np.maximum(np.where(error < 0, error / np.minimum(low - middle, -1e-9),
                                     error / np.maximum(high - middle, 1e-9)), 0.0)
        self.interval_scale_ = float(np.quantile(needed, 0.8))
        self.interval_scales_ = {
            int(step): float(np.quantile(needed[steps == step], 0.8))
            for step in np.unique(steps) if (steps == step).sum() >= _MIN_CALIBRATION_EXAMPLES}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Models pickled before the lot statistics had names kept them as one array.
        if isinstance(state.get("lot_stats_"), np.ndarray):
            state = {**state, "lot_stats_": LotStats.from_array(state["lot_stats_"])}
        super().__setstate__(state)

    def _examples(self, grid: Grid, steps_list: list[int]) -> tuple[
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
        stats = self.lot_stats_.take(np.maximum(rows, 0))
        new = rows < 0
        if new.any():
            rate, slots = panel.rate()[new, :known], panel.week_slots(known)
            pooled[new] = pooled_profile(rate, slots, profile[new])
            stats = stats.replaced(new, lot_statistics(rate, profile[new], slots,
                                                       self.decay_steps_))
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

    # --- features ------------------------------------------------------------------------

    def _grid(self, panel: Panel, n_steps: int, *, lot_stats: LotStats,
              stop: int | None = None) -> Grid:
        """``panel_grid`` with this model's holidays and events."""
        return panel_grid(panel, n_steps, lot_stats=lot_stats, country=self.country,
                          subdiv=self.subdiv, events=self.events, stop=stop)

    def _features(self, grid: Grid, profile: NDArray[np.float64],
                  pooled: NDArray[np.float64], lots: NDArray[np.int64],
                  positions: NDArray[np.int64], steps: NDArray[np.int64]) -> tuple[
            NDArray[np.float64], NDArray[np.float64]]:
        """Features of (lot, origin, steps) examples and the baseline forecast (a rate)."""
        return feature_matrix(Examples(grid, profile, pooled, self.baseline_.decay_,
                                       self.decay_steps_, lots, positions, steps))
