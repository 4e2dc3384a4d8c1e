"""``parkleit simulate``: simulated sensors (load, history, the whole city) and signs."""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import psycopg

from core.city import City, OcpiPeer
from core.db import migrate
from core.registry import sync_registry
from core.runtime import on_stop_signals, stop_event
from core.settings import Settings

from ._common import (
    Commands,
    UsageError,
    city,
    command,
    fault_rate,
    logger,
    positive,
    require_broker,
    require_database,
    settings,
    start_time,
    timestamp,
)

if TYPE_CHECKING:
    from simulators.ocpi import OcpiSimulator


def register(commands: Commands) -> None:
    simulate = commands.add_parser("simulate", help="simulated sensors")
    sim_commands = simulate.add_subparsers(dest="sim_command", required=True,
                                           metavar="SIM_COMMAND")
    load = command(sim_commands, "load", _load,
                   help="publish bay and counter messages at a fixed rate (QoS 1)")
    load.add_argument("--rate", type=positive(float), default=100.0,
                      help="messages per second (0 = as fast as the broker takes them)")
    load.add_argument("--bays", type=positive(int), default=0,
                      help="how many of the city's bays to drive (0 = all)")
    load.add_argument("--duration", type=positive(float), default=60.0,
                      help="seconds to run (0 = until interrupted)")
    load.add_argument("--seed", type=int, default=1)

    history = command(sim_commands, "history", _history,
                      help="weeks of simulated lot occupancy straight into the database (bulk "
                      "COPY)")
    history.add_argument("--weeks", type=positive(float), default=8.0)
    history.add_argument("--seed", type=int, default=1)
    history.add_argument("--end", type=timestamp, help="last time (RFC 3339; default now)")

    sim_city = command(sim_commands, "city", _city,
                       help="drive every lot, bay and counter of the city over MQTT in the real "
                            "formats (native, counters, TTN v3, ChirpStack v4), with faults and "
                            "ground truth")
    sim_city.add_argument("--speed", type=positive(float), default=1.0,
                          help="simulated time per real time (60 = an hour a minute; 0 = as "
                          "fast as possible); never runs ahead of the wall clock")
    sim_city.add_argument("--start", type=start_time,
                          help="simulated start: RFC 3339, 'now' or 'now-6h' (default now)")
    sim_city.add_argument("--duration", type=positive(float), default=0.0,
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
    sim_city.add_argument("--fault-rate", type=fault_rate, action="append", metavar="NAME=RATE",
                          help="set a fault's rate (and switch it on); repeatable")
    sim_city.add_argument("--heartbeat-min", type=float, default=10.0,
                          help="bay sensor heartbeat interval in minutes (default 10)")

    sim_signs = command(sim_commands, "signs", _signs,
                        help="serve every sign of the city on its address (NTCIP 1203 over SNMP, "
                             "HTTP, MQTT) until SIGTERM, with the signs' own fallbacks (comm "
                             "loss, end of duration)")
    sim_signs.add_argument("--minute-s", type=float, default=60.0,
                           help="real seconds of one sign minute (the unit of the signs' "
                           "timers; default 60)")

    _register_charging(sim_commands)


def _register_charging(sim_commands: Commands) -> None:
    """``simulate chargers`` (OCPP stations) and ``simulate ocpi`` (an OCPI platform)."""
    chargers = command(sim_commands, "chargers", _chargers,
                       help="run the city's OCPP stations as real charge points (1.6J and "
                            "2.0.1) against `parkleit ocpp`: boot, heartbeats, statuses of a "
                            "session model with faults, until SIGTERM")
    chargers.add_argument("--ocpp-url", help="the central system, ws[s]://HOST:PORT/ocpp "
                          "(default PARKLEIT_SIMULATE_OCPP_URL, else "
                          "ws://PARKLEIT_OCPP_HOST:PARKLEIT_OCPP_PORT/ocpp)")
    chargers.add_argument("--passwords", type=Path, help="charge_point_id:password lines "
                          "(default PARKLEIT_SIMULATE_OCPP_PASSWORDS_FILE)")
    chargers.add_argument("--speed", type=positive(float), default=1.0,
                          help="simulated time per real time for sessions and faults "
                          "(default 1)")
    chargers.add_argument("--faults", choices=("on", "off"), default="on",
                          help="stations going offline, faulted connectors, stuck in "
                          "charging (default on)")
    chargers.add_argument("--ca-file", type=Path, help="over wss, trust only this CA "
                          "certificate (PEM; a self-signed central system's own certificate)")
    chargers.add_argument("--ocpi", choices=("on", "off"), default="on",
                          help="also serve the OCPI platform of each of the city's peers "
                          "whose locations_url is on this machine (127.0.0.1, localhost), "
                          "with the token its token_env holds (default on)")
    chargers.add_argument("--seed", type=int, default=1)

    sim_ocpi = command(sim_commands, "ocpi", _ocpi,
                       help="serve the city's OCPI stations as another operator's OCPI 2.2.1 "
                            "locations (pagination, token check, simulated sessions) until "
                            "SIGTERM")
    sim_ocpi.add_argument("--peer", help="the OCPI peer (ocpi_peers id) to play (default: the "
                          "city's first)")
    sim_ocpi.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 "
                          "(default 8765)")
    sim_ocpi.add_argument("--host", default="127.0.0.1")
    sim_ocpi.add_argument("--step-s", type=positive(float), default=60.0,
                          help="seconds between steps of the session model (default 60)")
    sim_ocpi.add_argument("--seed", type=int, default=1)


