"""What every command group shares: usage errors, settings, cities, reachability checks, the
options several commands take and argument types."""

from __future__ import annotations

import argparse
import logging
import re
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import psycopg

from core.city import Cities, City, CityConfigError, load_cities, load_city
from core.db import check_database, create_database, queries
from core.settings import Settings, SettingsError, get_settings

logger = logging.getLogger("parkleit")

# What each command group's ``register`` adds its subcommands to (each with a handler).
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class UsageError(Exception):
    """Bad usage or configuration; the message is one line and the exit code is 2."""


def settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        raise UsageError(str(exc)) from None


def city(args: argparse.Namespace, settings: Settings) -> City:
    try:
        return load_city(args.city or settings.CITY)
    except CityConfigError as exc:
        raise UsageError(str(exc)) from None


def cities(args: argparse.Namespace, settings: Settings) -> tuple[tuple[str, ...], Cities]:
    """The config references and configs of ``--city a,b`` or the installation's cities."""
    refs = tuple(part.strip() for part in args.city.split(",") if part.strip()) if (
        args.city) else settings.city_refs
    try:
        return refs, load_cities(refs)
    except CityConfigError as exc:
        raise UsageError(str(exc)) from None


def command(commands: Commands, name: str, handler: Callable[[argparse.Namespace], int],
            city: str | None = "one", **options: Any) -> argparse.ArgumentParser:
    """A subcommand that runs ``handler``, with ``--city`` for one city, ``"many"`` or none;
    ``options`` go to ``add_parser`` (``help``, ``description``)."""
    sub = commands.add_parser(name, **options)
    if city == "one":
        city_option(sub)
    elif city == "many":
        cities_option(sub)
    sub.set_defaults(handler=handler)
    return sub


def city_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--city", help="city config name or path (default: PARKLEIT_CITY)")


def cities_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--city", help="city config names or paths, comma-separated "
                     "(default: PARKLEIT_CITIES, else PARKLEIT_CITY)")


def listen_options(sub: argparse.ArgumentParser, service: str) -> None:
    """``--host`` and ``--port`` of a server; None when not given, for the command to take its
    settings' ``{service}_HOST`` and ``{service}_PORT`` (the help names them and their defaults)."""
    fields = Settings.model_fields
    sub.add_argument("--host", help=f"address to listen on (default PARKLEIT_{service}_HOST, "
                     f"{fields[f'{service}_HOST'].default})")
    sub.add_argument("--port", type=port, help=f"port (default PARKLEIT_{service}_PORT, "
                     f"{fields[f'{service}_PORT'].default})")


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or ''}{parts.path}"


def require_database(url: str, *, create: bool = False) -> None:
    """Exit 2 with a one-line reason if the database cannot be reached."""
    try:
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


def require_table(url: str, table: str, what: str) -> None:
    """Exit 2 unless the database answers and has ``table`` (``what`` names it for people)."""
    require_database(url)
    with psycopg.connect(url) as conn:
        row = conn.execute(queries("parkleit")["table_exists"], {"table": table}).fetchone()
    if row is None or not row[0]:
        raise UsageError(f"the database has no {what}; run `parkleit db migrate`")


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


# -- argument types ---------------------------------------------------------------------------


def timestamp(text: str) -> datetime:
    """An RFC 3339 time with a UTC offset (``Z`` in either case)."""
    try:
        moment = datetime.fromisoformat(text.strip().upper())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"needs a UTC offset or Z: {text}")
    return moment


def start_time(text: str) -> datetime | timedelta:
    """An RFC 3339 time with an offset, or ``now``, ``now-6h`` (units s, m, h, d) as how long
    before the clock's now (the clock is the settings', read once the command runs)."""
    value = text.strip().lower()
    if not value.startswith("now"):
        return timestamp(text)
    match = re.fullmatch(r"now(?:-(\d+(?:\.\d+)?)([smhd]))?", value)
    if not match:
        raise argparse.ArgumentTypeError(f"not 'now' or 'now-<n><s|m|h|d>': {text}")
    ago = float(match[1] or 0) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2] or "s"]
    return timedelta(seconds=ago)


def fault_rate(text: str) -> tuple[str, float]:
    name, sep, rate = text.partition("=")
    try:
        value = float(rate)
    except ValueError:
        value = -1.0
    if not sep or not name.strip() or not value >= 0:
        raise argparse.ArgumentTypeError(f"not NAME=RATE with a rate >= 0: {text}")
    return name.strip().lower(), value


def horizons(text: str) -> tuple[int, ...]:
    """A comma list of forecast horizons in minutes, each a positive multiple of 15."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values or any(value <= 0 or value % 15 for value in values):
        raise argparse.ArgumentTypeError(
            f"not a comma list of positive multiples of 15 minutes: {text}")
    return tuple(dict.fromkeys(values))


def positive(kind: Callable[[str], float | int]) -> Callable[[str], float | int]:
    def parse(text: str) -> float | int:
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0: {text}")
        return value

    return parse


def port(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text}") from None
    if not 1 <= number <= 65_535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535: {text}")
    return number
