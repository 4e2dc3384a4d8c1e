"""``parkleit ocpp``: the OCPP central system of the city's own chargers (and ``ocpp
add-station``, a station's password)."""

from __future__ import annotations

import argparse
import logging
import os
import socket
from pathlib import Path

from core.runtime import serve

from ._common import (
    Commands,
    UsageError,
    cities,
    command,
    listen_options,
    logger,
    require_broker,
    require_database,
    settings,
)


def register(commands: Commands) -> None:
    about = ("the OCPP 1.6J/2.0.1 central system: charge points connect to "
             "ws://HOST:PORT/ocpp/{charge_point_id} (HTTP Basic per station; wss with "
             "PARKLEIT_OCPP_TLS_CERT_FILE and _KEY_FILE) and their statuses are stored and "
             "published, until SIGTERM")
    ocpp = command(commands, "ocpp", _ocpp, city="many", help=about, description=about)
    listen_options(ocpp, "OCPP")
    ocpp_commands = ocpp.add_subparsers(dest="ocpp_command", metavar="OCPP_COMMAND")
    add = command(ocpp_commands, "add-station", _add_station, city=None,
                  help="make a new password for charge point ID, append its hash to the "
                       "credentials file and print the password (shown this once)")
    add.add_argument("station", metavar="ID", help="the charge point id (its OCPP identity)")
    add.add_argument("--file", type=Path,
                     help="credentials file (default PARKLEIT_OCPP_CREDENTIALS_FILE)")


def _ocpp(args: argparse.Namespace) -> int:
    from charging import CredentialError, OcppService, ocpp_problem

    config = settings()
    updates: dict[str, object] = {}
    if args.host:
        updates["OCPP_HOST"] = args.host
    if args.port is not None:
        updates["OCPP_PORT"] = args.port
    config = config.model_copy(update=updates)
    logging.getLogger("websockets").setLevel(logging.WARNING)  # not a line per connection
    _, configs = cities(args, config)
    problem = ocpp_problem(config)
    if problem:
        raise UsageError(problem)
    if not any(station.protocol == "ocpp" for city in configs for station in city.chargers):
        logger.warning("no station of %s speaks OCPP; every connection will be refused",
                       ", ".join(city.id for city in configs))
    require_database(config.DATABASE_URL)
    require_broker(config)
    _require_free(config.OCPP_HOST, config.OCPP_PORT)
    try:
        service = OcppService(config, list(configs))
    except CredentialError as exc:
        raise UsageError(str(exc)) from None
    return serve(service)


def _add_station(args: argparse.Namespace) -> int:
    from charging import CredentialError, add_station

    path = args.file or settings().OCPP_CREDENTIALS_FILE
    if path is None:
        raise UsageError("no credentials file: set PARKLEIT_OCPP_CREDENTIALS_FILE or pass "
                         "--file")
    try:
        password = add_station(path, args.station)
    except (CredentialError, OSError) as exc:
        raise UsageError(str(exc)) from None
    print(password)
    logger.info("station %s added to %s; the line above is the only copy of its password",
                args.station, path)
    return 0


def _require_free(host: str, port: int) -> None:
    """Exit 2 with a one-line reason if the central system could not listen there."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise UsageError(f"cannot listen on {host}:{port}: {reason}") from None