def _ocpi(args: argparse.Namespace) -> int:
    from simulators.ocpi import serve_ocpi

    config = settings()
    peer_city = city(args, config)
    peers = [peer for peer in peer_city.ocpi_peers
             if args.peer is None or peer.id == args.peer]
    if not peers:
        raise UsageError(f"{peer_city.id} has no OCPI peer {args.peer or ''}".strip())
    simulator = _ocpi_simulator(config, peer_city, peers[0], args.seed)
    if simulator is None:
        raise UsageError(f"OCPI peer {peers[0].id}: set {peers[0].token_env or 'its token_env'} "
                         "to the token the pull will send")
    return _until_stopped(
        lambda stop: serve_ocpi(simulator, args.host, args.port, stop, step_s=args.step_s),
        f"OCPI on {args.host}:{args.port}")


def _ocpi_simulator(config: Settings, peer_city: City, peer: OcpiPeer,
                    seed: int) -> OcpiSimulator | None:
    """The simulated platform of ``peer``, expecting the token its ``token_env`` holds
    (None: that variable is not set)."""
    from simulators.ocpi import OcpiSimulator

    token = config.secret(peer.token_env) if peer.token_env else None
    if token is None:
        return None
    return OcpiSimulator(peer_city, peer, token, start=config.clock.now(), seed=seed,
                         clock=config.clock)


def _load(args: argparse.Namespace) -> int:
    from simulators.load import LoadError, run_load

    config = settings()
    load_city = city(args, config)
    require_broker(config)
    try:
        report = run_load(config, load_city, rate=args.rate, bays=args.bays,
                          duration=args.duration, seed=args.seed)
    except LoadError as exc:
        raise UsageError(str(exc)) from None
    logger.info("published %d messages (%d bay, %d counter) in %.1f s: %.0f msg/s",
                report.published, report.bay_messages, report.counter_messages,
                report.elapsed_s, report.published / max(report.elapsed_s, 1e-9))
    return 0


def _history(args: argparse.Namespace) -> int:
    from simulators.history import backfill_history

    config = settings()
    history_city = city(args, config)
    require_database(config.DATABASE_URL, create=True)
    with psycopg.connect(config.DATABASE_URL, autocommit=True) as conn:
        migrate(conn)
        sync_registry(conn, history_city)
        backfill_history(conn, history_city, end=args.end or config.clock.now(),
                         weeks=args.weeks, seed=args.seed)
    return 0


def _city(args: argparse.Namespace) -> int:
    from simulators.city import CitySimError, FaultConfig, run_city

    config = settings()
    sim_city = city(args, config)
    try:
        faults = FaultConfig.parse(args.faults, dict(args.fault_rate or ()))
    except CitySimError as exc:
        raise UsageError(str(exc)) from None
    if not args.heartbeat_min > 0:
        raise UsageError("--heartbeat-min must be > 0")
    if args.truth is not None and not args.truth.parent.is_dir():
        raise UsageError(f"--truth {args.truth}: no such directory {args.truth.parent}")
    now = config.clock.now()
    start = (now - args.start if isinstance(args.start, timedelta) else args.start) or now
    require_broker(config)
    stop = threading.Event()
    try:
        with on_stop_signals(stop.set):
            report = run_city(config, sim_city, start=start, speed=args.speed,
                              duration_s=args.duration, seed=args.seed, faults=faults,
                              truth_path=args.truth, stop_event=stop,
                              heartbeat_min=args.heartbeat_min)
    except CitySimError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        logger.error("simulation failed: %s", exc)
        return 1
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


