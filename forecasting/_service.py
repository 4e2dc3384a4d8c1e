"""The forecast service: versioned models trained from the database, forecasts of every lot,
the published rolling forecast error, and the long-running ``ForecastService``.

Models are artefacts in ``forecast_models`` (the newest of a city is the one in use), so any
number of forecaster processes on any hosts share them. Forecasts go to ``forecasts``, one row
per lot and horizon at the origin (the latest quarter hour with data, never in the future).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
import pickle
import socket
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from numpy.typing import NDArray
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout
from sklearn.base import clone
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from core import channels
from core.city import City, DatedEvent, Event
from core.db import listen, open_pool, queries
from core.leader import Leadership
from core.mqtt import ServiceStatus
from core.runtime import Lifecycle
from core.settings import Settings
from core.status import LotStatus
from forecasting._baselines import Forecaster, Persistence, ProfileAnomaly
from forecasting._data import Panel, panel_from_frame
from forecasting._model import GradientBoostingForecaster

__all__ = [
    "DEFAULT_HORIZONS",
    "Backtest",
    "ForecastError",
    "ForecastService",
    "LoadedModel",
    "ModelInfo",
    "Prediction",
    "backtest",
    "event_calendar",
    "load_newest",
    "load_panel",
    "newest_model",
    "predict",
    "refresh_accuracy",
    "train",
]

logger = logging.getLogger(__name__)

DEFAULT_HORIZONS = (15, 30, 60, 120)
RECENT_DAYS = 28  # data a prediction reads: four weeks make a new lot's own weekly profile
GBR_MIN_DAYS = 14
PROFILE_MIN_DAYS = 7
RETRAIN_AFTER = timedelta(hours=24)
_STEP = timedelta(minutes=15)
_COLUMNS = ["lot_id", "time", "free", "capacity"]
_FORECAST_COLUMNS = ("time", "lot_id", "horizon_min", "target_time", "free", "free_p10",
                     "free_p90", "p_space", "model")  # as copy_backtest names them


class ForecastError(Exception):
    """Training or prediction cannot run (no data, no model); the message is one line."""


@dataclass(frozen=True)
class ModelInfo:
    """A stored model's row of ``forecast_models``, without the artefact."""

    version: str
    created_at: datetime
    kind: str
    trained_from: datetime
    trained_to: datetime
    lots: tuple[str, ...]
    examples: int | None
    reason: str | None
    metrics: dict[str, Any]


@dataclass(frozen=True)
class LoadedModel:
    """A stored model, unpickled."""

    info: ModelInfo
    model: Forecaster


@dataclass(frozen=True)
class Backtest:
    """What one backtest run stored: ``model``'s forecasts from the origins ``first`` to
    ``last`` (all three None when forecasts filled the window already)."""

    model: str | None
    rows: int
    first: datetime | None
    last: datetime | None
    out_of_sample: bool | None
    seconds: float


@dataclass(frozen=True)
class Prediction:
    """What one prediction run wrote."""

    model: str
    origin: datetime
    rows: int
    stale: tuple[str, ...]
    latest_free: dict[str, float]  # per forecast lot: the free count its forecast starts from


def _yield_cpu() -> None:
    """Run the calling thread at the lowest CPU priority from now on (Linux, where a thread
    has a nice value of its own; elsewhere nothing): for work nobody waits for."""
    with suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def _threads(count: int) -> AbstractContextManager[Any]:
    """At most ``count`` OpenMP/BLAS threads in the block (0: the libraries' default)."""
    return threadpool_limits(limits=count) if count else nullcontext()


def load_panel(conn: psycopg.Connection[Any], city: City, *, since: datetime,
               until: datetime) -> Panel | None:
    """The city's readings in (since, until] as a 15-minute Panel; None without data."""
    rows = conn.execute(queries("forecasting")["panel_rows"],
                        {"city": city.id, "since": since, "until": until}).fetchall()
    frame = pd.DataFrame(rows, columns=_COLUMNS)
    # A Panel needs two readings per lot; a lot with one has nothing to forecast from yet.
    frame = frame[frame.groupby("lot_id")["lot_id"].transform("size") >= 2]
    if frame.empty:
        return None
    frame = frame.assign(time=pd.to_datetime(frame["time"], utc=True))
    return panel_from_frame(frame, timezone=city.city.timezone)


