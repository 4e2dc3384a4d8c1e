"""Database access: the connection pool, named SQL files and the schema migrator."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, ConnectionPool

__all__ = [
    "SERVICE_ROLES",
    "Migration",
    "alisten",
    "apply_roles",
    "check_database",
    "has_timescaledb",
    "listen",
    "load_sql",
    "migrate",
    "open_async_pool",
    "open_pool",
    "parse_named_queries",
    "queries",
    "query_descriptions",
    "split_statements",
]

logger = logging.getLogger(__name__)

_SQL_DIR = resources.files("core") / "sql"
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
BASELINE_VERSION = 1
# The services with a database role of their own (core/sql/roles.sql says what each may do).
SERVICE_ROLES = ("api", "ingest", "signage", "forecast", "ocpp", "ocpi")


def open_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 4,
    name: str = "parkleit",
    configure: Callable[[psycopg.Connection[Any]], None] | None = None,
) -> ConnectionPool:
    """Open a pool of autocommit connections and wait until one works (fails fast)."""
    pool = ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
        check=ConnectionPool.check_connection,
        configure=configure,
        reconnect_timeout=3600.0,
        kwargs={"autocommit": True, "connect_timeout": 5},
    )
    pool.open()
    try:
        pool.wait(timeout=10)
    except Exception:
        pool.close()
        raise
    return pool


async def open_async_pool(url: str, *, min_size: int = 1, max_size: int = 4,
                          name: str = "parkleit") -> AsyncConnectionPool[Any]:
    """``open_pool`` for a service on asyncio: autocommit connections, checked before use,
    reconnecting for an hour; waits until one works (fails fast)."""
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        url, min_size=min_size, max_size=max_size, name=name, open=False,
        check=AsyncConnectionPool.check_connection, reconnect_timeout=3600.0,
        kwargs={"autocommit": True, "connect_timeout": 5})
    await pool.open(wait=True, timeout=10)
    return pool


def listen(conn: psycopg.Connection[Any], channels: Iterable[str]) -> None:
    """LISTEN on ``channels`` (a connection of its own: a pooled one would lose it)."""
    for channel in channels:
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))


async def alisten(conn: psycopg.AsyncConnection[Any], channels: Iterable[str]) -> None:
    """``listen`` on an asyncio connection."""
    for channel in channels:
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))


def check_database(url: str, timeout_s: float = 5.0) -> None:
    """Connect once; raises psycopg.OperationalError when the server cannot be reached."""
    with psycopg.connect(url, connect_timeout=max(1, int(timeout_s))) as conn:
        conn.execute(queries("core")["ping"])


def load_sql(package: str, name: str) -> str:
    """The text of ``{package}/{name}.sql`` (or ``{package}/sql/{name}.sql``)."""
    base = resources.files(package)
    for candidate in (base / f"{name}.sql", base / "sql" / f"{name}.sql"):
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    raise FileNotFoundError(f"no SQL file {name!r} in {package}")


@lru_cache
def queries(package: str, file: str = "queries") -> dict[str, str]:
    """Named queries from ``{package}/{file}.sql``; each starts with ``-- name: <name>``."""
    return {name: text for name, (_, text) in _named_queries(package, file).items()}


def query_descriptions(package: str, file: str = "queries") -> dict[str, str]:
    """What each named query of ``{package}/{file}.sql`` does: the comment lines right under
    its ``-- name:`` line, joined ("" for a query without them)."""
    return {name: about for name, (about, _) in _named_queries(package, file).items()}


@lru_cache
def _named_queries(package: str, file: str) -> dict[str, tuple[str, str]]:
    return parse_named_queries(load_sql(package, file))


def parse_named_queries(script: str) -> dict[str, tuple[str, str]]:
    """``{name: (description, text)}`` of the queries in ``script``: each starts with a line
    ``-- name: <name>``; the comment lines right under it say what it does."""
    found: dict[str, tuple[str, str]] = {}
    name: str | None = None
    lines: list[str] = []

    def close() -> None:
        if name:
            about = []
            for line in lines:
                if not line.startswith("--"):
                    break
                about.append(line.removeprefix("--").strip())
            found[name] = (" ".join(about), "\n".join(lines).strip())

    for line in script.splitlines():
        header = re.match(r"^--\s*name:\s*(\w+)\s*$", line)
        if header:
            close()
            name, lines = header[1], []
        elif name:
            lines.append(line)
    close()
    return found


def split_statements(script: str) -> list[str]:
    """Split an SQL script on top-level semicolons, keeping dollar-quoted bodies whole.

    Some servers (PGlite with TimescaleDB) take one statement per query, so scripts are
    sent statement by statement.
    """
    statements: list[str] = []
    current: list[str] = []
    dollar_tag: str | None = None
    for line in script.splitlines():
        stripped = line.strip()
        if dollar_tag is None and (not stripped or stripped.startswith("--")):
            continue
        current.append(line)
        for tag in re.findall(r"\$[A-Za-z_]*\$", line):
            if dollar_tag is None:
                dollar_tag = tag
            elif tag == dollar_tag:
                dollar_tag = None
        if dollar_tag is None and stripped.endswith(";"):
            statements.append("\n".join(current).strip())
            current = []
    if current and "".join(current).strip():
        statements.append("\n".join(current).strip())
    return statements


@dataclass(frozen=True)
class Migration:
    """One numbered schema change."""

    version: int
    name: str
    text: str


def _migrations(directory: Path | None) -> list[Migration]:
    found: list[Migration] = []
    root = directory if directory is not None else _SQL_DIR / "migrations"
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(
                Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8"))
            )
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions) or any(v < BASELINE_VERSION for v in versions):
        raise RuntimeError(f"migration numbers must be unique and >= {BASELINE_VERSION}")
    return found


def has_timescaledb(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    """Whether the TimescaleDB extension is installed in this database."""
    return conn.execute(queries("core")["timescaledb_installed"]).fetchone() is not None


def _run_script(conn: psycopg.Connection[tuple[object, ...]], script: str) -> None:
    for statement in split_statements(script):
        conn.execute(statement.encode())


def _stamp(conn: psycopg.Connection[tuple[object, ...]], migration: Migration) -> None:
    conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                 (migration.version, migration.name))


def migrate(
    conn: psycopg.Connection[tuple[object, ...]],
    *,
    migrations_dir: Path | None = None,
    up_to: int | None = None,
    use_timescaledb: bool | None = None,
) -> list[str]:
    """Bring the schema up to date (or to version ``up_to``); idempotent. Returns what was
    applied.

    A fresh database is built from ``schema.sql``, the current schema in one file, and
    stamped with the version of every numbered migration in ``migrations/`` (0001 is the
    frozen baseline): the file a reader sees is what runs. tests/core/test_migrations.py keeps the
    two honest: a database built from the baseline and every migration has the same catalog.
    A database with a version already gets the migrations it has not seen, in order, each in
    its own transaction; so does a fresh one asked for an older version (``up_to``) or given
    other migrations than the shipped ones (``migrations_dir``, tests), from its first on.
    The rules (``rules.sql``: the functions and views that decide what the data means) and the
    storage layer (``timescale.sql`` or ``plain.sql``) are re-applied each time; both are
    idempotent (the rules only at the newest version: an older schema may lack what they read).
    ``conn`` must be in autocommit mode.
    """
    applied: list[str] = []
    if use_timescaledb is None:
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
        ).fetchone()
        use_timescaledb = available is not None
    if use_timescaledb and not has_timescaledb(conn):
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        applied.append("extension timescaledb")

    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    migrations = _migrations(migrations_dir)
    if not done and up_to is None and migrations_dir is None:
        with conn.transaction():
            _run_script(conn, load_sql("core", "schema"))
            for migration in migrations:
                _stamp(conn, migration)
        done = {migration.version for migration in migrations}
        applied.append(f"schema.sql at {migrations[-1].version:04d} {migrations[-1].name}")
        logger.info("built the schema at version %04d", migrations[-1].version)
    for migration in migrations:
        if migration.version in done or (up_to is not None and migration.version > up_to):
            continue
        with conn.transaction():
            _run_script(conn, migration.text)
            _stamp(conn, migration)
        applied.append(f"{migration.version:04d} {migration.name}")
        logger.info("applied migration %04d %s", migration.version, migration.name)
    if migrations_dir is None and (up_to is None or up_to >= migrations[-1].version):
        _run_script(conn, load_sql("core", "rules"))  # idempotent: the rules in force
    _run_script(conn, load_sql("core", "timescale" if use_timescaledb else "plain"))
    return applied


def apply_roles(conn: psycopg.Connection[tuple[object, ...]], prefix: str,
                passwords: Mapping[str, str | None]) -> list[str]:
    """Give each service its role (``prefix`` + service) with exactly the privileges of
    ``roles.sql``; idempotent, one transaction. Returns what it did to the roles.

    A missing role is created NOLOGIN; a role with a password in ``passwords`` (by service)
    gets LOGIN and that password, hashed here (SCRAM-SHA-256), so the plain text reaches
    neither the server's log nor its statistics. Run as the schema's owner.
    """
    names = {service: f"{prefix}{service}" for service in SERVICE_ROLES}
    done: list[str] = []
    with conn.transaction():
        for service, role in names.items():
            known = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            if known.fetchone() is None:
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
                done.append(f"created {role}")
            password = passwords.get(service)
            if password:
                verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(),
                                                        b"scram-sha-256")
                conn.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(verifier.decode())))
                done.append(f"password of {role}")
        identifiers = {service: sql.Identifier(role) for service, role in names.items()}
        for statement in split_statements(load_sql("core", "roles")):
            conn.execute(sql.SQL(statement).format(
                database=sql.Identifier(conn.info.dbname), **identifiers))
    return done


def create_database(admin_url: str, name: str) -> bool:
    """Create database ``name`` through ``admin_url`` unless it exists; True if created."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True
