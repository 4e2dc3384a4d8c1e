"""Baseline forecasters: persistence, seasonal naive, weekday x slot profile + last anomaly.

Every forecaster follows the scikit-learn contract: ``__init__`` stores parameters only, ``fit``
learns from a training Panel and returns self, and ``predict(panel, origins, horizon)`` gives
free spaces, shape ``(n_lots, len(origins))``, for ``horizon`` minutes after each origin (grid
positions of ``panel``) using only ``panel.free[:, :origin + 1]``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator

from forecasting._data import SLOTS_PER_WEEK, STEP_MINUTES, Panel

__all__ = ["Forecaster", "Persistence", "ProfileAnomaly", "SeasonalNaive", "horizon_steps",
           "last_observed"]

_DAY_SLOTS = 24 * 60 // STEP_MINUTES
_MIN_SAMPLES = 3  # fewer readings than this make no profile slot
_MAX_GAP = 4  # profile slots: interpolate across at most an hour


def horizon_steps(horizon: int) -> int:
    """A horizon in minutes as a count of grid steps; ValueError unless a positive multiple."""
    if horizon <= 0 or horizon % STEP_MINUTES:
        raise ValueError(f"horizon must be a positive multiple of {STEP_MINUTES} minutes: "
                         f"{horizon}")
    return horizon // STEP_MINUTES


def last_observed(values: NDArray[np.float64]) -> NDArray[np.int64]:
    """For every cell the column of the latest finite value at or before it (-1 if none)."""
    columns = np.where(np.isfinite(values), np.arange(values.shape[1]), -1)
    return np.maximum.accumulate(columns, axis=1)


class Forecaster(BaseEstimator):  # type: ignore[misc]
    """Shared contract and input checks of every forecaster."""

    def fit(self, history: Panel) -> Self:
        """Learn from ``history`` (the training Panel); return self."""
        self.lot_ids_ = history.lot_ids
        self.capacity_ = history.capacity.copy()
        return self

    def predict(self, panel: Panel, origins: ArrayLike, horizon: int) -> NDArray[np.float64]:
        """Free spaces ``horizon`` minutes after each origin position; (n_lots, n_origins).

        The panel's lots need not be those seen in fit: lots are matched by id, and a lot new
        to the model is forecast from its own data in the panel."""
        raise NotImplementedError

    def _fitted_rows(self, panel: Panel) -> NDArray[np.int64]:
        """For each lot of ``panel`` its row in the fitted arrays, -1 for a lot unseen in fit."""
        index = {lot: row for row, lot in enumerate(self.lot_ids_)}
        return np.array([index.get(lot, -1) for lot in panel.lot_ids], dtype=np.int64)

    def _check(self, panel: Panel, origins: ArrayLike, horizon: int) -> tuple[
            NDArray[np.int64], int]:
        if not hasattr(self, "lot_ids_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit first")
        positions = np.asarray(origins, dtype=np.int64).reshape(-1)
        if positions.size and (positions.min() < 0 or positions.max() >= panel.n_steps):
            raise ValueError("origin positions outside the panel")
        return positions, horizon_steps(horizon)


def known_before_first(positions: NDArray[np.int64]) -> int:
    """How many steps every origin of ``positions`` may read: those up to the first origin
    (a new lot's own profile comes from them alone, so no forecast sees later data)."""
    return int(positions.min()) + 1 if positions.size else 1


class Persistence(Forecaster):
    """The latest observed free count at or before the forecast time."""

    def predict(self, panel: Panel, origins: ArrayLike, horizon: int) -> NDArray[np.float64]:
        """The latest observation at or before each origin, whatever the horizon."""
        positions, _ = self._check(panel, origins, horizon)
        latest = last_observed(panel.free)[:, positions]
        rows = np.arange(panel.free.shape[0])[:, None]
        return np.where(latest >= 0, panel.free[rows, np.maximum(latest, 0)], np.nan)


class SeasonalNaive(Forecaster):
    """The value at the same slot one season (default a week) before the target time.

    Where that slot is missing the forecast falls back to the latest observation before it,
    and then to persistence.
    """

    def __init__(self, season: int = 7 * 24 * 60) -> None:
        self.season = season

    def predict(self, panel: Panel, origins: ArrayLike, horizon: int) -> NDArray[np.float64]:
        """Same slot one season before the target (never after the origin)."""
        positions, steps = self._check(panel, origins, horizon)
        season = horizon_steps(self.season)
        if steps > season:
            raise ValueError(f"horizon {horizon} min exceeds the season of {self.season} min")
        source = positions + steps - season
        latest = last_observed(panel.free)
        rows = np.arange(panel.free.shape[0])[:, None]
        seasonal = np.where(source >= 0, latest[:, np.maximum(source, 0)], -1)
        recent = latest[:, positions]
        chosen = np.where(seasonal >= 0, seasonal, recent)
        return np.where(chosen >= 0, panel.free[rows, np.maximum(chosen, 0)], np.nan)


class ProfileAnomaly(Forecaster):
    """Weekday x 15-minute profile of the free rate plus the latest deviation from it.

    ``fit`` takes the per-lot ``statistic`` (mean, the default, or median) of the free rate in
    every local 15-minute slot of the week. The forecast is the profile at the target slot plus
    ``decay_[k]`` times the latest deviation observed at or before the origin, where ``k`` is
    the horizon plus the age of that deviation in steps. With ``decay=None`` the factors are
    tuned per step on the last ``validation_days`` of the training data against a profile
    from the days before them (least absolute error over a grid, non-increasing in ``k``); a
    number fixes them to ``decay ** k``. Beyond ``max_horizon`` minutes the deviation is
    ignored. Slots with no training data fall back to the lot's time-of-day profile, then to
    its overall level, then to persistence.
    """

    def __init__(self, statistic: str = "mean", decay: float | None = None,
                 max_horizon: int = 8 * 60, validation_days: int = 14) -> None:
        self.statistic = statistic
        self.decay = decay
        self.max_horizon = max_horizon
        self.validation_days = validation_days

    def fit(self, history: Panel) -> Self:
        """Learn the profile and the decay of the deviation from ``history``."""
        if self.statistic not in ("median", "mean"):
            raise ValueError(f"statistic must be 'median' or 'mean': {self.statistic!r}")
        if self.decay is not None and not 0.0 <= self.decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1] or None: {self.decay}")
        if self.validation_days < 1:
            raise ValueError(f"validation_days must be >= 1: {self.validation_days}")
        super().fit(history)
        slots = history.week_slots()
        self.profile_ = self._profile(history.rate(), slots)
        max_steps = horizon_steps(self.max_horizon)
        if self.decay is not None:
            self.decay_ = self.decay ** np.arange(max_steps + 1, dtype=np.float64)
            return self
        # Tune out of sample, as the forecast will be used: a profile from the data before the
        # last validation_days scores the deviations after it. An in-sample profile absorbs
        # much of each deviation and would make it look short-lived.
        split = history.n_steps - self.validation_days * _DAY_SLOTS
        rate = history.rate()
        if split >= SLOTS_PER_WEEK and np.isfinite(rate[:, :split]).any():
            earlier = self._profile(rate[:, :split], slots[:split])
            deviation = rate[:, split:] - earlier[:, slots[split:]]
        else:
            deviation = rate - self.profile_[:, slots]
        self.decay_ = _tune_decay(deviation, max_steps)
        return self

    def _profile(self, rate: NDArray[np.float64], slots: NDArray[np.int64], *,
                 with_level: bool = True) -> NDArray[np.float64]:
        """Per lot and week slot. Slots with under ``_MIN_SAMPLES`` readings (a half-hourly feed
        leaves the quarter hours nearly empty) are interpolated between the neighbouring slots
        across gaps of up to an hour, then taken from the time-of-day profile, then (if
        ``with_level``) from the lot's overall level."""
        reduce = np.nanmedian if self.statistic == "median" else np.nanmean
        with warnings.catch_warnings():
            # An all-NaN slot is an ordinary gap here, filled by the fallbacks below.
            warnings.simplefilter("ignore", RuntimeWarning)
            weekly = _per_group(rate, slots, SLOTS_PER_WEEK, reduce)
            daily = _per_group(rate, slots % _DAY_SLOTS, _DAY_SLOTS, reduce)
            level = (reduce(rate, axis=1) if rate.shape[1]
                     else np.full(rate.shape[0], np.nan))
        weekly = _fill_short_gaps(weekly, _MAX_GAP)
        daily = _fill_short_gaps(daily, _MAX_GAP)
        if with_level:
            daily = np.where(np.isfinite(daily), daily, level[:, None])
        return np.where(np.isfinite(weekly), weekly, np.tile(daily, (1, 7)))

    def profiles(self, panel: Panel, stop: int) -> NDArray[np.float64]:
        """The week profile of every lot of ``panel``: the fitted one, or for a lot unseen in
        fit one from its own data before position ``stop``, where that has too few readings
        the mean profile of the fitted lots."""
        rows = self._fitted_rows(panel)
        result = self.profile_[np.maximum(rows, 0)]
        new = rows < 0
        if new.any():
            own = self._profile(panel.rate()[new, :stop], panel.week_slots(stop), with_level=False)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                pooled = np.nanmean(self.profile_, axis=0)
            result[new] = np.where(np.isfinite(own), own, pooled[None, :])
        return np.asarray(result, dtype=np.float64)

    def predict(self, panel: Panel, origins: ArrayLike, horizon: int) -> NDArray[np.float64]:
        """Profile at the target slot plus the decayed latest deviation, in free spaces."""
        positions, steps = self._check(panel, origins, horizon)
        rows = np.arange(panel.free.shape[0])[:, None]
        slots = panel.week_slots(max(panel.n_steps, int(positions.max(initial=0)) + steps + 1))
        fitted = self.profiles(panel, known_before_first(positions))
        rate = panel.rate()
        latest = last_observed(rate)[:, positions]
        seen = latest >= 0
        source = np.maximum(latest, 0)
        observed = rate[rows, source]
        deviation = observed - fitted[rows, slots[source]]
        lead = steps + positions[None, :] - source
        factor = np.where(lead < self.decay_.size,
                          self.decay_[np.minimum(lead, self.decay_.size - 1)], 0.0)
        profile = fitted[:, slots[positions + steps]]
        adjusted = np.where(np.isfinite(deviation), profile + factor * deviation, profile)
        forecast = np.where(np.isfinite(adjusted), adjusted, observed)
        forecast = np.where(seen | np.isfinite(profile), forecast, np.nan)
        return np.asarray(np.clip(forecast, 0.0, 1.0) * panel.capacity[:, None],
                          dtype=np.float64)


