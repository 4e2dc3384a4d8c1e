"""``parkleit forecast``: evaluate on a CSV, train, predict, and the forecaster service."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import psycopg

from core.runtime import serve

from ._common import (
    Commands,
    UsageError,
    city,
    command,
    horizons,
    logger,
    positive,
    require_broker,
    require_table,
    settings,
)

_TABLES = ("forecast_models", "forecasting tables")


def register(commands: Commands) -> None:
    forecast = commands.add_parser("forecast", help="occupancy forecasts")
    forecast_commands = forecast.add_subparsers(dest="forecast_command", required=True,
                                                metavar="FORECAST_COMMAND")
    evaluate = command(forecast_commands, "evaluate", _evaluate, city=None,
                       help="score the baselines (persistence, seasonal naive, profile + last "
                            "anomaly) and the gradient-boosting model on a long CSV "
                            "lot_id,time,free,capacity",
                       description="Train on everything before the last --test-days local days, "
                                   "forecast every 15-minute point of the test window from the "
                                   "data up to it, and score where both the forecast time and "
                                   "the target time are observed. MAE in free spaces (pooled) "
                                   "and of the free rate (mean of per-lot MAE); for the "
                                   "gradient-boosting model (\"model\") also coverage_80, the "
                                   "share of points inside its 10-90 %% interval.")
    evaluate.add_argument("--csv", type=Path, required=True, metavar="FILE",
                          help="long CSV: lot_id,time,free,capacity; RFC 3339 times with an "
                          "offset; any sampling interval (snapped to 15 minutes)")
    evaluate.add_argument("--test-days", type=positive(int), default=14,
                          help="length of the test window in days (default 14)")
    evaluate.add_argument("--horizons", type=horizons, default=(15, 30, 60, 120),
                          help="comma list of horizons in minutes (default 15,30,60,120)")
    evaluate.add_argument("--timezone", default="Europe/Berlin",
                          help="local time zone of weekday and time-of-day profiles and of the "
                               "test-window days (default Europe/Berlin)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")

    train = command(forecast_commands, "train", _train,
                    help="fit the gradient-boosting model on the database's history and store it "
                         "as a new model version (a baseline, with the reason, if the history is "
                         "too short); then backtest it where the published forecast error lacks "
                         "live forecasts")
    train.add_argument("--days", type=positive(int),
                       help="days of history to learn from (default PARKLEIT_FORECAST_TRAIN_DAYS"
                       ", 91)")
    train.add_argument("--no-backtest", dest="backtest", action="store_false",
                       help="store the model only; `forecast serve` backtests it at its start, "
                       "beside its first live forecasts")

    predict = command(forecast_commands, "predict", _predict,
                      help="forecast every lot with the newest model into the forecasts table "
                      "and refresh the published forecast error")
    predict.add_argument("--horizons", type=horizons,
                         help="comma list of horizons in minutes (default "
                         "PARKLEIT_FORECAST_HORIZONS, 15,30,60,120)")

    command(forecast_commands, "serve", _serve,
            help="retrain nightly, predict every PARKLEIT_FORECAST_INTERVAL_S seconds "
            "and after big changes of a lot (until SIGTERM)")


def _evaluate(args: argparse.Namespace) -> int:
    from forecasting import DataError, evaluate, load_csv

    if args.test_days < 1:
        raise UsageError("--test-days must be at least 1")
    try:
        panel = load_csv(args.csv, timezone=args.timezone)
        report = evaluate(panel, test_days=args.test_days, horizons=args.horizons)
    except DataError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(report))
    else:
        _print_evaluation(report)
    return 0


def _print_evaluation(report: dict[str, Any]) -> None:
    print(f"{report['lots']} lots; train {report['train']['start']} .. "
          f"{report['train']['end']}, test {report['test']['start']} .. {report['test']['end']}")
    print(f"{'horizon':>8} {'points':>7} {'model':<16} {'MAE spaces':>10} {'MAE rate':>9} "
          f"{'cover 80':>8}")
    for horizon, entry in report["horizons"].items():
        for name, score in entry.items():
            if isinstance(score, dict):
                mae = "-" if score["mae"] is None else f"{score['mae']:.2f}"
                rate = "-" if score["mae_rate"] is None else f"{score['mae_rate']:.4f}"
                cover = score.get("coverage_80")
                covered = "-" if cover is None else f"{cover:.3f}"
                print(f"{horizon + ' min':>8} {entry['points']:>7} {name:<16} {mae:>10} "
                      f"{rate:>9} {covered:>8}")
    for name, reason in report.get("skipped", {}).items():
        print(f"{name} not evaluated: {reason}")


def _train(args: argparse.Namespace) -> int:
    from forecasting import ForecastError, backtest, train

    config = settings()
    train_city = city(args, config)
    if args.days is not None and args.days < 1:
        raise UsageError("--days must be at least 1")
    days = args.days or config.FORECAST_TRAIN_DAYS
    require_table(config.DATABASE_URL, *_TABLES)
    stage = "training"
    try:
        with psycopg.connect(config.DATABASE_URL, autocommit=True) as conn:
            info = train(conn, train_city, days=days, horizons=config.FORECAST_HORIZONS,
                         threads=config.FORECAST_THREADS, now=config.clock.now())
            print(info.version, flush=True)
            stage = "backtest"
            if args.backtest:
                backtest(conn, train_city, now=info.created_at,
                         horizons=config.FORECAST_HORIZONS,
                         window_days=config.FORECAST_ACCURACY_DAYS,
                         threads=config.FORECAST_THREADS)
    except (ForecastError, psycopg.Error) as exc:
        logger.error("%s failed: %s", stage, str(exc).strip().splitlines()[0])
        return 1
    return 0


def _predict(args: argparse.Namespace) -> int:
    from forecasting import ForecastError, predict

    config = settings()
    predict_city = city(args, config)
    require_table(config.DATABASE_URL, *_TABLES)
    try:
        with psycopg.connect(config.DATABASE_URL, autocommit=True) as conn:
            result = predict(conn, predict_city,
                             horizons=args.horizons or config.FORECAST_HORIZONS,
                             accuracy_days=config.FORECAST_ACCURACY_DAYS,
                             threads=config.FORECAST_THREADS, now=config.clock.now())
    except (ForecastError, psycopg.Error) as exc:
        logger.error("prediction failed: %s", str(exc).strip().splitlines()[0])
        return 1
    print(f"{result.rows} forecasts from {result.origin.isoformat()} with {result.model}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from forecasting import ForecastService

    config = settings()
    serve_city = city(args, config)
    require_table(config.DATABASE_URL, *_TABLES)
    require_broker(config)
    return serve(ForecastService(config, serve_city))
