"""The ``parkleit`` command line. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or config."""

from __future__ import annotations

import argparse
import logging
import re
import socket
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from core.city import Cities, City, CityConfigError, load_cities, load_city
from core.settings import Settings, SettingsError, get_settings

__all__ = ["UsageError", "main"]

logger = logging.getLogger("parkleit")


class UsageError(Exception):
    """Bad usage or configuration; the message is one line and the exit code is 2."""


def _settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        raise UsageError(str(exc)) from None


def _city(args: argparse.Namespace, settings: Settings) -> City:
    try:
        return load_city(args.city or settings.CITY)
    except CityConfigError as exc:
        raise UsageError(str(exc)) from None


def _cities(args: argparse.Namespace, settings: Settings) -> tuple[tuple[str, ...], Cities]:
    """The config references and configs of ``--city a,b`` or the installation's cities."""
    refs = tuple(part.strip() for part in args.city.split(",") if part.strip()) if (
        args.city) else settings.city_refs
    try:
        return refs, load_cities(refs)
    except CityConfigError as exc:
        raise UsageError(str(exc)) from None


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or ''}{parts.path}"


def require_database(url: str, *, create: bool = False) -> None:
    """Exit 2 with a one-line reason if the database cannot be reached."""
    try:
        from core.db import check_database, create_database

        try:
            check_database(url)
        except psycopg.OperationalError as exc:
            if not (create and "does not exist" in str(exc)):
                raise
            parts = urlsplit(url)
            admin = urlunsplit(parts._replace(path="/postgres"))
            create_database(admin, parts.path.lstrip("/"))
            logger.info("created database %s", parts.path.lstrip("/"))
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot reach the database at {_where(url)}: {reason}") from None


def require_broker(settings: Settings) -> None:
    """Exit 2 with a one-line reason if nothing answers at the MQTT address."""
    target = settings.mqtt
    try:
        with socket.create_connection((target.host, target.port), timeout=3):
            pass
    except OSError as exc:
        raise UsageError(
            f"cannot reach the MQTT broker at {target.host}:{target.port}: {exc.strerror or exc}"
        ) from None


def _cmd_db_migrate(args: argparse.Namespace) -> int:
    from core.db import apply_roles, migrate
    from core.registry import sync_registry

    settings = _settings()
    _, cities = _cities(args, settings)
    require_database(settings.DATABASE_URL, create=True)
    passwords = {service: secret.get_secret_value() if secret else None for service, secret in (
        ("api", settings.DB_API_PASSWORD), ("ingest", settings.DB_INGEST_PASSWORD),
        ("signage", settings.DB_SIGNAGE_PASSWORD), ("forecast", settings.DB_FORECAST_PASSWORD))}
    with psycopg.connect(settings.DATABASE_URL, autocommit=True) as conn:
        applied = migrate(conn)
        for city in cities:
            sync_registry(conn, city)
        if settings.DB_ROLES:
            try:
                roles = apply_roles(conn, settings.DB_ROLE_PREFIX, passwords)
            except psycopg.errors.InsufficientPrivilege as exc:
                raise UsageError(f"cannot set up the services' database roles: {exc}") from None
            logger.info("the services' database roles have what core/sql/roles.sql grants "
                        "(%s)", ", ".join(roles) or "no role created, no password set")
    logger.info("schema up to date (%s); registry synced: %s", ", ".join(applied) or
                "nothing to apply", ", ".join(f"{city.id} {len(city.lots)} lots"
                                              for city in cities))
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from ingest import IngestService, install_signal_handlers

    settings = _settings()
    if args.client_id:
        settings = settings.model_copy(update={"INGEST_CLIENT_ID": args.client_id})
    if args.metrics_port is not None:
        settings = settings.model_copy(update={"INGEST_METRICS_PORT": args.metrics_port})
    city = _city(args, settings)
    require_database(settings.DATABASE_URL)
    require_broker(settings)
    service = IngestService(settings, city)
    install_signal_handlers(service.stop)
    return service.run()


