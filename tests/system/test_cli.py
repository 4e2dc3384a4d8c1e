"""The command line: exit codes and one-line reasons for bad usage and config."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from _helpers import assert_bad_usage, run_parkleit

from parkleit.embedded import free_port


@pytest.mark.parametrize(("env", "args", "reason"), [
    ({"PARKLEIT_DATABASE_URL": "mysql://x@127.0.0.1/db"}, ["db", "migrate"],
     "PARKLEIT_DATABASE_URL: scheme must be postgresql://"),
    ({"PARKLEIT_MQTT_URL": "http://127.0.0.1"}, ["ingest"],
     "PARKLEIT_MQTT_URL: scheme must be mqtt:// or mqtts://"),
    ({"PARKLEIT_MQTT_URL": "mqtt://127.0.0.1:99999"}, ["ingest"], "PARKLEIT_MQTT_URL: bad port"),
    ({"PARKLEIT_INGEST_BATCH_SIZE": "0"}, ["ingest"], "PARKLEIT_INGEST_BATCH_SIZE"),
    ({"PARKLEIT_CITY": "atlantis"}, ["db", "migrate"], "atlantis.toml: no such city config"),
    ({}, ["simulate", "load", "--rate", "-5"], "must be >= 0"),
    ({}, ["simulate", "signs", "--minute-s", "0"], "--minute-s must be > 0"),
    ({"PARKLEIT_SIGNAGE_RETRY_MIN_S": "9", "PARKLEIT_SIGNAGE_RETRY_MAX_S": "3"}, ["signage"],
     "PARKLEIT_SIGNAGE_RETRY_MIN_S must not exceed PARKLEIT_SIGNAGE_RETRY_MAX_S"),
])
def test_bad_usage_exits_2_with_one_line(env: dict[str, str], args: list[str],
                                         reason: str) -> None:
    assert_bad_usage(args, reason, **env)


def test_unreachable_database_exits_2() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/parkleit"
    result = run_parkleit("db", "migrate", PARKLEIT_DATABASE_URL=url)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("parkleit: cannot reach the database at")


def test_unreachable_broker_exits_2(db_url: str) -> None:
    port = free_port()
    result = run_parkleit("ingest", PARKLEIT_DATABASE_URL=db_url,
                      PARKLEIT_MQTT_URL=f"mqtt://127.0.0.1:{port}")
    assert result.returncode == 2
    assert f"cannot reach the MQTT broker at 127.0.0.1:{port}" in result.stderr


def test_broken_city_config_names_key_and_reason(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text('[city]\nid = "x"\nname = "X"\n[[lots]]\nid = "a"\nname = "A"\n'
                      'kind = "garage"\ncounting = "counter"\ncapacity = -1\n'
                      'latitude = 51.0\nlongitude = 12.0\n')
    result = run_parkleit("db", "migrate", "--city", str(config))
    assert result.returncode == 2
    assert f"{config}: lots[0] (id 'a').capacity: capacity must be >= 0" in result.stderr


def test_db_migrate_creates_the_database_and_is_idempotent(admin_url: str,
                                                           city_path: Path) -> None:
    name = f"parkleit_cli_{os.getpid()}"
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        first = run_parkleit("db", "migrate", "--city", str(city_path), PARKLEIT_DATABASE_URL=url)
        assert first.returncode == 0, first.stderr
        assert "schema.sql at 0015 chargers" in first.stderr
        second = run_parkleit("db", "migrate", "--city", str(city_path), PARKLEIT_DATABASE_URL=url)
        assert second.returncode == 0 and "nothing to apply" in second.stderr
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM lots").fetchone() == (4,)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_help_lists_the_commands() -> None:
    result = run_parkleit("--help")
    assert result.returncode == 0
    for command in ("db", "ingest", "simulate", "signage", "demo"):
        assert command in result.stdout