def _tune_decay(deviation: NDArray[np.float64], max_steps: int) -> NDArray[np.float64]:
    """Per-step factor minimising the absolute error of ``factor * d[t]`` against ``d[t+k]``.

    Steps with few pairs (a half-hourly feed snapped to 15 minutes has only stray ones at odd
    steps) are interpolated from their neighbours rather than trusted; past the last tuned step
    the factor drops to 0.
    """
    grid = np.linspace(0.0, 1.0, 41)
    pairs: dict[int, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
    for step in range(1, min(max_steps, deviation.shape[1] - 1) + 1):
        now, later = deviation[:, :-step], deviation[:, step:]
        mask = np.isfinite(now) & np.isfinite(later)
        pairs[step] = (now[mask], later[mask])
    most = max((x.size for x, _ in pairs.values()), default=0)
    steps, factors = [0], [1.0]
    for step, (x, y) in pairs.items():
        if x.size < max(30, most // 10):
            continue
        errors = [np.abs(y - factor * x).mean() for factor in grid]
        steps.append(step)
        factors.append(float(grid[int(np.argmin(errors))]))
    tuned = np.interp(np.arange(max_steps + 1), steps, factors, right=0.0)
    return np.asarray(np.minimum.accumulate(tuned), dtype=np.float64)


def _per_group(values: NDArray[np.float64], groups: NDArray[np.int64], n_groups: int,
               reduce: Callable[..., NDArray[np.float64]]) -> NDArray[np.float64]:
    """``reduce`` over the columns of each group; NaN for groups without columns."""
    result = np.full((values.shape[0], n_groups), np.nan)
    order = np.argsort(groups, kind="stable")
    present, starts = np.unique(groups[order], return_index=True)
    for group, block in zip(present, np.split(values[:, order], starts[1:], axis=1),
                            strict=True):
        enough = np.isfinite(block).sum(axis=1) >= _MIN_SAMPLES
        result[enough, group] = reduce(block[enough], axis=1)
    return result


def _fill_short_gaps(profile: NDArray[np.float64], max_gap: int) -> NDArray[np.float64]:
    """Interpolate each row (periodic) across runs of at most ``max_gap`` missing slots."""
    filled = profile.copy()
    period = profile.shape[1]
    columns = np.arange(period)
    for row in filled:
        valid = np.isfinite(row)
        if not valid.any() or valid.all():
            continue
        known = columns[valid]
        # The gap a slot lies in runs from the previous to the next known slot (periodic).
        after = np.searchsorted(known, columns) % known.size
        before = (after - 1) % known.size
        span = (known[after] - known[before]) % period
        span = np.where(span == 0, period, span)
        fill = ~valid & (span - 1 <= max_gap)
        row[fill] = np.interp(columns[fill], known, row[valid], period=period)
    return filled
