"""Least privilege in the database: each service connects as a role of its own.

``parkleit db migrate`` with ``PARKLEIT_DB_ROLES=true`` creates the roles (prefix + api, ingest,
signage, forecast) and grants each exactly what core/sql/roles.sql lists. Here: each role writes
exactly its tables; the API's cannot write sensor data nor read raw data, the audit or the
models' artefacts; ingest's cannot touch the models; a privilege granted by hand is gone after
the next migrate; no table holds an admin key; and every service runs with its role: ingest,
the API (every GET route, the stream and every admin action), signage, the forecaster, the
OCPP central system and the OCPI pull as real processes on the real database and broker.

Roles belong to the whole server, not to a database: each test makes its own with a random
prefix and drops them again.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from _citytoml import evse_id, station_toml, write_city
from _helpers import ROOT, ServiceProcess, answers_ok, service_env, utc_now, wait_for
from _ocpipeer import TOKEN_ENV, peer_points, write_peer_city
from _payloads import dumps, native_bay, ttn_topic, ttn_uplink
from psycopg import sql

from api import add_user
from api._keys import add_key
from charging import hash_password
from core.city import City, load_city
from core.db import SERVICE_ROLES, queries
from core.registry import sync_registry
from core.settings import Settings
from parkleit.embedded import free_port
from simulators._mqtt import mqtt_client
from simulators.history import backfill_history

# What each service may change (INSERT, UPDATE, DELETE, TRUNCATE on a table or any column):
# the documented list (docs/operations.md, "Database roles"); everything else it may not.
WRITES: dict[str, dict[str, set[str]]] = {
    "api": {"lot_closures": {"INSERT", "UPDATE", "DELETE"},
            "lot_capacity_limits": {"INSERT", "UPDATE", "DELETE"},
            "sign_overrides": {"INSERT", "UPDATE", "DELETE"},
            "admin_audit": {"INSERT"}, "lot_state": {"UPDATE"},
            "console_sessions": {"INSERT", "UPDATE", "DELETE"}, "alarms": {"UPDATE"},
            "console_users": {"INSERT", "UPDATE"}, "events": {"INSERT", "DELETE"},
            "evse_status": {"INSERT"}, "evse_state": {"INSERT", "UPDATE"}},
    "ingest": {"bay_events": {"INSERT"}, "lot_occupancy": {"INSERT"},
               "sensor_health": {"INSERT"}, "bay_state": {"INSERT", "UPDATE"},
               "dead_letters": {"INSERT", "UPDATE"}, "lot_state": {"UPDATE"},
               "alarms": {"INSERT", "UPDATE"}, "evse_status": {"INSERT"},
               "evse_state": {"INSERT", "UPDATE"}, "leader_terms": {"INSERT", "UPDATE"}},
    "signage": {"sign_log": {"INSERT"}, "sign_state": {"INSERT", "UPDATE"},
                "leader_terms": {"INSERT", "UPDATE"}},
    "forecast": {"forecast_models": {"INSERT", "UPDATE"}, "forecasts": {"INSERT", "UPDATE"},
                 "forecast_accuracy": {"INSERT", "UPDATE", "DELETE"},
                 "leader_terms": {"INSERT", "UPDATE"}},
    "ocpp": {"evse_status": {"INSERT"}, "evse_state": {"INSERT", "UPDATE"},
             "dead_letters": {"INSERT", "UPDATE"}},
    "ocpi": {"evse_status": {"INSERT"}, "evse_state": {"INSERT", "UPDATE"},
             "dead_letters": {"INSERT", "UPDATE"}, "leader_terms": {"INSERT", "UPDATE"}},
}
# What a service must not even read (beyond what the list above implies).
NO_READS: dict[str, tuple[str, ...]] = {
    "api": ("bay_events", "dead_letters", "forecast_models.artefact"),
    "ingest": ("forecast_models.version", "forecasts", "admin_audit", "sign_log"),
    "signage": ("bay_events", "dead_letters", "admin_audit", "forecast_models.version"),
    "forecast": ("bay_events", "dead_letters", "admin_audit", "sign_overrides"),
    "ocpp": ("bay_events", "dead_letters.payload", "lot_state", "admin_audit", "alarms"),
    "ocpi": ("bay_events", "dead_letters.payload", "lot_state", "admin_audit", "alarms"),
}

_WRITTEN = """
SELECT c.relname, p.privilege
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
CROSS JOIN unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) AS p (privilege)
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
  AND CASE WHEN p.privilege IN ('INSERT', 'UPDATE')
           THEN has_any_column_privilege(%(role)s, c.oid, p.privilege)
           ELSE has_table_privilege(%(role)s, c.oid, p.privilege) END
