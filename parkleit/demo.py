"""``parkleit demo``: the whole system on the example cities, on whatever this machine has."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import psycopg

from core.city import Cities, City, OcpiPeer
from core.db import create_database, migrate, queries
from core.registry import sync_registry
from core.runtime import on_stop_signals
from core.settings import Settings
from parkleit.embedded import ensure_services
from parkleit.process import ParkleitProcess
from signage import read_sign_states
from simulators.history import backfill_history

__all__ = ["API_HOST", "PAGES", "charging_children", "run_demo"]

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent.parent / ".data"
API_HOST = "127.0.0.1"  # the demo is for this machine's browser only
PAGES = (("map", "/"), ("dashboard", "/dashboard"), ("kiosk", "/kiosk"), ("API docs", "/docs"))
REPORT_EVERY_S = 15.0
POLL_S = 0.5  # children and, until the map is live, the API are looked at this often
# Three weeks: the gradient-boosting forecaster needs 14 days (with less it falls back to a
# baseline). The backfill takes about 2 s, training about 30 s on one core, alongside the rest.
HISTORY_WEEKS = 3.0
REPLAY = timedelta(minutes=10)
STOP_TIMEOUT_S = 30.0
# The simulated charging sessions run ten times as fast: a visitor sees points change within
# minutes (an hour's session takes six).
CHARGER_SPEED = 10.0


def run_demo(settings: Settings, cities: Cities, city_refs: tuple[str, ...], *, speed: float,
             history_weeks: float = HISTORY_WEEKS) -> int:
    """Set up, backfill history, run per city ingest, the city and sign simulators, signage
    and the forecaster (trained once first, one city after the other), and one API for all
    cities; report lots and signs until Ctrl-C.

    The simulators replay the last ``REPLAY`` at ``speed`` (60: ten minutes in ten seconds)
    and then run at real time: their timestamps never run ahead of the clock, and a count
    older than a lot's stale limit would show as unknown.
    """
    began = time.monotonic()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per look at the API
    stop = threading.Event()
    with on_stop_signals(stop.set), ensure_services(
            DATA_DIR, settings.DATABASE_URL, settings.MQTT_URL) as stack:
        for line in stack.started:
            logger.info("started %s", line)
        database = stack.database_url.rsplit("/", 1)[1].split("?")[0]
        if create_database(stack.database_admin_url, database):
            logger.info("created database %s", database)
        live_from = settings.clock.now() - REPLAY
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            applied = migrate(conn)
            logger.info("schema ready (%s)", ", ".join(applied) or "up to date")
            for city in cities:
                sync_registry(conn, city)
                logger.info("%s: %d lots, %d bays, %d signs", city.city.name, len(city.lots),
                            sum(1 for _ in city.bays()), len(city.signs))
                backfill_history(conn, city, end=live_from, weeks=history_weeks)
        # The children get this process's settings, on the services found or started here.
        env = os.environ | {
            "PARKLEIT_DATABASE_URL": stack.database_url, "PARKLEIT_MQTT_URL": stack.mqtt_url,
            "PARKLEIT_MQTT_PROTOCOL": stack.mqtt_protocol,
            "PARKLEIT_CITIES": ",".join(city_refs), "PARKLEIT_CITY": city_refs[0]}
        api_url = f"http://{API_HOST}:{settings.API_PORT}"
        children = _children(settings, cities, city_refs, env, live_from, speed)
        children += charging_children(settings, cities, city_refs, env)
        children.append(Child("api", ["api", "--host", API_HOST, "--port",
                                      str(settings.API_PORT)], env))
        processes: dict[Child, ParkleitProcess] = {}
        try:
            for child in children:
                if stop.is_set():  # Ctrl-C while setting up
                    break
                if not child.batch:
                    processes[child] = child.start()
            batches = [child for child in children if child.batch]
            logger.info("database %s, broker %s; Ctrl-C stops everything",
                        _redact(stack.database_url), stack.mqtt_url)
            return _supervise(processes, batches, stop, _ApiWatch(api_url, began),
                              stack.database_url, cities)
        finally:
            _stop(processes)
            logger.info("demo stopped")


def _children(settings: Settings, cities: Cities, city_refs: tuple[str, ...],
              env: dict[str, str], live_from: datetime, speed: float) -> list[Child]:
    """Each city's workers: ingest (its own session and metrics ports), the simulators,
    signage and the forecaster."""
    children: list[Child] = []
    for index, (city, ref) in enumerate(zip(cities, city_refs, strict=True)):
        city_env = env | {
            "PARKLEIT_CITY": ref, "PARKLEIT_INGEST_CLIENT_ID": f"parkleit-ingest-{city.id}",
            "PARKLEIT_INGEST_METRICS_PORT": str(settings.INGEST_METRICS_PORT and
                                                settings.INGEST_METRICS_PORT + 10 * index),
            "PARKLEIT_SIGNAGE_METRICS_PORT": str(settings.SIGNAGE_METRICS_PORT and
                                                 settings.SIGNAGE_METRICS_PORT + 10 * index)}
        label = f" {city.id}" if len(cities) > 1 else ""
        children += [
            Child(f"ingest{label}", ["ingest"], city_env),
            Child(f"city simulator{label}",
                  ["simulate", "city", "--speed", str(speed), "--duration", "0",
                   "--start", live_from.isoformat()], city_env),
            Child(f"sign simulators{label}", ["simulate", "signs"], city_env,
                  optional=True),
            Child(f"signage{label}", ["signage"], city_env),
            # The forecaster backtests the model at its start, beside its first live
            # forecasts: a backtest here would hold them back by a refit.
            Child(f"forecast training{label}", ["forecast", "train", "--no-backtest"],
                  city_env, optional=True, batch=True,
                  then=Child(f"forecast{label}", ["forecast", "serve"], city_env,
                             optional=True)),
        ]
    return children


def charging_children(settings: Settings, cities: Cities, city_refs: tuple[str, ...],
                      env: dict[str, str], data_dir: Path = DATA_DIR) -> list[Child]:
    """The chargers: one OCPP central system for every city, with a new password per station
    and demo (hashes for the one, the passwords for the simulators, in ``data_dir``); per
    city its charger simulator (OCPP stations, the MQTT gateway, the simulated OCPI platform
    of each peer on this machine) and, where it has such peers, its OCPI pull, with a new
    token in the variable each peer's ``token_env`` names."""
    stations = [station.id for city in cities for station in city.chargers
                if station.protocol == "ocpp"]
    children: list[Child] = []
    if stations:
        env = env | _ocpp_credentials(stations, data_dir) | {
            "PARKLEIT_OCPP_HOST": API_HOST, "PARKLEIT_OCPP_PORT": str(settings.OCPP_PORT)}
        # Optional: a port taken by something else costs the demo its live charger status.
        children.append(Child("ocpp", ["ocpp"], env, optional=True))
    label = len(cities) > 1
    for index, (city, ref) in enumerate(zip(cities, city_refs, strict=True)):
        peers = _local_ocpi_peers(city)
        metrics = settings.OCPI_METRICS_PORT and settings.OCPI_METRICS_PORT + 10 * index
        city_env = env | {"PARKLEIT_CITY": ref, "PARKLEIT_OCPI_METRICS_PORT": str(metrics)} | {
            peer.token_env: secrets.token_urlsafe(24) for peer in peers if peer.token_env}
        suffix = f" {city.id}" if label else ""
        if peers or any(station.protocol in ("ocpp", "mqtt") for station in city.chargers):
            children.append(Child(f"charger simulator{suffix}",
                                  ["simulate", "chargers", "--city", ref, "--speed",
                                   str(CHARGER_SPEED)], city_env, optional=True))
        if peers:
            children.append(Child(f"OCPI pull{suffix}", ["ocpi", "--city", ref], city_env,
                                  optional=True))
    return children


