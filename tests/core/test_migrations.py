"""The migrator: a fresh database is built from the current schema.sql, an older one takes the
migrations it has not seen, and both ways give the same database (with a check that can fail)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _catalog import catalog, differences
from psycopg import sql

from core.db import SERVICE_ROLES, apply_roles, migrate, split_statements

# The shipped migrations, in order, as migrate() reports them.
MIGRATIONS = ["0001 baseline", "0002 data_quality", "0003 forecast_models", "0004 sign_state",
              "0005 operator_overrides", "0006 clock", "0007 counter_plausibility",
              "0008 forecast_backtest", "0009 bay_status", "0010 console",
              "0011 alarms", "0012 sign_modes", "0013 leadership", "0014 events",
              "0015 chargers"]

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


@pytest.fixture(scope="module")
def both_ways(admin_url: str) -> Iterator[tuple[psycopg.Connection[Any],
                                                 psycopg.Connection[Any]]]:
    """(built from schema.sql, built from the baseline and every migration), each with the
    services' roles applied (roles of this module's own, dropped after the databases)."""
    prefix = f"ptest_{secrets.token_hex(4)}_"
    with ExitStack() as stack:
        stack.callback(_drop_roles, admin_url, prefix)
        fresh = stack.enter_context(new_database(admin_url))
        migrated = stack.enter_context(new_database(admin_url))
        assert migrate(fresh, use_timescaledb=False) == ["schema.sql at 0015 chargers"]
        assert migrate(migrated, up_to=1, use_timescaledb=False) == MIGRATIONS[:1]
        assert migrate(migrated, use_timescaledb=False) == MIGRATIONS[1:]
        for conn in (fresh, migrated):
            apply_roles(conn, prefix, {})
        yield fresh, migrated


def _drop_roles(admin_url: str, prefix: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        for service in SERVICE_ROLES:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(
                sql.Identifier(prefix + service)))


def test_schema_file_equals_baseline_and_migrations(
        both_ways: tuple[psycopg.Connection[Any], psycopg.Connection[Any]]) -> None:
    fresh, migrated = both_ways
    found = catalog(fresh)
    differ = differences(found, catalog(migrated))
    assert not differ, "schema.sql and the migrations differ:\n" + "\n".join(differ)
    assert {"lots", "sensor_state", "lot_occupancy_15m"} <= {row[0] for row in found["relations"]}
    assert {"bay_stuck", "bay_status", "sensor_status"} <= {row[0] for row in found["functions"]}
    assert any(grantee.endswith("_ingest") for _, _, grantee, _ in found["grants"])


@pytest.mark.parametrize(("change", "expected"), [
    ("ALTER TABLE lots ADD COLUMN notes text",
     ["columns only by migrations: lots | notes | 20 | text | False | None"]),
    ("ALTER TABLE bay_state ALTER COLUMN since DROP NOT NULL",
     ["columns only by schema.sql: bay_state | since | 4 | timestamp with time zone | True | "
      "None", "columns only by migrations: bay_state | since | 4 | timestamp with time zone | "
      "False | None"]),
    ("DROP INDEX lots_city_idx",
     ["indexes only by schema.sql: lots | lots_city_idx | CREATE INDEX lots_city_idx ON "
      "public.lots USING btree (city)"]),
])
def test_the_comparison_names_a_difference(
        both_ways: tuple[psycopg.Connection[Any], psycopg.Connection[Any]], change: str,
        expected: list[str]) -> None:
    """The check can fail: one change to the migrated database is reported, and only it."""
    fresh, migrated = both_ways
    with migrated.transaction(force_rollback=True):
        migrated.execute(change)
        assert differences(catalog(fresh), catalog(migrated)) == expected


def test_a_changed_function_body_is_a_difference(
        both_ways: tuple[psycopg.Connection[Any], psycopg.Connection[Any]]) -> None:
    fresh, migrated = both_ways
    with migrated.transaction(force_rollback=True):
        migrated.execute("CREATE OR REPLACE FUNCTION bay_stuck(occupied boolean, since "
                         "timestamptz, max_dwell_s integer, max_idle_s integer, at timestamptz)"
                         " RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT"
                         " false $$")
        found = differences(catalog(fresh), catalog(migrated))
    assert [line.split(":")[0] for line in found] == [
        "functions only by schema.sql", "functions only by migrations"]
    assert all("bay_stuck" in line for line in found)


def test_fresh_database_is_stamped_with_every_migration(
        both_ways: tuple[psycopg.Connection[Any], psycopg.Connection[Any]]) -> None:
    fresh, _ = both_ways
    assert [f"{version:04d} {name}" for version, name in fresh.execute(
        "SELECT version, name FROM schema_migrations ORDER BY version")] == MIGRATIONS


def test_real_migrations_upgrade_a_database_with_data(
        empty_db: psycopg.Connection[Any]) -> None:
    """A version-1 database holding rows takes the shipped migrations without losing any."""
    assert migrate(empty_db, up_to=1, use_timescaledb=False) == MIGRATIONS[:1]
    empty_db.execute("INSERT INTO lots (lot_id, city, name, kind, counting, capacity, latitude,"
                     " longitude) VALUES ('a', 'c', 'A', 'surface', 'bays', 1, 51, 12)")
    empty_db.execute("INSERT INTO bays (bay_id, lot_id) VALUES ('b', 'a')")
    empty_db.execute("INSERT INTO bay_state VALUES ('b', true, '2026-11-24 10:00+00')")
    assert migrate(empty_db, up_to=8, use_timescaledb=False) == MIGRATIONS[1:8]
    assert migrate(empty_db, use_timescaledb=False) == MIGRATIONS[8:]
    assert empty_db.execute("SELECT occupied, since FROM bay_state").fetchall() == [
        (True, datetime(2026, 11, 24, 10, tzinfo=UTC))]


def test_migrating_again_changes_nothing(empty_db: psycopg.Connection[Any]) -> None:
    migrate(empty_db, use_timescaledb=False)
    before = catalog(empty_db)
    assert migrate(empty_db, use_timescaledb=False) == []
    assert catalog(empty_db) == before


def test_failed_migration_is_rolled_back(tmp_path: Path,
                                         empty_db: psycopg.Connection[Any]) -> None:
    migrate(empty_db, up_to=1, use_timescaledb=False)
    (tmp_path / "0002_broken.sql").write_text(
        "ALTER TABLE lots ADD COLUMN half_done text;\nSELECT no_such_function();\n")
    with pytest.raises(psycopg.errors.UndefinedFunction):
        migrate(empty_db, migrations_dir=tmp_path, use_timescaledb=False)
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