def _cmd_simulate_load(args: argparse.Namespace) -> int:
    from simulators.load import LoadError, run_load

    settings = _settings()
    city = _city(args, settings)
    require_broker(settings)
    try:
        report = run_load(settings, city, rate=args.rate, bays=args.bays,
                          duration=args.duration, seed=args.seed)
    except LoadError as exc:
        raise UsageError(str(exc)) from None
    logger.info("published %d messages (%d bay, %d counter) in %.1f s: %.0f msg/s",
                report.published, report.bay_messages, report.counter_messages,
                report.elapsed_s, report.published / max(report.elapsed_s, 1e-9))
    return 0


def _cmd_simulate_history(args: argparse.Namespace) -> int:
    from core.db import migrate
    from core.registry import sync_registry
    from simulators.history import backfill_history

    settings = _settings()
    city = _city(args, settings)
    require_database(settings.DATABASE_URL, create=True)
    with psycopg.connect(settings.DATABASE_URL, autocommit=True) as conn:
        migrate(conn)
        sync_registry(conn, city)
        backfill_history(conn, city, end=args.end or settings.clock.now(), weeks=args.weeks,
                         seed=args.seed)
    return 0


def _timestamp(text: str) -> datetime:
    """An RFC 3339 time with a UTC offset (``Z`` in either case)."""
    try:
        moment = datetime.fromisoformat(text.strip().upper())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"needs a UTC offset or Z: {text}")
    return moment


def _start_time(text: str) -> datetime | timedelta:
    """An RFC 3339 time with an offset, or ``now``, ``now-6h`` (units s, m, h, d) as how long
    before the clock's now (the clock is the settings', read once the command runs)."""
    value = text.strip().lower()
    if not value.startswith("now"):
        return _timestamp(text)
    match = re.fullmatch(r"now(?:-(\d+(?:\.\d+)?)([smhd]))?", value)
    if not match:
        raise argparse.ArgumentTypeError(f"not 'now' or 'now-<n><s|m|h|d>': {text}")
    ago = float(match[1] or 0) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2] or "s"]
    return timedelta(seconds=ago)


def _fault_rate(text: str) -> tuple[str, float]:
    name, sep, rate = text.partition("=")
    try:
        value = float(rate)
    except ValueError:
        value = -1.0
    if not sep or not name.strip() or not value >= 0:
        raise argparse.ArgumentTypeError(f"not NAME=RATE with a rate >= 0: {text}")
    return name.strip().lower(), value


def _cmd_simulate_city(args: argparse.Namespace) -> int:
    import signal
    import threading

    from simulators.city import CitySimError, FaultConfig, run_city

    settings = _settings()
    city = _city(args, settings)
    try:
        faults = FaultConfig.parse(args.faults, dict(args.fault_rate or ()))
    except CitySimError as exc:
        raise UsageError(str(exc)) from None
    if not args.heartbeat_min > 0:
        raise UsageError("--heartbeat-min must be > 0")
    if args.truth is not None and not args.truth.parent.is_dir():
        raise UsageError(f"--truth {args.truth}: no such directory {args.truth.parent}")
    now = settings.clock.now()
    start = (now - args.start if isinstance(args.start, timedelta) else args.start) or now
    require_broker(settings)
    stop = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stop.set())
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        report = run_city(settings, city, start=start, speed=args.speed,
                          duration_s=args.duration, seed=args.seed, faults=faults,
                          truth_path=args.truth, stop_event=stop,
                          heartbeat_min=args.heartbeat_min)
    except CitySimError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        logger.error("simulation failed: %s", exc)
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    hours = (report.end - report.start).total_seconds() / 3600
    logger.info("%s: %d messages over %.2f simulated hours (%.0f per hour) in %.1f s: %s",
                "stopped" if report.stopped else "done", report.published, hours,
                report.per_hour(), report.elapsed_s,
                ", ".join(f"{kind} {n}" for kind, n in report.by_kind.items()) or "none")
    if report.faults:
        logger.info("faults: %s", ", ".join(f"{k} {v}" for k, v in report.faults.items()))
    if args.truth is not None:
        logger.info("ground truth: %d rows in %s", report.truth_rows, args.truth)
    if report.unacknowledged:
        logger.error("%d messages were not acknowledged by the broker", report.unacknowledged)
        return 1
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from core.demo import API_HOST, run_demo
    from core.embedded import tcp_answers

    settings = _settings()
    refs, cities = _cities(args, settings)
    if tcp_answers(API_HOST, settings.API_PORT):
        raise UsageError(f"something listens on {API_HOST}:{settings.API_PORT} already, where "
                         "the demo's API would; set PARKLEIT_API_PORT to a free port")
    return run_demo(settings, cities, refs, speed=args.speed)


