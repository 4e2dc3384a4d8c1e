"""The forecast service against a real PostgreSQL and broker: train, predict, published error,
``parkleit forecast serve`` as a process, and the CLI's exit codes."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _helpers import (
    ServiceProcess,
    Watcher,
    assert_bad_usage,
    run_parkleit,
    service_env,
    utc_now,
    wait_for,
)

from core.city import City
from core.db import queries
from core.registry import sync_registry
from core.settings import Settings
from forecasting import backtest, newest_model, predict, refresh_accuracy, train
from ingest import Message, Writer, prepare_connection
from simulators.history import backfill_history

HORIZONS = (15, 30, 60, 120)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday, 13:00 in town: lots on the move
FORECAST_COLUMNS = ("SELECT lot_id, horizon_min, time, target_time, free, free_p10, free_p90, "
                    "p_space, model FROM forecasts ORDER BY lot_id, horizon_min, time")
BY_KIND = ("SELECT lot_id, horizon_min, time, target_time, free, model FROM forecasts "
           "WHERE kind = %s ORDER BY lot_id, horizon_min, time")


@pytest.fixture
def registered(conn: psycopg.Connection[Any], city: City) -> City:
    sync_registry(conn, city)
    return city


def history(conn: psycopg.Connection[Any], city: City, days: float, end: datetime) -> None:
    backfill_history(conn, city, end=end, weeks=days / 7, seed=3)


def latest_free(conn: psycopg.Connection[Any]) -> dict[str, int]:
    return dict(conn.execute("SELECT DISTINCT ON (lot_id) lot_id, free FROM lot_occupancy "
                             "ORDER BY lot_id, time DESC").fetchall())


def test_gbr_model_forecasts_every_fresh_lot_idempotently(
        conn: psycopg.Connection[Any], registered: City) -> None:
    city = registered
    # At a fixed daytime hour: at night every lot is empty and its interval closes up.
    now = NOW + timedelta(minutes=7)
    history(conn, city, 21, now)
    # A lot silent for the last half hour is stale (limit 15 min): it gets no forecast.
    silent = f"{city.id}-small"
    conn.execute("DELETE FROM lot_occupancy WHERE lot_id = %s AND time > %s",
                 (silent, now - timedelta(minutes=30)))

    info = train(conn, city, now=now)
    assert (info.kind, info.reason) == ("gbr", None)
    assert re.fullmatch(rf"gbr-{now:%Y%m%dT%H%M}Z-[0-9a-f]{{8}}", info.version)
    assert info.examples is not None and info.examples > 1000
    stored = conn.execute("SELECT version, kind, lots, examples, octet_length(artefact) > 0 "
                          "FROM forecast_models").fetchall()
    assert stored == [(info.version, "gbr", sorted(lot.id for lot in city.lots), info.examples,
                       True)]

    result = predict(conn, city, horizons=HORIZONS, now=now)
    rows = conn.execute(FORECAST_COLUMNS).fetchall()
    fresh = sorted(lot.id for lot in city.lots if lot.id != silent)
    assert [(row[0], row[1]) for row in rows] == [(lot, h) for lot in fresh for h in HORIZONS]
    assert result.stale == (silent,) and result.rows == len(rows)
    origin = rows[0][2]
    assert now - timedelta(minutes=20) <= origin <= now
    assert (origin.minute % 15, origin.second, origin.microsecond) == (0, 0, 0)
    capacity = {lot.id: lot.capacity for lot in city.lots}
    for lot_id, horizon, time, target, free, p10, p90, p_space, model in rows:
        assert (time, target, model) == (origin, origin + timedelta(minutes=horizon),
                                         info.version)
        assert 0 <= p10 <= free <= p90 <= capacity[lot_id], (lot_id, horizon, p10, free, p90)
        assert 0 <= p_space <= 1
    # Intervals, not points (one may close up against 0 or the capacity, where it is clipped).
    assert sum(row[6] > row[5] for row in rows) > len(rows) // 2

    again = predict(conn, city, horizons=HORIZONS, now=now)
    assert again.rows == result.rows
    assert conn.execute(FORECAST_COLUMNS).fetchall() == rows


def test_short_history_falls_back_to_a_baseline_and_says_why(
        conn: psycopg.Connection[Any], registered: City,
        caplog: pytest.LogCaptureFixture) -> None:
    city, now = registered, utc_now()
    history(conn, city, 3, now)
    with caplog.at_level(logging.WARNING, logger="forecasting"):
        first = train(conn, city, now=now)
    assert first.kind == "persistence" and first.version.startswith("baseline-persistence-")
    assert first.reason is not None
    assert re.fullmatch(r"only [23]\.\d days of history; the gradient-boosting model needs 14 "
                        r"and the profile baseline 7", first.reason)
    assert first.reason in caplog.text
    assert conn.execute("SELECT reason FROM forecast_models").fetchall() == [(first.reason,)]

    predict(conn, city, horizons=(15, 60), now=now)
    rows = conn.execute("SELECT lot_id, free, free_p10, free_p90, p_space, model "
                        "FROM forecasts").fetchall()
    assert len(rows) == 2 * len(city.lots)
    newest = latest_free(conn)
    for lot_id, free, *interval, model in rows:
        assert (free, interval, model) == (newest[lot_id], [None, None, None], first.version)

    history(conn, city, 10, now)  # the same seed: adds the earlier days
    second = train(conn, city, now=now)
    assert second.kind == "profile_anomaly" and second.reason is not None
    assert second.reason.startswith("only 9.") or second.reason.startswith("only 10.")
    newest_info = newest_model(conn, city)
    assert newest_info is not None and newest_info.version == second.version
    predict(conn, city, horizons=(15,), now=now)
    assert conn.execute("SELECT DISTINCT model FROM forecasts WHERE horizon_min = 15 AND "
                        "time = (SELECT max(time) FROM forecasts)").fetchall() == [
        (second.version,)]


def test_published_error_is_the_rolling_mae_against_the_latest_reading(
        conn: psycopg.Connection[Any], registered: City) -> None:
    city = registered
    garage, small, street = (f"{city.id}-{name}" for name in ("garage", "small", "street"))
    hour = timedelta(hours=1)
    forecasts = [  # lot, horizon, target, forecast free, kind
        (garage, 15, NOW - hour, 50, "live"),        # readings 40 and then 47 before: error 3
        (garage, 15, NOW - 2 * hour, 60, "backtest"),  # reading 70 at the target: error 10
        (garage, 15, NOW - 3 * hour, 30, "backtest"),  # newest reading 20 min before: not scored
        (garage, 15, NOW - 8 * 24 * hour, 0, "live"),  # before the 7-day window: error 100
        (garage, 15, NOW + timedelta(minutes=15), 0, "live"),  # target still ahead: not scored
        (small, 60, NOW - hour / 2, 4, "live"),      # reading 6 of 10, 14 min before: error 2
    ]
    readings = [  # lot, time, free, capacity
        (garage, NOW - hour - timedelta(minutes=10), 40, 100),
        (garage, NOW - hour - timedelta(minutes=2), 47, 100),
        (garage, NOW - hour + timedelta(minutes=1), 10, 100),  # after the target
        (garage, NOW - 2 * hour, 70, 100),
        (garage, NOW - 3 * hour - timedelta(minutes=20), 0, 100),
        (garage, NOW - 8 * 24 * hour, 100, 100),
        (garage, NOW, 100, 100),
        (small, NOW - hour / 2 - timedelta(minutes=14), 6, 10),
    ]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO forecasts (time, lot_id, horizon_min, target_time, free, model, kind) "
            "VALUES (%s, %s, %s, %s, %s, 'by-hand', %s)",
            [(target - timedelta(minutes=h), lot, h, target, free, kind)
             for lot, h, target, free, kind in forecasts])
        cur.executemany(
            "INSERT INTO lot_occupancy (time, lot_id, occupied, free, capacity, source) "
            "VALUES (%s, %s, %s, %s, %s, 'counter')",
            [(time, lot, capacity - free, free, capacity)
             for lot, time, free, capacity in readings])
        # A figure whose forecasts left the window is withdrawn, not kept.
        cur.execute("INSERT INTO forecast_accuracy VALUES (%s, 30, 7, 1, 0.25, 5, %s)",
                    (street, NOW - 24 * hour))

    table = ("SELECT lot_id, horizon_min, window_days, mae, mae_rate, points, backtest_points, "
             "computed_at FROM forecast_accuracy ORDER BY lot_id, horizon_min")
    for _ in range(2):  # refreshing again gives the same figures
        assert refresh_accuracy(conn, city, window_days=7, now=NOW) == 2
        assert conn.execute(table).fetchall() == [
            (garage, 15, 7, 6.5, pytest.approx(0.065), 2, 1, NOW),
            (small, 60, 7, 2.0, pytest.approx(0.2), 1, 0, NOW),
        ]
    assert conn.execute(queries("forecasting")["lot_accuracy"], {"lot_id": garage}).fetchall() == [
        (15, 7, 6.5, pytest.approx(0.065), 2, 1, NOW)]

    refresh_accuracy(conn, city, window_days=9, now=NOW)
    assert conn.execute(table).fetchall()[0][2:7] == (9, pytest.approx(113 / 3),
                                                      pytest.approx(1.13 / 3), 3, 1)


def test_backtest_fills_the_window_before_the_first_live_forecast(
        conn: psycopg.Connection[Any], registered: City) -> None:
    """A city live for six hours, with three days of history: the backtest forecasts from
    every quarter hour before its first live forecast, as the model would have then; running
    it again adds nothing; a live forecast at a backtest's origin takes its place."""
    city = registered
    history(conn, city, 3, NOW)
    info = train(conn, city, now=NOW - timedelta(hours=6))
    assert info.kind == "persistence"  # forecasts from the data at the origin alone
    first_live = predict(conn, city, horizons=HORIZONS, now=NOW - timedelta(hours=6)).origin
    predict(conn, city, horizons=HORIZONS, now=NOW - timedelta(hours=3))
    live = conn.execute(BY_KIND, ("live",)).fetchall()
    assert len(live) == 2 * len(HORIZONS) * len(city.lots)

    result = backtest(conn, city, now=NOW, horizons=HORIZONS, window_days=7)
    rows = conn.execute(BY_KIND, ("backtest",)).fetchall()
    assert result.rows == len(rows) and result.out_of_sample is False  # no week before it
    assert conn.execute(BY_KIND, ("live",)).fetchall() == live
    [first_reading] = conn.execute("SELECT min(time) FROM lot_occupancy").fetchone() or [None]
    for lot in city.lots:
        for horizon in HORIZONS:
            origins = [row[2] for row in rows if row[:2] == (lot.id, horizon)]
            # Every quarter hour from the first reading up to the first live forecast.
            assert origins[0] - first_reading < timedelta(minutes=15)
            assert origins[-1] == first_live - timedelta(minutes=15)
            assert len(origins) == (origins[-1] - origins[0]) / timedelta(minutes=15) + 1
    assert {(row[3] - row[2], row[5]) for row in rows} == {
        (timedelta(minutes=horizon), info.version) for horizon in HORIZONS}
    assert (result.first, result.last) == (rows[0][2], first_live - timedelta(minutes=15))

    # The published error counts them apart: every target lies in the window, and those of
    # the two live runs too.
    published = conn.execute("SELECT lot_id, horizon_min, points, backtest_points "
                             "FROM forecast_accuracy").fetchall()
    assert sorted(published) == sorted(
        (lot.id, horizon, count + 2, count) for lot in city.lots for horizon in HORIZONS
        for count in [sum(1 for row in rows if row[:2] == (lot.id, horizon))])
    stored = newest_model(conn, city)
    assert stored is not None and stored.metrics["backtest"]["rows"] == len(rows)

    again = backtest(conn, city, now=NOW, horizons=HORIZONS, window_days=7)
    assert (again.rows, again.first, again.out_of_sample) == (0, None, None)
    assert conn.execute(BY_KIND, ("backtest",)).fetchall() == rows

    # What the live forecast would have been at a backtest's origin, it is, and it replaces
    # the backtest row.
    origin = rows[len(rows) // 3][2]
    before = {row[:2]: row[4] for row in rows if row[2] == origin}
    predict(conn, city, horizons=HORIZONS, now=origin + timedelta(minutes=7))
    after = conn.execute("SELECT lot_id, horizon_min, free, kind FROM forecasts "
                         "WHERE time = %s", (origin,)).fetchall()
    assert {(lot, horizon): free for lot, horizon, free, _ in after} == before
    assert {kind for *_, kind in after} == {"live"}


def test_serve_trains_predicts_again_after_a_big_change_and_stops_cleanly(
        conn: psycopg.Connection[Any], registered: City, settings: Settings,
        spawn: Callable[..., ServiceProcess], watch: Callable[..., Watcher]) -> None:
    city = registered
    status = f"parkleit/v1/{city.id}/services/forecast"
    watcher = watch(status)
    history(conn, city, 2, utc_now())
    # The timer (10 min) never fires in this test: every forecast after the first one comes
    # from the change.
    env = service_env(settings, PARKLEIT_FORECAST_INTERVAL_S="600",
                      PARKLEIT_FORECAST_DEBOUNCE_S="0.5", PARKLEIT_FORECAST_HORIZONS="15,60")
    service = spawn(["forecast", "serve"], env, name="forecast")

    count = "SELECT count(*) FROM forecasts WHERE kind = %s"
    wait_for(lambda: conn.execute(count, ("live",)).fetchone() == (2 * len(city.lots),),
             timeout=30)
    model = newest_model(conn, city)
    assert model is not None and model.kind == "persistence" and model.reason
    # Having trained, it backtests the new model over the two days of history before its
    # first live forecast: more than a day of quarter hours at both horizons.
    service.wait_log(f"backtest of {city.id} with {model.version}")
    [backtests] = conn.execute(count, ("backtest",)).fetchone() or [0]
    assert backtests > 2 * len(city.lots) * 96
    wait_for(lambda: watcher.last(status) == "online")

    garage = f"{city.id}-garage"
    before = latest_free(conn)[garage]
    occupied = 100 if before >= 50 else 0  # a change of at least half the capacity
    now = utc_now()
    prepare_connection(conn)
    body = {"occupied": occupied, "ts": now.isoformat().replace("+00:00", "Z")}
    Writer(city).write(conn, [Message(f"parkleit/v1/{city.id}/lots/{garage}/counter",
                                      json.dumps(body).encode(), now)], now)
    service.wait_log(f"big change at {garage}")
    newest = ("SELECT free FROM forecasts WHERE lot_id = %s AND horizon_min = 15 "
              "ORDER BY time DESC LIMIT 1")
    wait_for(lambda: conn.execute(newest, (garage,)).fetchone() == (100 - occupied,),
             timeout=10)

    assert service.terminate() == 0
    wait_for(lambda: watcher.last(status) == "offline", timeout=5)


@pytest.mark.parametrize(("env", "args", "reason"), [
    ({}, ["forecast", "predict", "--horizons", "20"],
     "not a comma list of positive multiples of 15 minutes: 20"),
    ({"PARKLEIT_FORECAST_HORIZONS": "15,x"}, ["forecast", "serve"],
     "PARKLEIT_FORECAST_HORIZONS: not a comma list of minutes"),
    ({"PARKLEIT_FORECAST_RETRAIN_HOUR": "24"}, ["forecast", "serve"],
     "PARKLEIT_FORECAST_RETRAIN_HOUR"),
    ({}, ["forecast", "train", "--days", "0"], "--days must be at least 1"),
])
def test_bad_usage_exits_2_with_the_reason(env: dict[str, str], args: list[str],
                                           reason: str) -> None:
    assert_bad_usage(args, reason, **env)


def test_cli_train_and_predict(db_url: str, admin_url: str, conn: psycopg.Connection[Any],
                               city_path: Path, registered: City) -> None:
    env = {"PARKLEIT_DATABASE_URL": db_url, "PARKLEIT_CITY": str(city_path)}
    missing = run_parkleit("forecast", "predict", **env)
    assert missing.returncode == 1 and "no forecast model for" in missing.stderr
    unmigrated = run_parkleit("forecast", "train", **{**env, "PARKLEIT_DATABASE_URL": admin_url})
    assert unmigrated.returncode == 2
    assert "no forecasting tables; run `parkleit db migrate`" in unmigrated.stderr

    history(conn, registered, 2, utc_now())
    trained = run_parkleit("forecast", "train", "--days", "7", **env)
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.startswith("baseline-persistence-")
    # and backtested it: two days of history, no live forecast in them
    assert f"backtest of {registered.id} with {trained.stdout.strip()}" in trained.stderr
    assert conn.execute("SELECT count(*) > 0 FROM forecasts WHERE kind = 'backtest'"
                        ).fetchone() == (True,)
    predicted = run_parkleit("forecast", "predict", "--horizons", "30", **env)
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.startswith(f"{len(registered.lots)} forecasts from ")


def test_serve_backtests_a_model_trained_without_one(
        conn: psycopg.Connection[Any], registered: City, settings: Settings,
        spawn: Callable[..., ServiceProcess]) -> None:
    """As ``make demo`` runs them: ``forecast train --no-backtest``, then ``forecast serve``,
    which backtests the stored model beside its first live forecasts, without training."""
    city = registered
    history(conn, city, 2, utc_now())
    env = service_env(settings, PARKLEIT_FORECAST_HORIZONS="15,60")
    trained = run_parkleit("forecast", "train", "--no-backtest", **env)
    assert trained.returncode == 0, trained.stderr
    count = "SELECT count(*) FROM forecasts WHERE kind = %s"
    assert conn.execute(count, ("backtest",)).fetchone() == (0,)

    service = spawn(["forecast", "serve"], env, name="forecast")
    service.wait_log(f"backtest of {city.id} with {trained.stdout.strip()}")
    [backtests] = conn.execute(count, ("backtest",)).fetchone() or [0]
    assert backtests > 2 * len(city.lots) * 96  # over a day of quarter hours, both horizons
    wait_for(lambda: conn.execute(count, ("live",)).fetchone() == (2 * len(city.lots),))
    assert "trained " not in service.log.read_text()
    assert service.terminate() == 0