def _signs(args: argparse.Namespace) -> int:
    from simulators.signs import run_signs

    config = settings()
    sign_city = city(args, config)
    if not args.minute_s > 0:
        raise UsageError("--minute-s must be > 0")
    require_broker(config)  # mqtt signs listen there
    try:
        return _until_stopped(
            lambda stop: run_signs(sign_city, stop, settings=config, minute_s=args.minute_s),
            f"the signs of {sign_city.id}")
    except ValueError as exc:  # a sign address the simulator cannot serve
        raise UsageError(str(exc)) from None


def _chargers(args: argparse.Namespace) -> int:
    from simulators.chargers import ChargerSimError, read_passwords, run_chargers
    from simulators.ocpi import serve_ocpi

    config = settings()
    sim_city = city(args, config)
    url = args.ocpp_url or config.SIMULATE_OCPP_URL or (
        f"ws://{config.OCPP_HOST}:{config.OCPP_PORT}/ocpp")
    if urlsplit(url).scheme not in ("ws", "wss") or not urlsplit(url).hostname:
        raise UsageError(f"--ocpp-url {url}: not a ws:// or wss:// URL with a host")
    if not args.speed > 0:
        raise UsageError("--speed must be > 0")
    if args.ca_file is not None and not args.ca_file.is_file():
        raise UsageError(f"--ca-file {args.ca_file}: no such file")
    path = args.passwords or config.SIMULATE_OCPP_PASSWORDS_FILE
    try:
        passwords = read_passwords(path) if path is not None else {}
    except ChargerSimError as exc:
        raise UsageError(str(exc)) from None

    logging.getLogger("websockets").setLevel(logging.WARNING)  # not a line per connection
    # The MQTT stations' gateway publishes through the broker.
    broker = any(station.protocol == "mqtt" for station in sim_city.chargers)
    if broker:
        require_broker(config)

    platforms = _local_platforms(config, sim_city, args.seed) if args.ocpi == "on" else []

    async def run(stop: asyncio.Event) -> None:
        serving = [asyncio.create_task(serve_ocpi(simulator, host, port, stop,
                                                  step_s=60 / args.speed), name=f"ocpi-{port}")
                   for simulator, (host, port) in platforms]
        # A platform that cannot serve (its port taken) ends the run at once.
        running = asyncio.create_task(run_chargers(
            sim_city, stop, url=url, passwords=passwords, clock=config.clock, speed=args.speed,
            faults=args.faults == "on", seed=args.seed, ca_file=args.ca_file,
            mqtt_settings=config if broker else None))
        await asyncio.gather(running, *serving)
        report = running.result()
        logger.info("stopped: %d connects (%d failed, %d links lost), calls %s, %d refused, "
                    "faults %s", report.connects, report.failed_connects, report.links_lost,
                    dict(report.calls), report.refused, dict(report.faults) or "none")

    return _until_stopped(run, "OCPI")


def _local_platforms(config: Settings, sim_city: City,
                     seed: int) -> list[tuple[OcpiSimulator, tuple[str, int]]]:
    """The simulated platforms of the city's OCPI peers on this machine, with their
    addresses (a peer whose token variable is not set is left out, with a warning)."""
    platforms = []
    for peer in sim_city.ocpi_peers:
        address = peer.local_address()
        if address is None:
            continue
        simulator = _ocpi_simulator(config, sim_city, peer, seed)
        if simulator is None:
            logger.warning("OCPI peer %s not simulated: %s is not set", peer.id, peer.token_env)
            continue
        logger.info("OCPI platform %s on %s:%d", peer.id, *address)
        platforms.append((simulator, address))
    return platforms


def _until_stopped(server: Callable[[asyncio.Event], Awaitable[object]], where: str) -> int:
    """Run ``server`` with an event that SIGTERM or SIGINT sets, until it returns; a server
    that cannot listen (``where``: what and on which address) is a usage error."""

    async def run() -> None:
        await server(stop_event())

    try:
        asyncio.run(run())
    except OSError as exc:
        raise UsageError(f"cannot serve {where}: {exc}") from None
    return 0