def _horizons(text: str) -> tuple[int, ...]:
    """A comma list of forecast horizons in minutes, each a positive multiple of 15."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values or any(value <= 0 or value % 15 for value in values):
        raise argparse.ArgumentTypeError(
            f"not a comma list of positive multiples of 15 minutes: {text}")
    return tuple(dict.fromkeys(values))


def _cmd_forecast_evaluate(args: argparse.Namespace) -> int:
    import json

    from forecasting import DataError, load_csv
    from forecasting._evaluate import evaluate

    if args.test_days < 1:
        raise UsageError("--test-days must be at least 1")
    try:
        panel = load_csv(args.csv, timezone=args.timezone)
        report = evaluate(panel, test_days=args.test_days, horizons=args.horizons)
    except DataError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(report))
        return 0
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
    return 0


def _forecast_database(settings: Settings) -> None:
    """Exit 2 unless the database answers and has the forecasting tables."""
    require_database(settings.DATABASE_URL)
    with psycopg.connect(settings.DATABASE_URL) as conn:
        row = conn.execute("SELECT to_regclass('forecast_models')").fetchone()
    if row is None or row[0] is None:
        raise UsageError("the database has no forecasting tables; run `parkleit db migrate`")


def _cmd_forecast_train(args: argparse.Namespace) -> int:
    from forecasting import ForecastError, backtest, train

    settings = _settings()
    city = _city(args, settings)
    if args.days is not None and args.days < 1:
        raise UsageError("--days must be at least 1")
    days = args.days or settings.FORECAST_TRAIN_DAYS
    _forecast_database(settings)
    stage = "training"
    try:
        with psycopg.connect(settings.DATABASE_URL, autocommit=True) as conn:
            info = train(conn, city, days=days, horizons=settings.FORECAST_HORIZONS,
                         threads=settings.FORECAST_THREADS, now=settings.clock.now())
            print(info.version, flush=True)
            stage = "backtest"
            if args.backtest:
                backtest(conn, city, now=info.created_at, horizons=settings.FORECAST_HORIZONS,
                         window_days=settings.FORECAST_ACCURACY_DAYS,
                         threads=settings.FORECAST_THREADS)
    except (ForecastError, psycopg.Error) as exc:
        logger.error("%s failed: %s", stage, str(exc).strip().splitlines()[0])
        return 1
    return 0


def _cmd_forecast_predict(args: argparse.Namespace) -> int:
    from forecasting import ForecastError, predict

    settings = _settings()
    city = _city(args, settings)
    _forecast_database(settings)
    try:
        with psycopg.connect(settings.DATABASE_URL, autocommit=True) as conn:
            result = predict(conn, city, horizons=args.horizons or settings.FORECAST_HORIZONS,
                             accuracy_days=settings.FORECAST_ACCURACY_DAYS,
                             threads=settings.FORECAST_THREADS, now=settings.clock.now())
    except (ForecastError, psycopg.Error) as exc:
        logger.error("prediction failed: %s", str(exc).strip().splitlines()[0])
        return 1
    print(f"{result.rows} forecasts from {result.origin.isoformat()} with {result.model}")
    return 0


def _cmd_forecast_serve(args: argparse.Namespace) -> int:
    from forecasting import ForecastService
    from ingest import install_signal_handlers

    settings = _settings()
    city = _city(args, settings)
    _forecast_database(settings)
    require_broker(settings)
    service = ForecastService(settings, city)
    install_signal_handlers(service.stop)
    return service.run()


def _cmd_signage(args: argparse.Namespace) -> int:
    from ingest import install_signal_handlers
    from signage import SignageService, timing_problem

    settings = _settings()
    if args.metrics_port is not None:
        settings = settings.model_copy(update={"SIGNAGE_METRICS_PORT": args.metrics_port})
    city = _city(args, settings)
    problem = timing_problem(settings, city)
    if problem:
        raise UsageError(problem)
    require_database(settings.DATABASE_URL)
    with psycopg.connect(settings.DATABASE_URL) as conn:
        row = conn.execute("SELECT to_regclass('sign_state')").fetchone()
    if row is None or row[0] is None:
        raise UsageError("the database has no sign_state table; run `parkleit db migrate`")
    require_broker(settings)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per keep-alive
    service = SignageService(settings, city)
    install_signal_handlers(service.stop)
    return service.run()


def _cmd_api(args: argparse.Namespace) -> int:
    import math
    import signal

    import uvicorn

    from api import ApiServer, create_app, http_protocol

    settings = _settings()
    refs, cities = _cities(args, settings)
    settings = settings.model_copy(update={"CITIES": refs})  # what an admin reload reads
    require_database(settings.DATABASE_URL)
    app = create_app(settings, cities)
    config = uvicorn.Config(
        app, host=args.host or settings.API_HOST,
        http=http_protocol(settings),  # httptools, reading no head beyond the app's bounds
        port=settings.API_PORT if args.port is None else args.port, log_config=None,
        timeout_graceful_shutdown=math.ceil(settings.SHUTDOWN_TIMEOUT_S), server_header=False,
        forwarded_allow_ips=settings.API_FORWARDED_ALLOW_IPS)
    server = ApiServer(config, app)  # ends the event streams as it starts draining
    # uvicorn drains on SIGTERM/SIGINT, then raises the signal again for the handler it
    # found; a no-op one lets a graceful stop end with 0 like every other service.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    server.run()
    return 0 if server.started else 1


def _cmd_api_add_key(args: argparse.Namespace) -> int:
    from api import KeyFileError, add_key

    path = args.file or _settings().API_KEYS_FILE
    if path is None:
        raise UsageError("no keys file: set PARKLEIT_API_KEYS_FILE or pass --file")
    try:
        key = add_key(path, args.name)
    except (KeyFileError, OSError) as exc:
        raise UsageError(str(exc)) from None
    print(key)
    logger.info("key %s added to %s; the line above is the only copy of the key", args.name,
                path)
    return 0


def _cmd_simulate_signs(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from simulators.signs import run_signs

    settings = _settings()
    city = _city(args, settings)
    if not args.minute_s > 0:
        raise UsageError("--minute-s must be > 0")
    require_broker(settings)  # mqtt signs listen there

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_signs(city, stop, settings=settings, minute_s=args.minute_s)

    try:
        asyncio.run(serve())
    except ValueError as exc:  # a sign address the simulator cannot serve
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot serve the signs of {city.id}: {exc}") from None
    return 0


def _positive(kind: Callable[[str], float | int]) -> Callable[[str], float | int]:
    def parse(text: str) -> float | int:
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0: {text}")
        return value

    return parse


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text}") from None
    if not 1 <= port <= 65_535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535: {text}")
    return port


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="parkleit",
        description="parkleit, a parking guidance system. Exit codes: 0 ok, 1 runtime "
        "failure, 2 bad usage or config (with a one-line reason).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def city_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--city", help="city config name or path (default: PARKLEIT_CITY)")

    def cities_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--city", help="city config names or paths, comma-separated "
                         "(default: PARKLEIT_CITIES, else PARKLEIT_CITY)")

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    migrate = db_commands.add_parser("migrate", help="apply the schema and migrations; "
                                     "sync the city registry; with PARKLEIT_DB_ROLES=true the "
                                     "services' database roles and grants (idempotent)")
    cities_option(migrate)
    migrate.set_defaults(handler=_cmd_db_migrate)

    ingest = commands.add_parser("ingest", help="MQTT sensor messages into the database")
    city_option(ingest)
    ingest.add_argument("--client-id", help="MQTT client id of this worker (stable across "
                        "restarts, unique per worker; default PARKLEIT_INGEST_CLIENT_ID)")
    ingest.add_argument("--metrics-port", type=int, help="Prometheus port (0 = off)")
    ingest.set_defaults(handler=_cmd_ingest)

    simulate = commands.add_parser("simulate", help="simulated sensors")
    sim_commands = simulate.add_subparsers(dest="sim_command", required=True,
                                           metavar="SIM_COMMAND")
    load = sim_commands.add_parser("load", help="publish bay and counter messages at a "
                                   "fixed rate (QoS 1)")
    city_option(load)
    load.add_argument("--rate", type=_positive(float), default=100.0,
                      help="messages per second (0 = as fast as the broker takes them)")
    load.add_argument("--bays", type=_positive(int), default=0,
                      help="how many of the city's bays to drive (0 = all)")
    load.add_argument("--duration", type=_positive(float), default=60.0,
                      help="seconds to run (0 = until interrupted)")
    load.add_argument("--seed", type=int, default=1)
    load.set_defaults(handler=_cmd_simulate_load)

    history = sim_commands.add_parser("history", help="weeks of simulated lot occupancy "
                                      "straight into the database (bulk COPY)")
    city_option(history)
    history.add_argument("--weeks", type=_positive(float), default=8.0)
    history.add_argument("--seed", type=int, default=1)
    history.add_argument("--end", type=_timestamp, help="last time (RFC 3339; default now)")
    history.set_defaults(handler=_cmd_simulate_history)

    sim_city = sim_commands.add_parser(
        "city", help="drive every lot, bay and counter of the city over MQTT in the real "
        "formats (native, counters, TTN v3, ChirpStack v4), with faults and ground truth")
    city_option(sim_city)
    sim_city.add_argument("--speed", type=_positive(float), default=1.0,
                          help="simulated time per real time (60 = an hour a minute; 0 = as "
                          "fast as possible); never runs ahead of the wall clock")
    sim_city.add_argument("--start", type=_start_time,
                          help="simulated start: RFC 3339, 'now' or 'now-6h' (default now)")
    sim_city.add_argument("--duration", type=_positive(float), default=0.0,
                          help="seconds of simulated time (0 = until interrupted)")
    sim_city.add_argument("--seed", type=int, default=1)
    sim_city.add_argument("--truth", type=Path, metavar="FILE",
                          help="write the ground truth CSV (time,lot_id,occupied,free,"
                          "capacity; one row per lot per minute)")
    sim_city.add_argument("--faults", default="none",
                          help="comma list of faults, 'all' or 'none' (default); faults: "
                          "drop, duplicate, late, stuck, flapping, dead_battery, "
                          "counter_drift, counter_reset (a restart from zero), "
                          "counter_restart (from another value), gateway_offline, malformed")
    sim_city.add_argument("--fault-rate", type=_fault_rate, action="append", metavar="NAME=RATE",
                          help="set a fault's rate (and switch it on); repeatable")
    sim_city.add_argument("--heartbeat-min", type=float, default=10.0,
                          help="bay sensor heartbeat interval in minutes (default 10)")
    sim_city.set_defaults(handler=_cmd_simulate_city)

    sim_signs = sim_commands.add_parser(
        "signs", help="serve every sign of the city on its address (NTCIP 1203 over SNMP, HTTP, "
        "MQTT) until SIGTERM, with the signs' own fallbacks (comm loss, end of duration)")
    city_option(sim_signs)
    sim_signs.add_argument("--minute-s", type=float, default=60.0,
                           help="real seconds of one sign minute (the unit of the signs' "
                           "timers; default 60)")
    sim_signs.set_defaults(handler=_cmd_simulate_signs)

    forecast = commands.add_parser("forecast", help="occupancy forecasts")
    forecast_commands = forecast.add_subparsers(dest="forecast_command", required=True,
                                                metavar="FORECAST_COMMAND")
    evaluate = forecast_commands.add_parser(
        "evaluate", help="score the baselines (persistence, seasonal naive, profile + last "
        "anomaly) and the gradient-boosting model on a long CSV lot_id,time,free,capacity",
        description="Train on everything before the last --test-days local days, forecast "
        "every 15-minute point of the test window from the data up to it, and score where "
        "both the forecast time and the target time are observed. MAE in free spaces "
        "(pooled) and of the free rate (mean of per-lot MAE); for the gradient-boosting "
        "model (\"model\") also coverage_80, the share of points inside its 10-90 %% "
        "interval.")
    evaluate.add_argument("--csv", type=Path, required=True, metavar="FILE",
                          help="long CSV: lot_id,time,free,capacity; RFC 3339 times with an "
                          "offset; any sampling interval (snapped to 15 minutes)")
    evaluate.add_argument("--test-days", type=_positive(int), default=14,
                          help="length of the test window in days (default 14)")
    evaluate.add_argument("--horizons", type=_horizons, default=(15, 30, 60, 120),
                          help="comma list of horizons in minutes (default 15,30,60,120)")
    evaluate.add_argument("--timezone", default="Europe/Berlin",
                          help="local time zone of weekday and time-of-day profiles and of "
                          "the test-window days (default Europe/Berlin)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.set_defaults(handler=_cmd_forecast_evaluate)

    train = forecast_commands.add_parser(
        "train", help="fit the gradient-boosting model on the database's history and store "
        "it as a new model version (a baseline, with the reason, if the history is too short); "
        "then backtest it where the published forecast error lacks live forecasts")
    city_option(train)
    train.add_argument("--days", type=_positive(int),
                       help="days of history to learn from (default PARKLEIT_FORECAST_TRAIN_DAYS"
                       ", 91)")
    train.add_argument("--no-backtest", dest="backtest", action="store_false",
                       help="store the model only; `forecast serve` backtests it at its start, "
                       "beside its first live forecasts")
    train.set_defaults(handler=_cmd_forecast_train)

    predict = forecast_commands.add_parser(
        "predict", help="forecast every lot with the newest model into the forecasts table "
        "and refresh the published forecast error")
    city_option(predict)
    predict.add_argument("--horizons", type=_horizons,
                         help="comma list of horizons in minutes (default "
                         "PARKLEIT_FORECAST_HORIZONS, 15,30,60,120)")
    predict.set_defaults(handler=_cmd_forecast_predict)

    serve = forecast_commands.add_parser(
        "serve", help="retrain nightly, predict every PARKLEIT_FORECAST_INTERVAL_S seconds "
        "and after big changes of a lot (until SIGTERM)")
    city_option(serve)
    serve.set_defaults(handler=_cmd_forecast_serve)

    signage = commands.add_parser(
        "signage", help="keep every sign of the city showing its lots: push on each change, "
        "keep-alive, retries, audit log in sign_log (until SIGTERM)")
    city_option(signage)
    signage.add_argument("--metrics-port", type=int, help="Prometheus port (0 = off; default "
                         "PARKLEIT_SIGNAGE_METRICS_PORT, 9102)")
    signage.set_defaults(handler=_cmd_signage)

    api = commands.add_parser(
        "api", help="serve the HTTP API (open data, DATEX II, stream, web map) until SIGTERM")
    cities_option(api)
    api.add_argument("--host", help="address to listen on (default PARKLEIT_API_HOST, "
                     "127.0.0.1)")
    api.add_argument("--port", type=_port, help="port (default PARKLEIT_API_PORT, 8000)")
    api.set_defaults(handler=_cmd_api)
    api_commands = api.add_subparsers(dest="api_command", metavar="API_COMMAND")
    add_key = api_commands.add_parser(
        "add-key", help="make a new admin API key NAME, append its hash to the keys file and "
        "print the key (shown this once; the file keeps only the hash)")
    add_key.add_argument("name", help="whose key: 1-40 of a-z, 0-9, _ and -")
    add_key.add_argument("--file", type=Path, help="keys file (default PARKLEIT_API_KEYS_FILE)")
    add_key.set_defaults(handler=_cmd_api_add_key)

    demo = commands.add_parser(
        "demo", help="run the whole system on the cities (PARKLEIT_CITIES): history, forecaster, "
        "simulators, ingest, signage and the API (PARKLEIT_API_PORT, 8000) until Ctrl-C")
    cities_option(demo)
    demo.add_argument("--speed", type=_positive(float), default=60.0,
                      help="how fast the city simulator replays the last ten minutes before "
                      "it runs at real time (default 60: ten minutes in ten seconds)")
    demo.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``parkleit`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.handler(args)
    except (UsageError, CityConfigError) as exc:  # the latter: ids taken by another city
        print(f"parkleit: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
