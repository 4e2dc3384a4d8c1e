"""Test fixtures: a real PostgreSQL and a real MQTT broker, reached through configuration.

``PARKLEIT_TEST_DATABASE_URL`` (an admin URL; default the local server's ``postgres``
database) and ``PARKLEIT_TEST_MQTT_URL`` (default ``mqtt://127.0.0.1:1883``) name them; where
nothing answers there, private ones are started (``parkleit.embedded``). Each test gets its own
database, cloned from a migrated template, and its own city id, which is also its topic prefix.

The suite runs at a fixed instant whatever the day (``DEFAULT_CLOCK``, a Wednesday morning in
Germany): the clock of the tests and of every service they start begins there and runs at
real speed. ``pytest --clock 2027-03-28T01:50:00+01:00`` (or ``PARKLEIT_TEST_CLOCK``) runs it
at another instant, ``--clock real`` at the wall clock; ``make test-clocks`` runs the tests
that read the clock at several instants (weekday morning, Sunday night, both clock changes, a
year ahead).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import _helpers
import psycopg
import pytest
import xmlschema
from _citytoml import write_city
from _helpers import CLOCK_VARIABLE, ServiceProcess, Watcher, datex2_schema
from fastapi.testclient import TestClient
from psycopg import sql

from api import create_app
from core.city import City, load_city
from core.clock import Clock
from core.db import migrate
from core.settings import Settings
from parkleit.embedded import ServiceStack, ensure_services

DEFAULT_CLOCK = "2026-06-17T10:00:00+02:00"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clock", default=os.environ.get("PARKLEIT_TEST_CLOCK", DEFAULT_CLOCK),
        help="the instant the suite's clock starts at (RFC 3339 with an offset) or 'real' "
             f"(default {DEFAULT_CLOCK}, or PARKLEIT_TEST_CLOCK)")


def pytest_configure(config: pytest.Config) -> None:
    """Start the suite's clock; services started by tests inherit it (through the settings
    and the environment: ``PARKLEIT_CLOCK_OFFSET_S``)."""
    text = str(config.getoption("clock")).strip()
    if text.lower() == "real":
        clock = Clock()
    else:
        try:
            clock = Clock.starting_at(datetime.fromisoformat(text.upper()))
        except ValueError as exc:
            raise pytest.UsageError(f"--clock {text}: {exc}") from None
    _helpers.SUITE_CLOCK = clock
    os.environ[CLOCK_VARIABLE] = str(clock.offset.total_seconds())


def pytest_report_header() -> str:
    return f"clock: {_helpers.utc_now().isoformat()} (offset {_helpers.SUITE_CLOCK.offset})"


# Tests that read the time: through the suite's clock, or through a service, the API or the
# database they are given. ``make test-clocks`` runs these (``-m clock``) at several instants.
_CLOCK_FIXTURES = frozenset({"clock", "services", "settings", "api_client", "spawn", "db_url"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        if _CLOCK_FIXTURES & set(getattr(item, "fixturenames", ())) or (
                module is not None and hasattr(module, "utc_now")):
            item.add_marker(pytest.mark.clock)


@pytest.fixture(scope="session")
def clock() -> Clock:
    """The suite's clock."""
    return _helpers.SUITE_CLOCK


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceStack]:
    """The database server and broker every test talks to (private ones if none answer)."""
    stack = ensure_services(
        tmp_path_factory.mktemp("services"),
        os.environ.get("PARKLEIT_TEST_DATABASE_URL",
                       "postgresql://postgres@127.0.0.1:5432/postgres"),
        os.environ.get("PARKLEIT_TEST_MQTT_URL", "mqtt://127.0.0.1:1883"),
    )
    try:
        with psycopg.connect(stack.database_admin_url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        stack.close()
        pytest.exit(f"the test database does not answer: {exc}", returncode=3)
    with stack:
        yield stack


@pytest.fixture(scope="session")
def admin_url(services: ServiceStack) -> str:
    return services.database_admin_url


@pytest.fixture(scope="session")
def mqtt_url(services: ServiceStack) -> str:
    return services.mqtt_url


@pytest.fixture(scope="session")
def template_db(admin_url: str) -> Iterator[str]:
    """Name of a migrated database that each test's database is cloned from."""
    name = f"parkleit_tpl_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(_with_database(admin_url, name), autocommit=True) as conn:
        migrate(conn, use_timescaledb=False)
    yield name
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


@pytest.fixture
def db_url(admin_url: str, template_db: str) -> Iterator[str]:
    """URL of a fresh, migrated database of this test's own."""
    name = f"parkleit_t_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template_db)))
    yield _with_database(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """An autocommit connection to this test's database."""
    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def city_path(tmp_path: Path) -> Path:
    """A small city config with an id (and so topic prefix) of this test's own."""
    return write_city(tmp_path, f"t{secrets.token_hex(4)}")


@pytest.fixture
def city(city_path: Path) -> City:
    return load_city(str(city_path))


@pytest.fixture(scope="session")
def zeitz() -> City:
    """The example city Zeitz as the project ships it (``cities/zeitz.toml``)."""
    return load_city("zeitz")


@pytest.fixture
def settings(db_url: str, mqtt_url: str, city_path: Path) -> Settings:
    """Settings for in-process services of this test."""
    return Settings(DATABASE_URL=db_url, MQTT_URL=mqtt_url, CITY=str(city_path),
                    INGEST_CLIENT_ID=f"ingest-{city_path.stem}", INGEST_METRICS_PORT=0,
                    OCPP_METRICS_PORT=0, OCPI_METRICS_PORT=0)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Start ``parkleit`` subcommands as processes; all are killed at the end of the test."""
    started: list[ServiceProcess] = []

    def start(args: list[str], env: dict[str, str], name: str = "service") -> ServiceProcess:
        process = ServiceProcess(args, env, tmp_path / f"{name}-{len(started)}.log").start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


@pytest.fixture
def watch(settings: Settings) -> Iterator[Callable[..., Watcher]]:
    """Watch topic filters on this test's broker (a :class:`Watcher` each); all are closed at
    the end of the test."""
    watchers: list[Watcher] = []

    def subscribe(*filters: str) -> Watcher:
        watcher = Watcher(settings, *filters)
        watchers.append(watcher)
        return watcher

    yield subscribe
    for watcher in watchers:
        watcher.close()


@pytest.fixture(scope="session")
def datex2() -> xmlschema.XMLSchema:
    """The official DATEX II v3.7 schemas, read once for the run."""
    return datex2_schema()


@pytest.fixture
def api_client(settings: Settings) -> Iterator[TestClient]:
    """A TestClient of the API on this test's database and city (lifespan run)."""
    with TestClient(create_app(settings)) as client:
        yield client