def event_calendar(conn: psycopg.Connection[Any], city: City) -> tuple[
        Event | DatedEvent, ...]:
    """The city's events, both kinds the same way: its config's and those planners entered in
    the console (table ``events``, each with the lots whose demand it raises)."""
    rows = conn.execute(queries("forecasting")["console_events"], {"city": city.id}).fetchall()
    return (*city.events, *(DatedEvent(name=name, lots=tuple(lots), starts=starts, ends=ends)
                            for name, lots, starts, ends in rows))


def _with_events(model: Forecaster, events: Sequence[Event | DatedEvent]) -> Forecaster:
    """``model`` knowing ``events`` (a copy): events entered after it was trained count too."""
    if not isinstance(model, GradientBoostingForecaster):
        return model
    current = copy.copy(model)
    current.events = tuple(events)
    return current


def _fit(panel: Panel, city: City, days: float, horizons: Sequence[int],
         events: Sequence[Event | DatedEvent]) -> tuple[Forecaster, str, str | None]:
    """The gradient-boosting model, or the best baseline the history allows and why."""
    if days >= GBR_MIN_DAYS:
        try:
            model = GradientBoostingForecaster(
                horizons=tuple(horizons), subdiv=city.city.state, events=tuple(events),
            ).fit(panel)
            return model, "gbr", None
        except ValueError as exc:
            reason = f"the gradient-boosting model could not be fitted: {exc}"
    else:
        reason = (f"only {days:.1f} days of history; the gradient-boosting model needs "
                  f"{GBR_MIN_DAYS}")
    if days >= PROFILE_MIN_DAYS:
        return ProfileAnomaly().fit(panel), "profile_anomaly", reason
    return (Persistence().fit(panel), "persistence",
            f"{reason} and the profile baseline {PROFILE_MIN_DAYS}")


def train(conn: psycopg.Connection[Any], city: City, *, days: int = 91,
          horizons: Sequence[int] = DEFAULT_HORIZONS, threads: int = 1,
          now: datetime) -> ModelInfo:
    """Fit a model on the last ``days`` of the city's data and store it as a new version."""
    now = now.astimezone(UTC)
    panel = load_panel(conn, city, since=now - timedelta(days=days), until=now)
    if panel is None:
        raise ForecastError(f"no occupancy data of {city.id} in the last {days} days")
    history_days = (panel.n_steps - 1) * _STEP / timedelta(days=1)
    began = time.monotonic()
    with _threads(threads):
        model, kind, reason = _fit(panel, city, history_days, horizons,
                                   event_calendar(conn, city))
    metrics: dict[str, Any] = {"fit_seconds": round(time.monotonic() - began, 2),
                               "history_days": round(history_days, 2),
                               "observed_share": round(float(np.isfinite(panel.free).mean()), 4),
                               "cleaning": dict(panel.cleaning)}
    if isinstance(model, GradientBoostingForecaster):
        metrics["interval_scale"] = round(model.interval_scale_, 4)
        metrics["horizons"] = list(model.horizons)
    artefact = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    prefix = "gbr" if kind == "gbr" else f"baseline-{kind}"
    version = f"{prefix}-{now:%Y%m%dT%H%MZ}-{hashlib.sha256(artefact).hexdigest()[:8]}"
    info = ModelInfo(version=version, created_at=now, kind=kind, trained_from=panel.start,
                     trained_to=panel.time_at(panel.n_steps - 1), lots=panel.lot_ids,
                     examples=getattr(model, "n_train_examples_", None), reason=reason,
                     metrics=metrics)
    conn.execute(queries("forecasting")["insert_model"], {
        "version": info.version, "city": city.id, "created_at": info.created_at,
        "kind": info.kind, "trained_from": info.trained_from, "trained_to": info.trained_to,
        "lots": list(info.lots), "examples": info.examples, "reason": info.reason,
        "metrics": Jsonb(info.metrics), "artefact": artefact})
    if reason:
        logger.warning("trained %s instead of the gradient-boosting model: %s", version, reason)
    else:
        logger.info("trained %s on %d lots, %.1f days, %s examples in %.1f s", version,
                    len(info.lots), history_days, info.examples, metrics["fit_seconds"])
    return info


