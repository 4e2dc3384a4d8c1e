"""The long-running services: ``parkleit ingest``, ``signage``, ``api`` (and ``api add-key``)
and ``demo``, the whole system at once. Services are imported when their command runs."""

from __future__ import annotations

import argparse
import logging
import math
import signal
from pathlib import Path

from core.runtime import STOP_SIGNALS, serve

from ._common import (
    Commands,
    UsageError,
    cities,
    city,
    command,
    listen_options,
    logger,
    positive,
    require_broker,
    require_database,
    require_table,
    settings,
)


def register(commands: Commands) -> None:
    ingest = command(commands, "ingest", _ingest, help="MQTT sensor messages into the database")
    ingest.add_argument("--client-id", help="MQTT client id of this worker (stable across "
                        "restarts, unique per worker; default PARKLEIT_INGEST_CLIENT_ID)")
    ingest.add_argument("--metrics-port", type=int, help="Prometheus port (0 = off)")
    ingest.add_argument("--leave", action="store_true",
                        help="on SIGTERM, leave the shared subscription for good (scale-down): "
                        "unsubscribe, drain, acknowledge, end the session (also "
                        "PARKLEIT_INGEST_LEAVE_ON_STOP)")

    signage = command(commands, "signage", _signage,
                      help="keep every sign of the city showing its lots: push on each change, "
                      "keep-alive, retries, audit log in sign_log (until SIGTERM)")
    signage.add_argument("--metrics-port", type=int, help="Prometheus port (0 = off; default "
                         "PARKLEIT_SIGNAGE_METRICS_PORT, 9102)")

    command(commands, "ocpi", _ocpi,
            help="pull the charging points' status from the city's OCPI 2.2.1 peers "
                 "(ocpi_peers: their locations, on their interval; UNKNOWN after their "
                 "staleness limit) until SIGTERM")

    api = command(commands, "api", _api, city="many",
                  help="serve the HTTP API (open data, DATEX II, stream, web map) until SIGTERM")
    listen_options(api, "API")
    api_commands = api.add_subparsers(dest="api_command", metavar="API_COMMAND")
    add_key = command(api_commands, "add-key", _api_add_key, city=None,
                      help="make a new admin API key NAME, append its hash to the keys file and "
                           "print the key (shown this once; the file keeps only the hash)")
    add_key.add_argument("name", help="whose key: 1-40 of a-z, 0-9, _ and -")
    add_key.add_argument("--file", type=Path, help="keys file (default PARKLEIT_API_KEYS_FILE)")

    demo = command(commands, "demo", _demo, city="many",
                   help="run the whole system on the cities (PARKLEIT_CITIES): history, "
                        "forecaster, simulators, ingest, signage and the API (PARKLEIT_API_PORT, "
                        "8000) until Ctrl-C")
    demo.add_argument("--speed", type=positive(float), default=60.0,
                      help="how fast the city simulator replays the last ten minutes before "
                      "it runs at real time (default 60: ten minutes in ten seconds)")


def _ingest(args: argparse.Namespace) -> int:
    from ingest import IngestService

    config = settings()
    if args.client_id:
        config = config.model_copy(update={"INGEST_CLIENT_ID": args.client_id})
    if args.metrics_port is not None:
        config = config.model_copy(update={"INGEST_METRICS_PORT": args.metrics_port})
    if args.leave:
        config = config.model_copy(update={"INGEST_LEAVE_ON_STOP": True})
    lot_city = city(args, config)
    require_database(config.DATABASE_URL)
    require_broker(config)
    return serve(IngestService(config, lot_city))


def _signage(args: argparse.Namespace) -> int:
    from signage import SignageService, timing_problem

    config = settings()
    if args.metrics_port is not None:
        config = config.model_copy(update={"SIGNAGE_METRICS_PORT": args.metrics_port})
    sign_city = city(args, config)
    problem = timing_problem(config, sign_city)
    if problem:
        raise UsageError(problem)
    require_table(config.DATABASE_URL, "sign_state", "sign_state table")
    require_broker(config)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per keep-alive
    return serve(SignageService(config, sign_city))


def _ocpi(args: argparse.Namespace) -> int:
    from ocpi import OcpiService

    config = settings()
    charger_city = city(args, config)
    service = OcpiService(config, charger_city)
    if not service.peers:
        raise UsageError(f"{charger_city.id} has no OCPI peer with a locations_url to pull")
    try:
        service.tokens()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    require_table(config.DATABASE_URL, "evse_state", "evse_state table")
    require_broker(config)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per page
    return serve(service)


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    from api import ApiServer, create_app, http_protocol

    config = settings()
    refs, configs = cities(args, config)
    config = config.model_copy(update={"CITIES": refs})  # what an admin reload reads
    require_database(config.DATABASE_URL)
    app = create_app(config, configs)
    server_config = uvicorn.Config(
        app, host=args.host or config.API_HOST,
        http=http_protocol(config),  # httptools, reading no head beyond the app's bounds
        port=config.API_PORT if args.port is None else args.port, log_config=None,
        timeout_graceful_shutdown=math.ceil(config.SHUTDOWN_TIMEOUT_S), server_header=False,
        forwarded_allow_ips=config.API_FORWARDED_ALLOW_IPS)
    server = ApiServer(server_config, app)  # ends the event streams as it starts draining
    # uvicorn owns the signals here: it drains on SIGTERM/SIGINT, then raises the signal again
    # for the handler it found; a no-op one lets a graceful stop end with 0 like every other
    # service.
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: None)
    server.run()
    return 0 if server.started else 1


def _api_add_key(args: argparse.Namespace) -> int:
    from api import KeyFileError, add_key

    path = args.file or settings().API_KEYS_FILE
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


def _demo(args: argparse.Namespace) -> int:
    from parkleit.demo import API_HOST, run_demo
    from parkleit.embedded import tcp_answers

    config = settings()
    refs, configs = cities(args, config)
    if tcp_answers(API_HOST, config.API_PORT):
        raise UsageError(f"something listens on {API_HOST}:{config.API_PORT} already, where "
                         "the demo's API would; set PARKLEIT_API_PORT to a free port")
    return run_demo(config, configs, refs, speed=args.speed)
