"""``parkleit demo``: the whole system on the example city, on whatever this machine has."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from core.city import City
from core.db import create_database, migrate
from core.embedded import ensure_services
from core.registry import sync_registry
from core.settings import Settings
from signage import read_sign_states
from simulators.history import backfill_history

__all__ = ["run_demo"]

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent.parent / ".data"
REPORT_EVERY_S = 15.0
HISTORY_WEEKS = 1.0
REPLAY = timedelta(minutes=10)
# Parts the demo can show the rest without (a sign address this machine cannot serve, a
# forecaster without enough history).
OPTIONAL = frozenset({"sign simulators", "forecast"})


def run_demo(settings: Settings, city: City, city_ref: str, *, speed: float,
             history_weeks: float = HISTORY_WEEKS) -> int:
    """Set up, backfill history, run ingest, the city and sign simulators, signage and the
    forecaster; report lots and signs until Ctrl-C.

    The simulator replays the last ``REPLAY`` at ``speed`` (60: ten minutes in ten seconds)
    and then runs at real time: its timestamps never run ahead of the clock, and a count
    older than a lot's stale limit would show as unknown.
    """
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with ensure_services(DATA_DIR, settings.DATABASE_URL, settings.MQTT_URL) as stack:
        for line in stack.started:
            logger.info("started %s", line)
        database = stack.database_url.rsplit("/", 1)[1].split("?")[0]
        if create_database(stack.database_admin_url, database):
            logger.info("created database %s", database)
        live_from = datetime.now(UTC) - REPLAY
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            applied = migrate(conn)
            sync_registry(conn, city)
            logger.info("schema ready (%s); %s: %d lots, %d bays, %d signs",
                        ", ".join(applied) or "up to date", city.city.name, len(city.lots),
                        sum(1 for _ in city.bays()), len(city.signs))
            backfill_history(conn, city, end=live_from, weeks=history_weeks)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARKLEIT_")}
        env |= {"PARKLEIT_DATABASE_URL": stack.database_url, "PARKLEIT_MQTT_URL": stack.mqtt_url,
                "PARKLEIT_CITY": city_ref, "PARKLEIT_MQTT_PROTOCOL": stack.mqtt_protocol}
        children = {
            "ingest": ["ingest"],
            "city simulator": ["simulate", "city", "--speed", str(speed), "--duration", "0",
                               "--start", live_from.isoformat()],
            "sign simulators": ["simulate", "signs"],
            "signage": ["signage"],
            "forecast": ["forecast", "serve"],
        }
        processes: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for name, args in children.items():
                processes[name] = subprocess.Popen([sys.executable, "-m", "core.cli", *args],
                                                   env=env)
                logger.info("started %s (pid %d)", name, processes[name].pid)
            logger.info("database %s, broker %s; Ctrl-C stops everything",
                        _redact(stack.database_url), stack.mqtt_url)
            while not stop.wait(REPORT_EVERY_S):
                dead = [name for name, p in processes.items() if p.poll() is not None]
                for name in set(dead) & OPTIONAL:
                    logger.warning("%s stopped (exit %s); the demo goes on without it", name,
                                   processes.pop(name).returncode)
                    dead.remove(name)
                if dead:
                    logger.error("%s stopped unexpectedly; shutting down", ", ".join(dead))
                    return 1
                _report(stack.database_url, city)
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for name, process in processes.items():
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    logger.warning("%s did not stop in time; killing it", name)
                    process.kill()
            logger.info("demo stopped")
    return 0


def _redact(url: str) -> str:
    head, _, tail = url.rpartition("@")
    return f"{head.split('://')[0]}://***@{tail}" if ":" in head.split("://")[-1] else url


def _report(database_url: str, city: City) -> None:
    """One summary line per report, then the lots as a small table, then what each sign
    last confirmed showing."""
    with psycopg.connect(database_url) as conn:
        lots = conn.execute(
            "SELECT l.name, s.free, s.capacity, s.status FROM lot_state s "
            "JOIN lots l USING (lot_id) WHERE l.city = %s ORDER BY l.name", (city.id,)).fetchall()
        events = conn.execute("SELECT count(*) FROM bay_events").fetchone()
        dead = conn.execute("SELECT coalesce(sum(occurrences), 0) FROM dead_letters").fetchone()
        signs = read_sign_states(conn, city)
    total_free = sum(free or 0 for _, free, _, status in lots if status != "unknown")
    logger.info("%d bay readings stored, %d dead letters; %d spaces free in %s",
                events[0] if events else 0, dead[0] if dead else 0, total_free, city.city.name)
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
