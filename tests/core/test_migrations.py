"""The migrator: idempotent, and every path to the newest version gives the same schema."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from core.db import migrate, split_statements

CATALOG = {
    "columns": """SELECT table_name, column_name, data_type, is_nullable, column_default
                  FROM information_schema.columns WHERE table_schema = 'public'""",
    "constraints": """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
                      FROM pg_constraint WHERE connamespace = 'public'::regnamespace""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "views": "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public'",
    "functions": """SELECT proname, pg_get_function_identity_arguments(oid), prosrc
                    FROM pg_proc WHERE pronamespace = 'public'::regnamespace""",
    "migrations": "SELECT version, name FROM schema_migrations",
}


def catalog(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    return {name: sorted(conn.execute(query).fetchall(), key=repr)
            for name, query in CATALOG.items()}


@contextmanager
def new_database(admin_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection to a brand-new, empty database, dropped afterwards."""
    name = f"parkleit_m_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = admin_url.rsplit("/", 1)[0] + f"/{name}"
        with psycopg.connect(url, autocommit=True) as conn:
            yield conn
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def empty_db(admin_url: str) -> Iterator[psycopg.Connection[Any]]:
    with new_database(admin_url) as conn:
        yield conn


def test_fresh_database_gets_every_table_of_the_design(empty_db: psycopg.Connection[Any]) -> None:
    assert migrate(empty_db, use_timescaledb=False) == [
        "0001 baseline", "0002 data_quality", "0003 forecast_models", "0004 sign_state",
        "0005 operator_overrides", "0006 clock", "0007 counter_plausibility",
        "0008 forecast_backtest"]
    tables = {row[0] for row in empty_db.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables >= {"lots", "bays", "signs", "bay_events", "lot_occupancy", "sensor_health",
                      "forecasts", "sign_log", "lot_state", "dead_letters", "forecast_models",
                      "forecast_accuracy", "sign_state", "lot_closures", "sign_overrides",
                      "admin_audit"}
    views = {row[0] for row in empty_db.execute(
        "SELECT viewname FROM pg_views WHERE schemaname = 'public'")}
    assert views >= {"lot_occupancy_15m", "lot_occupancy_1h", "sensor_state"}


def test_real_migrations_upgrade_a_database_with_data(
        tmp_path: Path, empty_db: psycopg.Connection[Any]) -> None:
    """A version-1 database holding rows takes the shipped migrations without losing any."""
    migrate(empty_db, migrations_dir=tmp_path, use_timescaledb=False)  # version 1 only
    empty_db.execute("INSERT INTO lots (lot_id, city, name, kind, counting, capacity, latitude,"
                     " longitude) VALUES ('a', 'c', 'A', 'surface', 'bays', 1, 51, 12)")
    empty_db.execute("INSERT INTO bays (bay_id, lot_id) VALUES ('b', 'a')")
    empty_db.execute("INSERT INTO bay_state VALUES ('b', true, '2026-11-24 10:00+00')")
    assert migrate(empty_db, use_timescaledb=False) == [
        "0002 data_quality", "0003 forecast_models", "0004 sign_state",
        "0005 operator_overrides", "0006 clock", "0007 counter_plausibility",
        "0008 forecast_backtest"]
    assert empty_db.execute("SELECT occupied, since FROM bay_state").fetchall() == [
        (True, datetime(2026, 11, 24, 10, tzinfo=UTC))]


def test_migrating_again_changes_nothing(empty_db: psycopg.Connection[Any]) -> None:
    migrate(empty_db, use_timescaledb=False)
    before = catalog(empty_db)
    assert migrate(empty_db, use_timescaledb=False) == []
    assert catalog(empty_db) == before


def test_upgrade_path_equals_fresh_install(tmp_path: Path, admin_url: str,
                                           empty_db: psycopg.Connection[Any]) -> None:
    """A database migrated before a new migration existed, then upgraded, equals a fresh one."""
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    migrate(empty_db, migrations_dir=migrations, use_timescaledb=False)  # the old release
    (migrations / "0003_lot_notes.sql").write_text(
        "ALTER TABLE lots ADD COLUMN notes text NOT NULL DEFAULT '';\n"
        "CREATE FUNCTION lot_label(lot lots) RETURNS text LANGUAGE sql AS $$\n"
        "  SELECT lot.name || '; ' || lot.notes;\n$$;\n")
    assert migrate(empty_db, migrations_dir=migrations, use_timescaledb=False) == [
        "0003 lot_notes"]
    upgraded = catalog(empty_db)

    with new_database(admin_url) as fresh:
        assert migrate(fresh, migrations_dir=migrations, use_timescaledb=False) == [
            "0001 baseline", "0003 lot_notes"]
        assert catalog(fresh) == upgraded


def test_failed_migration_is_rolled_back(tmp_path: Path,
                                         empty_db: psycopg.Connection[Any]) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0002_broken.sql").write_text(
        "ALTER TABLE lots ADD COLUMN half_done text;\nSELECT no_such_function();\n")
    with pytest.raises(psycopg.errors.UndefinedFunction):
        migrate(empty_db, migrations_dir=migrations, use_timescaledb=False)
    columns = {row[0] for row in empty_db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'lots'")}
    assert "half_done" not in columns
    assert empty_db.execute("SELECT max(version) FROM schema_migrations").fetchone() == (1,)


def test_split_statements_keeps_dollar_quoted_bodies() -> None:
    script = """-- comment; with a semicolon
CREATE TABLE a (x int);
DO $$
BEGIN
    PERFORM 1; PERFORM 2;
END
$$;

CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$;
SELECT 'x'"""
    assert split_statements(script) == [
        "CREATE TABLE a (x int);",
        "DO $$\nBEGIN\n    PERFORM 1; PERFORM 2;\nEND\n$$;",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$;",
        "SELECT 'x'",
    ]
