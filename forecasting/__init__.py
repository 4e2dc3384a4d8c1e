"""Occupancy forecasting: data cleaning, baselines and evaluation on real data."""

from forecasting._baselines import (
    Forecaster,
    Persistence,
    ProfileAnomaly,
    SeasonalNaive,
)
from forecasting._data import DataError, Panel, load_csv, panel_from_frame

__all__ = [
    "DataError",
    "Forecaster",
    "Panel",
    "Persistence",
    "ProfileAnomaly",
    "SeasonalNaive",
    "load_csv",
    "panel_from_frame",
]