def newest_model(conn: psycopg.Connection[Any], city: City) -> ModelInfo | None:
    """The metadata of the city's newest stored model, or None."""
    row = conn.execute(queries("forecasting")["newest_model"], {"city": city.id}).fetchone()
    if row is None:
        return None
    version, created_at, kind, trained_from, trained_to, lots, examples, reason, metrics = row
    return ModelInfo(version, created_at, kind, trained_from, trained_to, tuple(lots), examples,
                     reason, metrics)


def load_newest(conn: psycopg.Connection[Any], city: City,
                cached: LoadedModel | None = None) -> LoadedModel | None:
    """The city's newest model; ``cached`` again if it is still the newest."""
    info = newest_model(conn, city)
    if info is None:
        return None
    if cached is not None and cached.info.version == info.version:
        return cached
    row = conn.execute(queries("forecasting")["model_artefact"],
                       {"version": info.version}).fetchone()
    if row is None:  # deleted between the two queries
        return None
    # Unpickling runs whatever code the pickle names. These artefacts come only from our own
    # database, written by train(); whoever can write that table can change every forecast
    # anyway. Never load an artefact from anywhere else.
    model = pickle.loads(row[0])
    if not isinstance(model, Forecaster):
        raise ForecastError(f"model {info.version} is not a forecaster: {type(model).__name__}")
    logger.info("using model %s (%s)", info.version, info.kind)
    return LoadedModel(info, model)


def _forecast(model: Forecaster, panel: Panel, origins: NDArray[np.int64],
              horizon: int) -> list[NDArray[np.float64] | None]:
    """Per lot (row) and origin (column): free, p10, p90 and P(space) (the last three None
    for a baseline)."""
    if not isinstance(model, GradientBoostingForecaster):
        return [model.predict(panel, origins, horizon), None, None, None]
    return list(model.predict_all(panel, origins, horizon))


def _value(values: NDArray[np.float64] | None, lot: int, column: int) -> float | None:
    if values is None or not math.isfinite(values[lot, column]):
        return None
    return float(values[lot, column])


def _forecast_rows(model: Forecaster, version: str, panel: Panel, origins: NDArray[np.int64],
                   horizon: int, wanted: NDArray[np.bool_]) -> list[dict[str, Any]]:
    """The ``forecasts`` rows of one horizon from ``origins`` (grid positions), for the lots
    and origins ``wanted`` marks (n_lots, n_origins) that get a finite forecast."""
    try:
        free, low, high, p_space = _forecast(model, panel, origins, horizon)
    except ValueError as exc:
        raise ForecastError(f"model {version} cannot forecast the lots: {exc}") from None
    assert free is not None
    rows: list[dict[str, Any]] = []
    for lot, column in zip(*np.nonzero(wanted & np.isfinite(free)), strict=True):
        origin_time = panel.time_at(int(origins[column]))
        rows.append({"time": origin_time, "lot_id": panel.lot_ids[lot], "horizon_min": horizon,
                     "target_time": origin_time + timedelta(minutes=horizon),
                     "free": float(free[lot, column]), "free_p10": _value(low, lot, column),
                     "free_p90": _value(high, lot, column),
                     "p_space": _value(p_space, lot, column), "model": version})
    return rows


def predict(conn: psycopg.Connection[Any], city: City, *,
            horizons: Sequence[int] = DEFAULT_HORIZONS, accuracy_days: int = 7,
            threads: int = 1, now: datetime,
            model: LoadedModel | None = None) -> Prediction:
    """Forecast every fresh lot with ``model`` (default the newest), upsert the rows into
    ``forecasts`` and refresh the published error."""
    now = now.astimezone(UTC)
    q = queries("forecasting")
    loaded = model or load_newest(conn, city)
    if loaded is None:
        raise ForecastError(f"no forecast model for {city.id}; run `parkleit forecast train`")
    panel = load_panel(conn, city, since=now - timedelta(days=RECENT_DAYS), until=now)
    if panel is None:
        raise ForecastError(f"no occupancy data of {city.id} in the last {RECENT_DAYS} days")
    fresh = {row[0] for row in conn.execute(q["fresh_lots"], {"city": city.id, "now": now})}
    origin = np.array([panel.n_steps - 1])
    origin_time = panel.time_at(panel.n_steps - 1)
    wanted = np.array([[lot_id in fresh] for lot_id in panel.lot_ids], dtype=bool)
    current = _with_events(loaded.model, event_calendar(conn, city))
    with _threads(threads):
        rows = [row for horizon in horizons for row in _forecast_rows(
            current, loaded.info.version, panel, origin, horizon, wanted)]
    with conn.transaction(), conn.cursor() as cur:
        if rows:
            cur.executemany(q["upsert_forecast"], rows)
            cur.execute(q["notify"], {"channel": channels.FORECASTS, "payload": city.id})
    latest: dict[str, float] = {}
    for index, lot_id in enumerate(panel.lot_ids):
        observed = np.flatnonzero(np.isfinite(panel.free[index]))
        if lot_id in fresh and observed.size:
            latest[lot_id] = float(panel.free[index, observed[-1]])
    stale = tuple(lot_id for lot_id in panel.lot_ids if lot_id not in fresh)
    logger.info("forecast %d lots x %d horizons from %s with %s", len(latest), len(horizons),
                origin_time.isoformat(), loaded.info.version)
    if stale:
        logger.info("no forecast for %d stale lots: %s", len(stale), ", ".join(stale))
    refresh_accuracy(conn, city, window_days=accuracy_days, now=now)
    return Prediction(loaded.info.version, origin_time, len(rows), stale, latest)