"""


@dataclass
class Roles:
    """The services' roles of one test: their names and database URLs."""

    names: dict[str, str]
    urls: dict[str, str]
    migrate_env: dict[str, str]


def _with_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(
        netloc=f"{user}:{password}@{parts.hostname}:{parts.port or 5432}"))


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "parkleit", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def city_path(tmp_path: Path) -> Path:
    """The test city with charging points: the AFIR publications have something to read."""
    return write_city(tmp_path, f"t{secrets.token_hex(4)}", chargers=True)


@pytest.fixture
def roles(settings: Settings, db_url: str) -> Iterator[Roles]:
    """``db migrate`` with the roles, as the database's owner (the suite's superuser)."""
    prefix = f"ptest_{secrets.token_hex(4)}_"
    passwords = {service: secrets.token_hex(16) for service in SERVICE_ROLES}
    names = {service: f"{prefix}{service}" for service in SERVICE_ROLES}
    env = service_env(settings, PARKLEIT_DB_ROLES="true", PARKLEIT_DB_ROLE_PREFIX=prefix,
                      **{f"PARKLEIT_DB_{service.upper()}_PASSWORD": password
                         for service, password in passwords.items()})
    try:
        migrated = _cli(["db", "migrate"], env)
        assert migrated.returncode == 0, migrated.stderr
        assert f"created {names['api']}" in migrated.stderr
        yield Roles(names, {service: _with_user(db_url, names[service], passwords[service])
                            for service in SERVICE_ROLES}, env)
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            for role in names.values():
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                if exists.fetchone():
                    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def _written(conn: psycopg.Connection[Any], role: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for table, privilege in conn.execute(_WRITTEN, {"role": role}):
        found.setdefault(table, set()).add(privilege)
    return found


def _refused(url: str, statement: str) -> bool:
    """Whether the database refuses ``statement`` to the role of ``url`` for lack of rights."""
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute(statement)
        except psycopg.errors.InsufficientPrivilege:
            return True
    return False


def test_each_role_writes_exactly_its_tables(roles: Roles, conn: psycopg.Connection[Any]) -> None:
    for service, role in roles.names.items():
        assert _written(conn, role) == WRITES[service], service
        attributes = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolcanlogin, "
            "has_schema_privilege(rolname, 'public', 'CREATE'), "
            "has_database_privilege(rolname, current_database(), 'CREATE') "
            "FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        assert attributes == (False, False, False, False, True, False, False), service
        for target in NO_READS[service]:
            table, _, column = target.partition(".")
            assert _refused(roles.urls[service],
                            f"SELECT {column or '*'} FROM {table} LIMIT 1"), (service, target)


def test_the_api_cannot_write_sensor_data_nor_change_the_audit(roles: Roles) -> None:
    api = roles.urls["api"]
    for statement in (
            "INSERT INTO bay_events (time, bay_id, occupied, source) "
            "VALUES (now(), 'x', true, 'forged')",
            # Only status and count (an operator closes a lot, corrects a count); the
            # counter's readings are ingest's.
            "UPDATE lot_state SET counter_entries = 0", "UPDATE lot_state SET capacity = 0",
            "DELETE FROM admin_audit", "UPDATE admin_audit SET client = NULL",
            "DELETE FROM lots", "INSERT INTO signs (sign_id, city, name, driver, address, "
            "latitude, longitude) VALUES ('x', 'x', 'x', 'http', 'x', 0, 0)",
            "TRUNCATE lot_occupancy", "CREATE TABLE mine (x integer)"):
        assert _refused(api, statement), statement
    ingest = roles.urls["ingest"]
    for statement in ("SELECT count(*) FROM forecast_models",
                      "INSERT INTO forecast_models (version, city, created_at, kind, "
                      "trained_from, trained_to, lots, artefact) VALUES ('x', 'x', now(), 'x', "
                      "now(), now(), '{}', '')", "DELETE FROM forecast_models",
                      "DELETE FROM bay_events", "INSERT INTO lot_closures (lot_id, reason, "
                      "closed_by, since) VALUES ('x', 'x', 'x', now())"):
        assert _refused(ingest, statement), statement


def test_migrate_takes_back_what_was_granted_by_hand(
        roles: Roles, conn: psycopg.Connection[Any]) -> None:
    ingest = roles.names["ingest"]
    conn.execute(sql.SQL("GRANT ALL ON forecast_models, admin_audit TO {}").format(
        sql.Identifier(ingest)))
    assert "forecast_models" in _written(conn, ingest)
    again = _cli(["db", "migrate"], roles.migrate_env)
    assert again.returncode == 0, again.stderr
    assert "no role created" not in again.stderr  # the passwords were set again
    assert _written(conn, ingest) == WRITES["ingest"]
    assert _refused(roles.urls["ingest"], "SELECT count(*) FROM forecast_models")


def test_roles_without_passwords_cannot_log_in(settings: Settings,
                                               conn: psycopg.Connection[Any]) -> None:
    prefix = f"ptest_{secrets.token_hex(4)}_"
    env = service_env(settings, PARKLEIT_DB_ROLES="true", PARKLEIT_DB_ROLE_PREFIX=prefix)
    try:
        migrated = _cli(["db", "migrate"], env)
        assert migrated.returncode == 0, migrated.stderr
        rows = conn.execute("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE %s",
                            (f"{prefix}%",)).fetchall()
        assert sorted(rows) == sorted((f"{prefix}{service}", False) for service in SERVICE_ROLES)
        # Usable through membership: an operator's own login granted the role.
        assert _written(conn, f"{prefix}api") == WRITES["api"]
    finally:
        for service in SERVICE_ROLES:
            role = sql.Identifier(f"{prefix}{service}")
            conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
            conn.execute(sql.SQL("DROP ROLE {}").format(role))
    # A password without the roles switched on is a mistake, not silently nothing.
    unused = _cli(["db", "migrate"], service_env(settings, PARKLEIT_DB_API_PASSWORD="x" * 20))
    assert unused.returncode == 2 and "PARKLEIT_DB_ROLES" in unused.stderr, unused.stderr


# -- the services with their roles ---------------------------------------------------------------


def _count(conn: psycopg.Connection[Any], query: str) -> int:
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def site(roles: Roles, settings: Settings, spawn: Callable[..., ServiceProcess],
         tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``parkleit ingest`` and ``parkleit api`` with their roles; the API's URL and key."""
    ingest = spawn(["ingest"], service_env(settings, PARKLEIT_DATABASE_URL=roles.urls["ingest"],
                                           PARKLEIT_INGEST_STALE_CHECK_S="1"), name="ingest")
    ingest.wait_log("connected to MQTT", timeout=30)
    keys = tmp_path / "api-keys"
    key = add_key(keys, "ops")
    port = free_port()
    api = spawn(["api", "--port", str(port)], service_env(
        settings, PARKLEIT_DATABASE_URL=roles.urls["api"], PARKLEIT_API_KEYS_FILE=str(keys),
        PARKLEIT_API_RATE_PER_IP="0"), name="api")
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: answers_ok(f"{url}/healthz"), timeout=30)
    yield url, key
    for process in (ingest, api):
        _no_refusal(process)


def _no_refusal(process: ServiceProcess) -> None:
    log = process.log.read_text(errors="replace")
    assert "permission denied" not in log and "InsufficientPrivilege" not in log, log[-3000:]


def test_ingest_writes_with_its_role(site: tuple[str, str], settings: Settings, city: City,
                                     conn: psycopg.Connection[Any]) -> None:
    now = utc_now()
    client = mqtt_client(settings, f"pub-{city.id}")
    try:
        for number in range(1, 4):
            client.publish(f"parkleit/v1/{city.id}/bays/{city.id}-st-00{number}",
                           dumps(native_bay(now, seq=number)), qos=1)
        client.publish(f"parkleit/v1/{city.id}/lots/{city.id}-garage/counter",
                       json.dumps({"occupied": 40, "ts": now.isoformat()}), qos=1)
        client.publish(ttn_topic(city.id), dumps(ttn_uplink(city.id, now)), qos=1)
        client.publish(f"parkleit/v1/{city.id}/bays/{city.id}-st-001", b"not json",
                       qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()
    written = ("SELECT (SELECT count(*) FROM bay_events), (SELECT count(*) FROM dead_letters), "
               "(SELECT count(*) > 0 FROM sensor_health), "
               "(SELECT count(*) FROM lot_state WHERE free IS NOT NULL)")
    wait_for(lambda: conn.execute(written).fetchone() == (4, 1, True, 3))
    lots = httpx.get(f"{site[0]}/v1/lots").json()
    garage = next(lot for lot in lots["lots"] if lot["id"] == f"{city.id}-garage")
    assert garage["free"] == 60
    # The alarms' evaluator, at each stale check, with the same role: the lot no reading came
    # from has its alarm, the others none.
    alarms = "SELECT target FROM alarms WHERE kind = 'lot_no_data' AND cleared_at IS NULL"
    wait_for(lambda: conn.execute(alarms).fetchall() == [(f"{city.id}-small",)])


def test_every_api_route_works_with_its_role(site: tuple[str, str], city: City,
                                             conn: psycopg.Connection[Any]) -> None:
    url, key = site
    spec = httpx.get(f"{url}/openapi.json").json()
    lot_id, sign_id = city.lots[0].id, city.signs[0].id
    # A person of the console (written by the schema's owner, as `parkleit users add` does),
    # logged in through the API's role: its session's cookie goes with every request.
    add_user(conn, "ada", "admin", "a console password", utc_now())
    client = httpx.Client(base_url=url, timeout=30)
    login = client.post("/v1/console/login", json={"username": "ada",
                                                   "password": "a console password"})
    assert login.status_code == 200, login.text
    answers: dict[str, int] = {}
    month = utc_now().strftime("%Y-%m")  # under way in UTC: begun in the city's zone too
    for path, operations in spec["paths"].items():
        if "get" not in operations or path == "/v1/stream":
            continue
        concrete = (path.replace("{lot_id}", lot_id).replace("{sign_id}", sign_id)
                    .replace("{city}", city.id).replace("{month}", month))
        variants = {"/v1/lots/{lot_id}/history": ["?resolution=15m", "?resolution=1h",
                                                   "?resolution=1d"],
                    "/v1/export.csv": ["?resolution=raw", "?resolution=1d"]}.get(path, [""])
        for query in variants:
            answers[concrete + query] = client.get(f"{concrete}{query}").status_code
    assert answers and all(status == 200 for status in answers.values()), {
        path: status for path, status in answers.items() if status != 200}
    with httpx.stream("GET", f"{url}/v1/stream", timeout=10) as stream:
        assert stream.status_code == 200
        assert any(line.startswith("data:") for line in _first_lines(stream.iter_lines(), 5))

    admin = {"X-API-Key": key}
    steps = [("POST", f"/v1/admin/lots/{lot_id}/close", {"reason": "Bauarbeiten"}),
             ("POST", f"/v1/admin/lots/{lot_id}/open", None),
             ("POST", f"/v1/admin/signs/{sign_id}/override",
              {"lines": [{"text": "Umleitung"}], "reason": "Markt"}),
             ("DELETE", f"/v1/admin/signs/{sign_id}/override", None),
             ("POST", "/v1/admin/reload", None)]
    for method, path, body in steps:
        answer = httpx.request(method, f"{url}{path}", json=body, headers=admin, timeout=30)
        assert answer.status_code == 200, (path, answer.text)
    csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
    # An alarm ingest raised with its role (no lot has been heard from here).
    alarm = wait_for(lambda: conn.execute(
        "SELECT id FROM alarms WHERE target = %s AND cleared_at IS NULL", (lot_id,)).fetchone())
    for path, body in ((f"/v1/console/lots/{lot_id}/close", {"reason": "Markt"}),
                       (f"/v1/console/lots/{lot_id}/open", None),
                       (f"/v1/console/alarms/{alarm[0]}/ack", {"comment": "Techniker"})):
        answer = client.post(path, json=body, headers=csrf)
        assert answer.status_code == 200, (path, answer.text)
    # An event on now (its lot closes at once), and its deletion.
    now = utc_now()
    event = client.post("/v1/console/events", headers=csrf, json={
        "name": "Konzert", "city": city.id, "starts": now.isoformat(),
        "ends": (now + timedelta(hours=1)).isoformat(), "lots": [lot_id],
        "closed_lots": [lot_id]})
    assert event.status_code == 201 and event.json()["on"], event.text
    deleted = client.delete(f"/v1/console/events/{event.json()['id']}", headers=csrf)
    assert deleted.status_code == 200, deleted.text
    assert client.get("/v1/console/audit").json()["total"] == 10
    assert client.post("/v1/console/logout", headers=csrf).status_code == 204
    client.close()
    audit = conn.execute("SELECT action, key_name FROM admin_audit ORDER BY time").fetchall()
    assert [action for action, _ in audit] == ["close_lot", "open_lot", "override_sign",
                                               "clear_sign_override", "reload", "close_lot",
                                               "open_lot", "ack_alarm", "create_event",
                                               "delete_event"]


def _first_lines(lines: Iterator[str], count: int) -> list[str]:
    taken = []
    for line in lines:
        taken.append(line)
        if len(taken) == count:
            break
    return taken


def test_no_table_holds_an_admin_key(site: tuple[str, str], city: City,
                                     conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    url, key = site
    closed = httpx.post(f"{url}/v1/admin/lots/{city.lots[0].id}/close",
                        json={"reason": "Hochwasser"}, headers={"Authorization": f"Bearer {key}"})
    assert closed.status_code == 200, closed.text
    stored_hash = (tmp_path / "api-keys").read_text(encoding="utf-8").split(":", 1)[1].strip()
    tables = [row[0] for row in conn.execute(
        "SELECT quote_ident(table_name) FROM information_schema.tables "
        "WHERE table_schema = 'public'")]
    assert "admin_audit" in tables
    for table in tables:
        text = " ".join(row[0] for row in conn.execute(
            sql.SQL("SELECT t::text FROM {} AS t").format(sql.SQL(table))))
        assert key not in text and stored_hash not in text, table
    assert conn.execute("SELECT key_name FROM admin_audit").fetchall() == [("ops",)]


def test_an_unmigrated_config_stops_a_service_that_may_only_read_the_registry(
        roles: Roles, settings: Settings, city_path: Path, site: tuple[str, str]) -> None:
    url, key = site
    # The operator changes the config but does not run db migrate: the API's role cannot
    # sync the registry, so a reload refuses the config, and ingest does not start on it.
    city_path.write_text(city_path.read_text(encoding="utf-8").replace(
        "capacity = 100", "capacity = 120"), encoding="utf-8")
    reload = httpx.post(f"{url}/v1/admin/reload", headers={"X-API-Key": key}, timeout=30)
    assert reload.status_code == 422, reload.text
    assert "parkleit db migrate" in reload.json()["detail"]
    ingest = _cli(["ingest"], service_env(settings, PARKLEIT_DATABASE_URL=roles.urls["ingest"]))
    assert ingest.returncode == 2 and "parkleit db migrate" in ingest.stderr, ingest.stderr
    # Migrated, both take it.
    assert _cli(["db", "migrate"], roles.migrate_env).returncode == 0
    reload = httpx.post(f"{url}/v1/admin/reload", headers={"X-API-Key": key}, timeout=30)
    assert reload.status_code == 200, reload.text


def test_signage_and_the_forecaster_work_with_their_roles(
        roles: Roles, settings: Settings, city: City, conn: psycopg.Connection[Any],
        spawn: Callable[..., ServiceProcess]) -> None:
    backfill_history(conn, city, end=utc_now(), weeks=1, seed=3)  # a baseline: quick
    forecast = service_env(settings, PARKLEIT_DATABASE_URL=roles.urls["forecast"])
    trained = _cli(["forecast", "train", "--days", "7"], forecast)
    assert trained.returncode == 0, trained.stderr
    predicted = _cli(["forecast", "predict"], forecast)
    assert predicted.returncode == 0, predicted.stderr
    assert _count(conn, "SELECT count(*) FROM forecasts") > 0
    assert _count(conn, "SELECT count(*) FROM forecast_models") == 1

    signage = spawn(["signage"], service_env(
        settings, PARKLEIT_DATABASE_URL=roles.urls["signage"], PARKLEIT_SIGNAGE_METRICS_PORT="0"),
        name="signage")
    # Its sign does not answer (127.0.0.1:1): every push is logged as failed, and its health.
    wait_for(lambda: _count(conn, "SELECT count(*) FROM sign_log") >= 1
             and _count(conn, "SELECT count(*) FROM sign_state") == 1, timeout=30)
    assert signage.terminate() == 0
    _no_refusal(signage)


def test_a_reload_taking_another_citys_id_is_refused(
        settings: Settings, city: City, city_path: Path, conn: psycopg.Connection[Any],
        tmp_path: Path) -> None:
    """The registry refuses an id another city has (RegistryConflict): a 422 that names it,
    as for a broken config, not a 500."""
    from fastapi.testclient import TestClient

    from api import create_app
    from core.registry import sync_registry

    sync_registry(conn, city)
    conn.execute("UPDATE lots SET city = 'elsewhere' WHERE lot_id = %s", (f"{city.id}-small",))
    key = add_key(tmp_path / "keys", "ops")
    app = create_app(settings.model_copy(update={"API_KEYS_FILE": tmp_path / "keys",
                                                 "CITIES": (str(city_path),)}), city)
    with TestClient(app, raise_server_exceptions=False) as client:
        refused = client.post("/v1/admin/reload", headers={"X-API-Key": key})
    assert refused.status_code == 422, refused.text
    assert "already city 'elsewhere'" in refused.json()["detail"]


def test_the_charging_services_work_with_their_roles(
        roles: Roles, settings: Settings, conn: psycopg.Connection[Any],
        spawn: Callable[..., ServiceProcess], tmp_path: Path) -> None:
    """``parkleit ocpp`` and ``parkleit ocpi`` with their roles: statuses of simulated OCPP
    stations and of a simulated OCPI peer stored and published, a refused message counted as a
    dead letter, nothing refused to them."""
    city_id = Path(settings.CITY).stem  # the migrated test city, with chargers and a peer
    ocpi_port, ocpp_port = free_port(), free_port()
    path = write_peer_city(tmp_path, city_id,
                           f"http://127.0.0.1:{ocpi_port}/ocpi/cpo/2.2.1/locations")
    station, point = f"{city_id}-cp-4", evse_id(city_id, 4, 1)
    path.write_text(path.read_text(encoding="utf-8") + station_toml(
        city_id, 4, f"{city_id}-garage", name="Ladestation OCPP", operator="city",
        protocol="ocpp"), encoding="utf-8")
    sync_registry(conn, load_city(str(path)))  # db migrate's part: the roles only read it
    credentials, passwords = tmp_path / "credentials", tmp_path / "passwords"
    credentials.write_text(f"{station}:{hash_password('pw-' + station, n=1024)}\n")
    passwords.write_text(f"{station}:pw-{station}\n")
    env = service_env(settings, PARKLEIT_CITY=str(path), PARKLEIT_OCPP_PORT=str(ocpp_port),
                      PARKLEIT_OCPP_CREDENTIALS_FILE=str(credentials),
                      PARKLEIT_SIMULATE_OCPP_PASSWORDS_FILE=str(passwords),
                      **{TOKEN_ENV: "the-simulated-peers-token"})
    central = spawn(["ocpp"], env | {"PARKLEIT_DATABASE_URL": roles.urls["ocpp"]}, name="ocpp")
    central.wait_log("listening on ws://127.0.0.1", timeout=30)
    # The OCPP stations, and the peer's OCPI platform (its locations_url is on this machine).
    spawn(["simulate", "chargers", "--faults", "off"], env, name="chargers")
    pull = spawn(["ocpi"], env | {"PARKLEIT_DATABASE_URL": roles.urls["ocpi"]}, name="ocpi")
    stored = ("SELECT source, array_agg(evse_id ORDER BY evse_id) FROM evse_state "
              "GROUP BY source ORDER BY source")
    wait_for(lambda: conn.execute(stored).fetchall() == [
        ("ocpi", peer_points(city_id)), ("ocpp", [point])], timeout=30)
    # A refused message, twice (the second counts up the first's row), as each role.
    for service, package in (("ocpp", "charging"), ("ocpi", "ocpi")):
        with psycopg.connect(roles.urls[service], autocommit=True) as own:
            for _ in range(2):
                own.execute(queries(package)["insert_dead_letter"], {
                    "received": utc_now(), "topic": f"{service}/x", "payload": b"{",
                    "payload_size": 1, "digest": b"d", "reason": "test"})
    assert conn.execute("SELECT topic, occurrences FROM dead_letters ORDER BY topic").fetchall(
        ) == [("ocpi/x", 2), ("ocpp/x", 2)]
    for process in (central, pull):
        assert process.terminate() == 0
        _no_refusal(process)
