"""Occupancy forecasting: data cleaning, baselines, a gradient-boosting model, evaluation."""

from forecasting._baselines import (
    Forecaster,
    Persistence,
    ProfileAnomaly,
    SeasonalNaive,
)
from forecasting._data import DataError, Panel, load_csv, panel_from_frame
from forecasting._evaluate import baselines, evaluate, test_start
from forecasting._model import GradientBoostingForecaster
from forecasting._service import (
    Backtest,
    ForecastError,
    ForecastService,
    LoadedModel,
    ModelInfo,
    Prediction,
    backtest,
    event_calendar,
    load_newest,
    newest_model,
    predict,
    refresh_accuracy,
    train,
)

__all__ = [
    "Backtest",
    "DataError",
    "ForecastError",
    "ForecastService",
    "Forecaster",
    "GradientBoostingForecaster",
    "LoadedModel",
    "ModelInfo",
    "Panel",
    "Persistence",
    "Prediction",
    "ProfileAnomaly",
    "SeasonalNaive",
    "backtest",
    "baselines",
    "evaluate",
    "event_calendar",
    "load_csv",
    "load_newest",
    "newest_model",
    "panel_from_frame",
    "predict",
    "refresh_accuracy",
    "test_start",
    "train",
]
