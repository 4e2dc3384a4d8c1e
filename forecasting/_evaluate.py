"""Rolling-origin evaluation of forecasters on the last days of a Panel."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from forecasting._baselines import Forecaster, Persistence, ProfileAnomaly, SeasonalNaive
from forecasting._data import DataError, Panel
from forecasting._model import GradientBoostingForecaster

__all__ = ["DEFAULT_HORIZONS", "baselines", "default_models", "evaluate", "test_start"]

logger = logging.getLogger(__name__)

DEFAULT_HORIZONS = (15, 30, 60, 120)


def baselines() -> dict[str, Forecaster]:
    """The baseline forecasters by the name they carry in the report."""
    return {"persistence": Persistence(), "seasonal_naive": SeasonalNaive(),
            "profile_anomaly": ProfileAnomaly()}


def default_models() -> dict[str, Forecaster]:
    """The baselines and the learned model ("model"), by the name they carry in the report."""
    return {**baselines(), "model": GradientBoostingForecaster()}


def test_start(panel: Panel, test_days: int) -> datetime:
    """Local midnight ``test_days`` days before the end of the last local day with data."""
    zone = ZoneInfo(panel.timezone)
    last = panel.time_at(panel.n_steps - 1).astimezone(zone)
    midnight = datetime(last.year, last.month, last.day, tzinfo=zone)
    day = midnight.date() - timedelta(days=test_days - 1)
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def evaluate(panel: Panel, *, test_days: int = 14,
             horizons: Sequence[int] = DEFAULT_HORIZONS,
             models: Mapping[str, Forecaster] | None = None) -> dict[str, Any]:
    """Fit every model on the data before the test window, forecast every grid point of the
    window from the data up to it and score where the forecast time and the target are
    observed. MAE in spaces (pooled over points) and of the free rate (mean of per-lot MAE);
    for the gradient-boosting model also ``coverage_80``, the share of scored points
    inside the 10-90 % interval."""
    if test_days < 1:
        raise DataError("--test-days must be at least 1")
    models = dict(default_models() if models is None else models)
    begin = test_start(panel, test_days)
    split = panel.position(begin)
    observed = np.isfinite(panel.free)
    if split <= 0 or not observed[:, :split].any():
        raise DataError(f"no training data before the test window starting {begin.isoformat()}"
                        f" (the data cover {panel.start.isoformat()} .. "
                        f"{panel.time_at(panel.n_steps - 1).isoformat()})")
    training = panel.head(split)
    skipped: dict[str, str] = {}
    for name, model in list(models.items()):
        try:
            model.fit(training)
        except ValueError as exc:  # e.g. too little history to build training examples
            logger.warning("%s not evaluated: %s", name, exc)
            skipped[name] = str(exc)
            del models[name]
    trained_lots = np.asarray(observed[:, :split].any(axis=1), dtype=bool)
    report: dict[str, Any] = {
        "lots": len(panel.lot_ids),
        "train": {"start": panel.start.isoformat(), "end": begin.isoformat()},
        "test": {"start": begin.isoformat(),
                 "end": (panel.time_at(panel.n_steps - 1)).isoformat()},
        "cleaning": dict(panel.cleaning),
        "horizons": {},
    }
    if skipped:
        report["skipped"] = skipped
    scored_any = False
    for horizon in horizons:
        steps = horizon // 15
        origins = np.arange(split, panel.n_steps - steps)
        mask = observed[:, origins] & observed[:, origins + steps]
        # A lot without training data has no profile; it is scored by no model.
        mask &= trained_lots[:, None]
        actual = panel.free[:, origins + steps]
        entry: dict[str, Any] = {}
        for name, model in models.items():
            forecast = model.predict(panel, origins, horizon) if origins.size else actual
            entry[name] = _score(forecast, actual, mask, panel.capacity)
            if isinstance(model, GradientBoostingForecaster):
                low, high = (model.predict_interval(panel, origins, horizon) if origins.size
                             else (actual, actual))
                entry[name]["coverage_80"] = _coverage(low, high, actual, mask)
        points = int(mask.sum())
        scored_any |= points > 0
        entry["points"] = points
        entry["lots_scored"] = int(mask.any(axis=1).sum())
        report["horizons"][str(horizon)] = entry
    if not scored_any:
        raise DataError("no test point has an observation at both the forecast time and the "
                        "target time")
    return report


def _score(forecast: np.ndarray[Any, Any], actual: np.ndarray[Any, Any],
           mask: np.ndarray[Any, Any], capacity: np.ndarray[Any, Any]) -> dict[str, Any]:
    usable = mask & np.isfinite(forecast)
    if not usable.any():
        return {"mae": None, "mae_rate": None}
    error = np.abs(forecast - actual)
    per_lot = [float(np.mean(error[lot, usable[lot]] / capacity[lot]))
               for lot in range(error.shape[0]) if usable[lot].any()]
    return {"mae": round(float(error[usable].mean()), 4),
            "mae_rate": round(float(np.mean(per_lot)), 5)}


def _coverage(low: np.ndarray[Any, Any], high: np.ndarray[Any, Any],
              actual: np.ndarray[Any, Any], mask: np.ndarray[Any, Any]) -> float | None:
    usable = mask & np.isfinite(low) & np.isfinite(high)
    if not usable.any():
        return None
    inside = (actual >= low) & (actual <= high)
    return round(float(inside[usable].mean()), 4)