def _ocpp_credentials(stations: list[str], data_dir: Path) -> dict[str, str]:
    """A new password per station: the central system's hashes and the simulators'
    passwords, in files only the owner reads; the variables naming them."""
    from charging import hash_password

    data_dir.mkdir(parents=True, exist_ok=True)
    credentials, passwords = data_dir / "ocpp-credentials", data_dir / "ocpp-passwords"
    secret = {station: secrets.token_urlsafe(24) for station in stations}
    for path, lines in ((credentials, [f"{s}:{hash_password(p)}" for s, p in secret.items()]),
                        (passwords, [f"{s}:{p}" for s, p in secret.items()])):
        path.unlink(missing_ok=True)
        path.touch(mode=0o600)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"PARKLEIT_OCPP_CREDENTIALS_FILE": str(credentials),
            "PARKLEIT_SIMULATE_OCPP_PASSWORDS_FILE": str(passwords)}


def _local_ocpi_peers(city: City) -> list[OcpiPeer]:
    """The city's OCPI peers when all of them are on this machine (a ``locations_url`` at
    127.0.0.1 or localhost: the example city's); none where one is a real peer, whose token
    the demo does not have."""
    peers = [peer for peer in city.ocpi_peers if peer.locations_url is not None]
    return peers if all(peer.local_address() for peer in peers) else []


@dataclass(frozen=True, eq=False)
class Child:
    """A ``parkleit`` process of the demo; a batch one (training) runs alone, at low
    priority, its output discarded, and ``then`` starts after it."""

    name: str
    args: list[str]
    env: dict[str, str]
    optional: bool = False  # the demo shows the rest without it (a sign address this
    # machine cannot serve, a forecaster without enough history)
    batch: bool = False
    then: Child | None = None

    def start(self) -> ParkleitProcess:
        """``parkleit ARGS`` in a process group of its own: Ctrl-C at the terminal reaches
        only the demo, which stops the children (and after them the private services). Batch
        work runs at a lower priority: the live parts come first on a busy machine."""
        # `forecast train` prints the new model's version, which its log line names already.
        process = ParkleitProcess(self.args, self.env, Path(os.devnull) if self.batch else None,
                                  name=self.name, own_group=True,
                                  nice=10 if self.batch else 0).start()
        assert process.proc is not None
        logger.info("started %s (pid %d)", self.name, process.proc.pid)
        return process


