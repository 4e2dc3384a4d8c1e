"""Occupancy forecasting: data cleaning, baselines, a gradient-boosting model, evaluation."""

from forecasting._baselines import (
    Forecaster,
    Persistence,
    ProfileAnomaly,
    SeasonalNaive,
)
from forecasting._data import DataError, Panel, load_csv, panel_from_frame
from forecasting._model import GradientBoostingForecaster

__all__ = [
    "DataError",
    "Forecaster",
    "GradientBoostingForecaster",
    "Panel",
    "Persistence",
    "ProfileAnomaly",
    "SeasonalNaive",
    "load_csv",
    "panel_from_frame",
]
