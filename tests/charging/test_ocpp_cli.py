"""``parkleit ocpp`` and ``parkleit simulate chargers`` as commands: usage, exit codes, and the
two processes talking real OCPP to each other."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _helpers import (
    ServiceProcess,
    Watcher,
    assert_bad_usage,
    free_port,
    run_parkleit,
    service_env,
    wait_for,
)
from test_ocpp import ocpp_city_toml

from charging import Credentials, hash_password
from core.channels import service_topic
from core.city import load_cities
from core.settings import Settings


def test_help_names_the_endpoint() -> None:
    result = run_parkleit("ocpp", "--help")
    assert result.returncode == 0
    assert "ws://HOST:PORT/ocpp/{charge_point_id}" in " ".join(result.stdout.split())
    assert run_parkleit("simulate", "chargers", "--help").returncode == 0


@pytest.mark.parametrize(("env", "args", "reason"), [
    ({}, ["ocpp", "--port", "0"], "port must be 1-65535"),
    ({}, ["ocpp", "--bogus"], "unrecognized arguments"),
    ({}, ["ocpp"], "no charge point credentials: set PARKLEIT_OCPP_CREDENTIALS_FILE"),
    ({"PARKLEIT_OCPP_CREDENTIALS_FILE": "/nonexistent/ocpp"}, ["ocpp"], "no such file"),
    ({"PARKLEIT_OCPP_TLS_CERT_FILE": "/tmp/cert.pem"}, ["ocpp"],
     "PARKLEIT_OCPP_TLS_CERT_FILE and PARKLEIT_OCPP_TLS_KEY_FILE go together"),
    ({}, ["simulate", "chargers", "--ocpp-url", "http://127.0.0.1/ocpp"], "not a ws://"),
    ({}, ["simulate", "chargers", "--passwords", "/nonexistent/pw"], "cannot read"),
    ({}, ["ocpp", "add-station", "Bad:Id", "--file", "/tmp/x"], "charge point id"),
])
def test_bad_usage_exits_2_with_one_line(env: dict[str, str], args: list[str],
                                         reason: str) -> None:
    assert_bad_usage(args, reason, **env)


def test_a_taken_port_exits_2(settings: Settings, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text("")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_parkleit("ocpp", "--port", str(port), **service_env(
            settings, PARKLEIT_OCPP_CREDENTIALS_FILE=str(credentials)))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"parkleit: cannot listen on 127.0.0.1:{port}: Address already in use")


def test_add_station_prints_a_password_the_file_accepts(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    result = run_parkleit("ocpp", "add-station", "zeitz-cp-1", "--file", str(path))
    assert result.returncode == 0, result.stderr
    password = result.stdout.strip()
    assert 16 <= len(password) <= 40 and password not in path.read_text()
    credentials = Credentials(path)
    assert credentials.verify("zeitz-cp-1", password)
    other = password[:-1] + ("x" if password[-1] != "x" else "y")  # one character off
    assert not credentials.verify("zeitz-cp-1", other)
    assert not credentials.verify("zeitz-cp-2", password)
    again = run_parkleit("ocpp", "add-station", "zeitz-cp-1", "--file", str(path))
    assert again.returncode == 2 and "already" in again.stderr


def test_simulated_chargers_talk_to_the_central_system(
        settings: Settings, tmp_path: Path, conn: psycopg.Connection[Any],
        spawn: Callable[..., ServiceProcess]) -> None:
    """Both processes for real: every OCPP station boots (one on 1.6, one on 2.0.1) and
    reports each point; both stop with 0 on SIGTERM, the central system while its stations
    are connected."""
    city_path = tmp_path / "ocpp-city.toml"
    city_id = f"{Path(settings.CITY).stem}"
    city_path.write_text(ocpp_city_toml(city_id), encoding="utf-8")
    stations = [f"{city_id}-ocpp-1", f"{city_id}-ocpp-2"]
    credentials, passwords = tmp_path / "credentials", tmp_path / "passwords"
    credentials.write_text("".join(f"{s}:{hash_password('pw-' + s * 2, n=1024)}\n"
                                   for s in stations))
    passwords.write_text("".join(f"{s}:pw-{s * 2}\n" for s in stations))
    port = free_port()
    env = service_env(settings, PARKLEIT_CITY=str(city_path),
                      PARKLEIT_OCPP_CREDENTIALS_FILE=str(credentials),
                      PARKLEIT_OCPP_PORT=str(port),
                      PARKLEIT_SIMULATE_OCPP_PASSWORDS_FILE=str(passwords))
    watcher = Watcher(settings, service_topic(city_id, "ocpp"))
    try:
        central = spawn(["ocpp"], env, name="ocpp")
        central.wait_log("listening on ws://127.0.0.1")
        wait_for(lambda: watcher.last(service_topic(city_id, "ocpp")) == "online")
        chargers = spawn(["simulate", "chargers", "--speed", "60", "--faults", "off"], env,
                         name="chargers")
        chargers.wait_log("2 OCPP stations")
        wait_for(lambda: conn.execute(
            "SELECT count(*) FROM evse_state WHERE source = 'ocpp'").fetchone() == (3,))
        # The central system drains with the stations connected: they are told it goes away
        # (1001) and try again; both end with 0.
        assert central.terminate() == 0
        chargers.wait_log("lost (1001 (going away)); connecting again")
        assert chargers.terminate() == 0
        log = central.log.read_text()
        assert f"{stations[0]} connected (ocpp2.0.1" in log
        assert f"{stations[1]} connected (ocpp1.6" in log
        wait_for(lambda: watcher.last(service_topic(city_id, "ocpp")) == "offline")
    finally:
        watcher.close()
    assert conn.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)


def test_the_demo_runs_the_central_system_each_citys_chargers_and_the_ocpi_pull(
        settings: Settings, tmp_path: Path) -> None:
    """The example cities' chargers (``make demo``): one central system, a simulator per city
    (its OCPP stations, its MQTT gateway and Zeitz's OCPI platform), fresh passwords the
    central system accepts in files only the owner reads, and Zeitz's OCPI pull, with one new
    token for its platform and its pull in the variable the peer names."""
    from parkleit.demo import charging_children
    from simulators.chargers import read_passwords

    refs = ("zeitz", "naumburg")
    cities = load_cities(refs)
    children = charging_children(settings, cities, refs, {"KEPT": "1"}, tmp_path)
    simulate = ["simulate", "chargers", "--city"]
    assert [(child.name, child.args, child.optional) for child in children] == [
        ("ocpp", ["ocpp"], True),
        ("charger simulator zeitz", [*simulate, "zeitz", "--speed", "10.0"], True),
        ("OCPI pull zeitz", ["ocpi", "--city", "zeitz"], True),
        ("charger simulator naumburg", [*simulate, "naumburg", "--speed", "10.0"], True)]
    central, zeitz_sim, zeitz_pull, naumburg_sim = (child.env for child in children)
    assert zeitz_sim == zeitz_pull and zeitz_sim["KEPT"] == "1"
    assert zeitz_sim["PARKLEIT_CITY"] == "zeitz" and naumburg_sim["PARKLEIT_CITY"] == "naumburg"
    assert len(zeitz_sim["ZEITZ_OCPI_TOKEN"]) >= 24 and "ZEITZ_OCPI_TOKEN" not in naumburg_sim
    again = charging_children(settings, cities, refs, {}, tmp_path)
    assert again[1].env["ZEITZ_OCPI_TOKEN"] != zeitz_sim["ZEITZ_OCPI_TOKEN"]
    for name in ("PARKLEIT_OCPP_CREDENTIALS_FILE", "PARKLEIT_SIMULATE_OCPP_PASSWORDS_FILE"):
        assert central[name] == zeitz_sim[name] == naumburg_sim[name]
    credentials = Path(central["PARKLEIT_OCPP_CREDENTIALS_FILE"])
    passwords = read_passwords(Path(central["PARKLEIT_SIMULATE_OCPP_PASSWORDS_FILE"]))
    assert set(passwords) == {station.id for city in cities for station in city.chargers
                              if station.protocol == "ocpp"}
    store = Credentials(credentials)
    assert all(store.verify(station, password) for station, password in passwords.items())
    for path in (credentials, tmp_path / "ocpp-passwords"):
        assert path.stat().st_mode & 0o777 == 0o600
