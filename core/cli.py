"""The ``parkleit`` command line. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or config."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import psycopg

from core.city import City, CityConfigError, load_city
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
    from core.db import migrate
    from core.registry import sync_registry

    settings = _settings()
    city = _city(args, settings)
    require_database(settings.DATABASE_URL, create=True)
    with psycopg.connect(settings.DATABASE_URL, autocommit=True) as conn:
        applied = migrate(conn)
        sync_registry(conn, city)
    logger.info("schema up to date (%s); registry of %s synced: %d lots",
                ", ".join(applied) or "nothing to apply", city.id, len(city.lots))
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
        backfill_history(conn, city, end=args.end or datetime.now(UTC), weeks=args.weeks,
                         seed=args.seed)
    return 0


def _timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"needs a UTC offset or Z: {text}")
    return moment


def _cmd_demo(args: argparse.Namespace) -> int:
    from core.demo import run_demo

    settings = _settings()
    return run_demo(settings, _city(args, settings), args.city or settings.CITY, rate=args.rate)


def _positive(kind: Callable[[str], float | int]) -> Callable[[str], float | int]:
    def parse(text: str) -> float | int:
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0: {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="parkleit", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def city_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--city", help="city config name or path (default: PARKLEIT_CITY)")

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    migrate = db_commands.add_parser("migrate", help="apply the schema and migrations; "
                                     "sync the city registry (idempotent)")
    city_option(migrate)
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

    demo = commands.add_parser("demo", help="run the whole system on the example city")
    city_option(demo)
    demo.add_argument("--rate", type=_positive(float), default=20.0,
                      help="load generator rate in messages per second")
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
    except UsageError as exc:
        print(f"parkleit: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