def refresh_accuracy(conn: psycopg.Connection[Any], city: City, *, window_days: int = 7,
                     now: datetime) -> int:
    """Recompute the rolling MAE per lot and horizon (``forecast_accuracy``); rows written."""
    cursor = conn.execute(queries("forecasting")["refresh_accuracy"], {
        "city": city.id, "window_days": window_days, "now": now})
    return max(cursor.rowcount, 0)


def backtest(conn: psycopg.Connection[Any], city: City, *, now: datetime,
             horizons: Sequence[int] = DEFAULT_HORIZONS, window_days: int = 7, threads: int = 1,
             model: LoadedModel | None = None) -> Backtest:
    """Fill the published-error window with backtest forecasts and refresh the error.

    ``model`` (default the newest) forecasts from every 15-minute origin whose target lies in
    the ``window_days`` up to ``now`` and that comes before the city's first live forecast
    there, as it would have then: out of sample where it can (see ``_backtest_model``). Only
    lots with a reading at the origin get a forecast. Origins the city has forecasts of
    already are skipped, so running it again adds nothing (and costs two queries).
    """
    began = time.monotonic()
    now = now.astimezone(UTC)
    q = queries("forecasting")
    window = now - timedelta(days=window_days)
    row = conn.execute(q["first_live_forecast"], {"city": city.id, "since": window}).fetchone()
    stop = min(row[0], now) if row and row[0] is not None else now
    longest = timedelta(minutes=max(horizons))
    done = set(conn.execute(q["forecast_origins"], {
        "city": city.id, "since": window - longest, "until": stop}).fetchall())
    times = {horizon: _backtest_times(horizon, window, stop, done) for horizon in horizons}
    nothing = Backtest(None, 0, None, None, None, 0.0)
    if not any(times.values()):
        logger.info("no backtest of %s needed: forecasts fill the last %d days", city.id,
                    window_days)
        return nothing
    loaded = model or load_newest(conn, city)
    if loaded is None:
        raise ForecastError(f"no forecast model for {city.id}; run `parkleit forecast train`")
    panel = load_panel(conn, city, until=now, since=min(
        loaded.info.trained_from - _STEP, window - longest - timedelta(days=RECENT_DAYS)))
    if panel is None:
        raise ForecastError(f"no occupancy data of {city.id} before {now.isoformat()}")
    plan = {horizon: origins for horizon, moments in times.items()
            if (origins := _positions(panel, moments)).size}
    if not plan:
        return nothing  # no data at those origins
    split = min(int(origins[0]) for origins in plan.values())
    observed = np.isfinite(panel.free)
    with _threads(threads):
        forecaster, out_of_sample = _backtest_model(loaded, panel, split)
        rows = [row for horizon, origins in plan.items()
                for row in _forecast_rows(forecaster, loaded.info.version, panel, origins,
                                          horizon, observed[:, origins])]
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(q["create_backtest_staging"])
        with cur.copy(q["copy_backtest"]) as copy:
            for forecast in rows:
                copy.write_row([forecast[column] for column in _FORECAST_COLUMNS])
        cur.execute(q["insert_backtest"])
        stored = max(cur.rowcount, 0)
    refresh_accuracy(conn, city, window_days=window_days, now=now)
    first = panel.time_at(split)
    last = panel.time_at(max(int(origins[-1]) for origins in plan.values()))
    seconds = time.monotonic() - began
    conn.execute(q["record_backtest"], {"version": loaded.info.version, "backtest": Jsonb({
        "rows": stored, "first_origin": first.isoformat(), "last_origin": last.isoformat(),
        "out_of_sample": out_of_sample, "seconds": round(seconds, 2)})})
    logger.info("backtest of %s with %s (%s sample): %d forecasts from origins %s to %s in "
                "%.1f s", city.id, loaded.info.version, "out of" if out_of_sample else "in",
                stored, first.isoformat(), last.isoformat(), seconds)
    return Backtest(loaded.info.version, stored, first, last, out_of_sample, seconds)