def _supervise(processes: dict[Child, ParkleitProcess], batches: list[Child],
               stop: threading.Event, api: _ApiWatch, database_url: str,
               cities: Cities) -> int:
    """Run ``batches`` one after the other and watch the children until ``stop``; report
    every ``REPORT_EVERY_S``. The exit code."""
    next_report = time.monotonic() + REPORT_EVERY_S
    batch: Child | None = None
    while not stop.wait(POLL_S):
        if batch is not None and processes[batch].returncode is not None:
            code = processes.pop(batch).returncode
            if code == 0:
                logger.info("%s done", batch.name)
            else:
                logger.warning("%s failed (exit %s); the service tries again by itself",
                               batch.name, code)
            if batch.then is not None:
                processes[batch.then] = batch.then.start()
            batch = None
        if batch is None and batches:
            batch = batches.pop(0)
            processes[batch] = batch.start()
        dead = [child for child, p in processes.items() if p.returncode is not None and
                child is not batch]
        for child in [child for child in dead if child.optional]:
            logger.warning("%s stopped (exit %s); the demo goes on without it", child.name,
                           processes.pop(child).returncode)
            dead.remove(child)
        if dead:
            logger.error("%s stopped unexpectedly; shutting down",
                         ", ".join(child.name for child in dead))
            return 1
        api.poll()
        if time.monotonic() >= next_report:
            next_report = time.monotonic() + REPORT_EVERY_S
            for city in cities:
                _report(database_url, city)
    return 0


def _stop(processes: dict[Child, ParkleitProcess]) -> None:
    """SIGTERM to every child still running, then wait for each (kill after the timeout)."""
    for process in processes.values():
        process.ask_to_stop()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child, process in processes.items():
        code = process.wait_stopped(max(deadline - time.monotonic(), 0.1))
        logger.log(logging.INFO if code in (0, -signal.SIGTERM) else logging.WARNING,
                   "%s stopped (exit %s)", child.name, code)


class _ApiWatch:
    """Waits for the API: its URLs once it answers, then the time to the first live map
    (the API showing a fresh count of a lot)."""

    def __init__(self, url: str, began: float) -> None:
        self.url, self.began = url, began
        self.answering = False
        self.live = False

    def poll(self) -> None:
        """Look once, until the map is live; never raises."""
        if self.live:
            return
        try:
            with httpx.Client(base_url=self.url, timeout=2) as client:
                if not self.answering:
                    if client.get("/healthz").status_code != 200:
                        return
                    self.answering = True
                    logger.info("the API answers after %.1f s; open in a browser:",
                                time.monotonic() - self.began)
                    for label, path in PAGES:
                        logger.info("  %-10s %s%s", label, self.url, path)
                lots = client.get("/v1/lots", params={"limit": 1000}).json()["lots"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return
        fresh = sum(1 for lot in lots if not lot.get("stale", True))
        if fresh:
            self.live = True
            logger.info("first live map after %.1f s: %d of %d lots live at %s/",
                        time.monotonic() - self.began, fresh, len(lots), self.url)


def _redact(url: str) -> str:
    head, _, tail = url.rpartition("@")
    return f"{head.split('://')[0]}://***@{tail}" if ":" in head.split("://")[-1] else url


def _report(database_url: str, city: City) -> None:
    """One summary line per report, then the lots as a small table, then what each sign
    last confirmed showing."""
    from forecasting import newest_model  # pandas and scikit-learn: not before the map is up

    q = queries("parkleit")
    with psycopg.connect(database_url) as conn:
        lots = conn.execute(q["demo_lots"], {"city": city.id}).fetchall()
        events = conn.execute(q["demo_bay_readings"]).fetchone()
        dead = conn.execute(q["demo_dead_letters"]).fetchone()
        signs = read_sign_states(conn, city)
        model = newest_model(conn, city)
    total_free = sum(free or 0 for _, free, _, status in lots if status != "unknown")
    logger.info("%d bay readings stored, %d dead letters; %d spaces free in %s; forecaster %s",
                events[0] if events else 0, dead[0] if dead else 0, total_free, city.city.name,
                "not trained yet" if model is None else model.version)
    for name, free, capacity, status in lots:
        shown = "--" if free is None or status == "unknown" else str(free)
        logger.info("  %-32s %5s / %-5d %s", name, shown, capacity, status)
    for sign in signs:
        content = sign["content"]
        text = " | ".join(f"{line.label} {line.text}".strip() for line in content.lines) if (
            content is not None) else "nothing confirmed yet"
        failing = (f"; {sign['consecutive_failures']} failed pushes: {sign['last_error']}"
                   if sign["consecutive_failures"] else "")
        logger.info("  sign %-28s %s%s", sign["name"].split(",")[0][:28], text, failing[:160])