def _backtest_times(horizon: int, window: datetime, stop: datetime,
                    done: set[tuple[int, datetime]]) -> list[datetime]:
    """The quarter hours a backtest forecasts ``horizon`` minutes ahead from: the target
    after ``window``, the origin before ``stop`` and not among the (horizon, origin) ``done``."""
    ahead = timedelta(minutes=horizon)
    step = _STEP.total_seconds()
    moment = datetime.fromtimestamp((window - ahead).timestamp() // step * step + step, UTC)
    times = []
    while moment < stop:
        if (horizon, moment) not in done:
            times.append(moment)
        moment += _STEP
    return times


def _positions(panel: Panel, times: list[datetime]) -> NDArray[np.int64]:
    """The grid positions of ``times`` that lie on ``panel``."""
    return np.array([position for position in map(panel.position, times)
                     if 0 <= position < panel.n_steps], dtype=np.int64)


def _backtest_model(loaded: LoadedModel, panel: Panel, split: int) -> tuple[Forecaster, bool]:
    """The forecaster of a backtest from grid position ``split`` on, and whether it is out of
    sample: the stored model's estimator, same parameters, refitted on the data before
    ``split`` where they span a week (every slot of the week seen); else, or where that refit
    fails, the stored model itself, which has seen the targets (in sample: it flatters)."""
    if split * _STEP >= timedelta(days=PROFILE_MIN_DAYS):
        try:
            return clone(loaded.model).fit(panel.head(split)), True
        except ValueError as exc:
            logger.warning("backtest in sample: %s cannot be refitted on the data before %s: "
                           "%s", loaded.info.version, panel.time_at(split).isoformat(), exc)
    return loaded.model, False


class _Listener:
    """LISTENs for lot changes on a connection of its own: a pooled connection would carry the
    LISTEN back into the pool and miss notifications while lent out."""

    def __init__(self, url: str, stop: threading.Event) -> None:
        self._url = url
        self._stop = stop
        self._conn: psycopg.Connection[Any] | None = None
        self._retry_at = 0.0

    def connect(self) -> None:
        """LISTEN unless already listening; on failure try again in a few seconds."""
        if self._conn is not None or time.monotonic() < self._retry_at:
            return
        try:
            self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
            listen(self._conn, [channels.LOT_STATE])
            logger.info("listening for lot changes on %s", channels.LOT_STATE)
        except psycopg.Error as exc:
            self.close()
            self._retry_at = time.monotonic() + 5.0
            logger.warning("cannot LISTEN for lot changes (%s); retrying", type(exc).__name__)

    def wait(self, timeout: float) -> list[str]:
        """Payloads that arrive within ``timeout`` seconds (none while disconnected)."""
        self.connect()
        if self._conn is None:
            self._stop.wait(timeout)
            return []
        try:
            return [note.payload for note in self._conn.notifies(timeout=timeout)]
        except psycopg.Error as exc:
            # Changes missed until the reconnect are caught up by the timed predictions.
            logger.warning("lost the LISTEN connection (%s); reconnecting", type(exc).__name__)
            self.close()
            return []

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class ForecastService(Lifecycle):
    """Retrains nightly, predicts on a timer and after big changes; ``run()`` blocks until
    ``stop()`` (or SIGTERM via the CLI)."""

    def __init__(self, settings: Settings, city: City) -> None:
        self.settings = settings
        self.clock = settings.clock
        self.city = city
        self._stop = threading.Event()
        self._model: LoadedModel | None = None
        self._last_free: dict[str, float] = {}
        self._change_pending = False
        self._trainer: threading.Thread | None = None
        self._trained = threading.Event()
        self._backtesting = threading.Event()  # the trainer thread is in its backtest
        self.leadership = Leadership(settings, "forecast", city.id,
                                     f"{socket.gethostname()}-{os.getpid()}", self._led)
        self._status: ServiceStatus | None = None  # MQTT: online, and this instance's role

    def stop(self) -> None:
        """Ask the service to finish; safe to call more than once, from any thread."""
        self._stop.set()

    def _led(self, leading: bool) -> None:
        """Leadership taken or lost (the leadership's thread): say so on MQTT."""
        if self._status is not None:
            self._status.set_role(leading, self.leadership.term)

    def run(self) -> int:
        """Train if needed, then predict until stopped. Returns the exit code."""
        pool = open_pool(self.settings.DATABASE_URL, min_size=1, max_size=2, name="forecast")
        listener = _Listener(self.settings.DATABASE_URL, self._stop)
        status: ServiceStatus | None = None
        leadership = self.leadership.start_thread(self._stop)
        try:
            status = self._status = ServiceStatus(
                self.settings, self.city.id, "forecast",
                client_id=f"parkleit-forecast-{socket.gethostname()}-{os.getpid()}",
                on_fatal=self.fatal).start()
            status.set_role(self.leadership.leading(), self.leadership.term)
            self._loop(pool, listener)
        finally:
            self._stop.set()
            leadership.join(10)
            listener.close()
            self._join_trainer()
            if status is not None:
                status.close()
            pool.close(timeout=2)
        logger.info("stopped")
        return self.exit_code

    def _loop(self, pool: ConnectionPool, listener: _Listener) -> None:
        settings = self.settings
        listener.connect()  # before the first forecast, so no change after it goes unheard
        next_nightly = self._next_nightly(self.clock.now())
        next_predict = time.monotonic()
        last_predict = -math.inf
        leading = False
        while not self._stop.is_set():
            # Only the leader among replicas trains and writes forecasts; a standby listens.
            if not self.leadership.leading():
                leading = False
                for payload in listener.wait(0.5):
                    self._on_change(payload)
                continue
            if not leading:  # (again) the leader: start as a fresh service would
                leading, next_predict = True, time.monotonic()
                self._start(pool)
            moment = self.clock.now()
            if moment >= next_nightly:
                self._start_training(pool, next_nightly)
                next_nightly = self._next_nightly(moment)
            if self._trained.is_set():  # a new model: use it at once
                self._trained.clear()
                next_predict = time.monotonic()
            change_at = last_predict + settings.FORECAST_DEBOUNCE_S
            now = time.monotonic()
            if now >= next_predict or (self._change_pending and now >= change_at):
                self._change_pending = False
                self._predict(pool)
                last_predict = time.monotonic()
                next_predict = last_predict + settings.FORECAST_INTERVAL_S
                continue
            wake = min(next_predict, change_at) if self._change_pending else next_predict
            # Short waits keep SIGTERM and a finished training noticed promptly.
            for payload in listener.wait(min(max(wake - now, 0.01), 0.5)):
                self._on_change(payload)

    def _start(self, pool: ConnectionPool) -> None:
        """Train if the stored model is missing or old, else backtest it where the published
        error lacks live forecasts."""
        with pool.connection() as conn:
            newest = newest_model(conn, self.city)
        started = self.clock.now()
        if newest is None or started - newest.created_at > RETRAIN_AFTER:
            self._start_training(pool, None)
        else:
            self._start_training(pool, None, backtest_at=started)

    def _next_nightly(self, after: datetime) -> datetime:
        """The first retrain time (local FORECAST_RETRAIN_HOUR:00) after ``after``."""
        zone = self.city.tz
        at = clock_time(self.settings.FORECAST_RETRAIN_HOUR)
        day = after.astimezone(zone).date()
        candidate = datetime.combine(day, at, tzinfo=zone)
        if candidate <= after:
            candidate = datetime.combine(day + timedelta(days=1), at, tzinfo=zone)
        return candidate.astimezone(UTC)

    def _on_change(self, payload: str) -> None:
        """Flag a prediction when a lot's free count moved by the change share of capacity."""
        try:
            city_id, status = LotStatus.from_notification(payload)
        except ValueError:
            return
        lot_id, free, capacity = status.lot_id, status.free, status.capacity
        if city_id != self.city.id or free is None:
            return  # another city's, or unknown now: nothing new to forecast from
        before = self._last_free.get(lot_id)
        share = self.settings.FORECAST_CHANGE_SHARE
        if before is None or abs(free - before) >= share * capacity:
            if not self._change_pending:
                logger.info("big change at %s (%s -> %s free); predicting again", lot_id,
                            before, free)
            self._change_pending = True
            # A lot the prediction skips (stale) gets no latest_free: without this every one
            # of its updates would count as a big change.
            self._last_free[lot_id] = float(free)

    def _predict(self, pool: ConnectionPool) -> None:
        settings = self.settings
        try:
            with pool.connection(timeout=10) as conn:
                self._model = load_newest(conn, self.city, cached=self._model)
                if self._model is None:
                    logger.warning("no forecast model of %s yet", self.city.id)
                    self._start_training(pool, None)
                    return
                result = predict(conn, self.city, horizons=settings.FORECAST_HORIZONS,
                                 accuracy_days=settings.FORECAST_ACCURACY_DAYS,
                                 threads=settings.FORECAST_THREADS, model=self._model,
                                 now=self.clock.now())
        except ForecastError as exc:
            logger.error("no forecast: %s", exc)
            return
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            logger.warning("no forecast: database unavailable (%s)", type(exc).__name__)
            return
        self._last_free = result.latest_free

    def _start_training(self, pool: ConnectionPool, due: datetime | None, *,
                        backtest_at: datetime | None = None) -> None:
        """Train and backtest in the background (forecasts go on with the old model
        meanwhile); with ``backtest_at`` only backtest (see ``_train``)."""
        if self._trainer is not None and self._trainer.is_alive():
            return
        self._trainer = threading.Thread(target=self._train, args=(pool, due, backtest_at),
                                         name="forecast-train", daemon=True)
        self._trainer.start()

    def _train(self, pool: ConnectionPool, due: datetime | None,
               backtest_at: datetime | None) -> None:
        """Train a new model, then backtest it where the published error needs that; with
        ``backtest_at``, only backtest the newest model, as at that time."""
        settings = self.settings
        stage = "training" if backtest_at is None else "backtest"
        self._backtesting.clear()
        try:
            with pool.connection(timeout=10) as conn:
                if backtest_at is None:
                    newest = newest_model(conn, self.city)
                    if due is not None and newest is not None and newest.created_at >= due:
                        logger.info("%s was trained after %s already", newest.version, due)
                        return
                    info = train(conn, self.city, days=settings.FORECAST_TRAIN_DAYS,
                                 horizons=settings.FORECAST_HORIZONS,
                                 threads=settings.FORECAST_THREADS, now=self.clock.now())
                    # The live forecasts take the new model at once; the backtest (a refit
                    # and many origins) runs beside them, so it never delays one.
                    self._trained.set()
                    stage, backtest_at = "backtest", info.created_at
                # Nobody waits for it: it yields the CPU to the live forecasts and to every
                # other process (this thread ends with it), and a stop does not wait for it.
                _yield_cpu()
                self._backtesting.set()
                backtest(conn, self.city, now=backtest_at,
                         horizons=settings.FORECAST_HORIZONS,
                         window_days=settings.FORECAST_ACCURACY_DAYS,
                         threads=settings.FORECAST_THREADS)
        except ForecastError as exc:
            logger.error("%s failed: %s", stage, exc)
        except (psycopg.Error, PoolTimeout) as exc:
            logger.error("%s failed: database error (%s)", stage, type(exc).__name__)
        except Exception:
            # The previous model keeps forecasting; the next attempt is the next night.
            logger.exception("%s failed", stage)

    def _join_trainer(self) -> None:
        trainer = self._trainer
        if trainer is not None and trainer.is_alive() and self._backtesting.is_set():
            # It stores all or nothing, and the next start does it again.
            logger.info("abandoning the backtest in progress")
        elif trainer is not None and trainer.is_alive():
            logger.info("waiting for the training in progress")
            trainer.join(self.settings.SHUTDOWN_TIMEOUT_S)
            if trainer.is_alive():
                logger.warning("abandoning the training in progress (nothing of it is stored)")
