"""The production stack: docker-compose.yml, the Dockerfile and the broker's security (deploy/).

No Docker engine runs on the test machines, so the compose file is checked as data: every
command parses with the parkleit CLI, every PARKLEIT_* variable is a setting with a valid value,
every service has a health check, a restart policy and limits, no secret is written down, and
every city of the API's PARKLEIT_CITIES has its own ingest, forecast and signage services.
The shipped Mosquitto config, ACL and password script run on a real Mosquitto: a sensor reaches
ingest, a sensor spoofing another bay is refused, a device asking for an ingest worker's client
id does not take its session, the public user reads status only, and two cities share the
broker without one's messages reaching the other's workers. The public broker runs beside it
with its bridge: apps read the status there, anonymously and read-only.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import os
import pwd
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
import yaml
from _helpers import ROOT, utc_now
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from core.city import load_cities, load_city
from core.mqtt import FATAL_CONNECT, ServiceStatus
from core.settings import Settings
from ingest import SHARE_GROUP, DecodeError, Decoder
from parkleit.cli import build_parser
from parkleit.embedded import LOOPBACK, free_port, tcp_answers
from parkleit.healthcheck import build_parser as build_healthcheck_parser
from parkleit.healthcheck import check_http, check_mqtt, check_service_status
from simulators._mqtt import PubAcks, mqtt_client

if TYPE_CHECKING:
    from jsonschema_rs import Validator

COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy" / "mosquitto"
MAKE_PASSWORDS = DEPLOY / "make-passwords.sh"
# Mounted into the broker, written by make-passwords.sh from .env (never in the repository).
MADE_BY_SCRIPT = ("./deploy/mosquitto/passwords", "./deploy/mosquitto/monitor-login")
WAIT_S = 5.0

NOT_AUTHORIZED = 0x87  # MQTT 5 reason code of a PUBACK the ACL refused
REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE")


# --------------------------------------------------------------------------- compose as data


def _interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error}; $$ is a literal $."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if values.get(name):
            return values[name]
        if op and "?" in op:
            raise AssertionError(f"${{{name}}} is required: {arg}")
        return arg or ""

    parts = text.split("$$")
    return "$".join(REFERENCE.sub(one, part) for part in parts)


def _leaves(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a YAML tree with its path (keys included)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", str(key)
            yield from _leaves(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, f"{path}[{index}]")
    elif node is not None:
        yield path, str(node)


def _env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            values[key.strip()] = value.strip()
    return values


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict) and isinstance(document.get("services"), dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


@pytest.fixture(scope="module")
def parkleit_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services running the parkleit image (built from the Dockerfile)."""
    ours = {name: spec for name, spec in services.items() if "build" in spec}
    assert ours, "no service is built from the Dockerfile"
    for name, spec in ours.items():
        assert spec["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
    return ours


def _secrets() -> dict[str, str]:
    """Every variable of .env.example with a value that passes make-passwords.sh."""
    return {name: (f"{name.lower().replace('_', '-')}-0123456789" if SECRET_NAME.search(name)
                   else value) for name, value in _env_example().items()}


def _environment(spec: dict[str, Any]) -> dict[str, str]:
    """A service's environment, interpolated with test values for the secrets."""
    env = spec.get("environment") or {}
    assert isinstance(env, dict), "environment: use the mapping form"
    return {key: _interpolate(str(value), _secrets()) for key, value in env.items()}


def _one_shot(name: str, services: dict[str, dict[str, Any]]) -> bool:
    """A job others wait for to finish (db migrate), not a server."""
    return any((spec.get("depends_on") or {}).get(name, {}).get("condition")
               == "service_completed_successfully" for spec in services.values())


def _role(spec: dict[str, Any]) -> str:
    """What a parkleit service runs: its subcommand (``ingest``, ``forecast serve``, ...)."""
    command = spec["command"]
    return " ".join(command[:2]) if command[0] in ("db", "forecast", "simulate") else command[0]


def _settings_of(spec: dict[str, Any]) -> Settings:
    values = {key.removeprefix("PARKLEIT_"): value for key, value in _environment(spec).items()}
    return Settings.model_validate(values)


def _config_file(ref: str) -> Path:
    """The file in the repository behind a city config path in the containers."""
    path = Path(ref)
    assert path.parent == Path("/app/cities"), f"{ref}: the city configs are mounted there"
    return ROOT / "cities" / path.name


# What each city of the installation runs for itself; the API, the OCPP central system and
# the migration are shared. A city with an OCPI peer to pull has its pull (`ocpi`) and, in the
# demo, the peer's simulated platform; a city with chargers its simulated stations.
CITY_WORKERS = ("ingest", "forecast serve", "signage", "ocpi")
CITY_SIMULATORS = ("simulate city", "simulate signs", "simulate chargers", "simulate ocpi")
SHARED = ("api", "db migrate", "ocpp")


def _peer_secrets(spec: dict[str, Any]) -> set[str]:
    """The variables the OCPI peers of a service's city name for their tokens."""
    ref = _environment(spec).get("PARKLEIT_CITY")
    if ref is None:
        return set()
    return {name for peer in load_city(str(_config_file(ref))).ocpi_peers
            for name in (peer.token_env, peer.push_token_env) if name}


def test_every_service_has_a_health_check_restart_policy_and_limits(
        services: dict[str, dict[str, Any]]) -> None:
    assert {"db", "mosquitto", "migrate", "api"} <= services.keys()
    roles = [_role(spec) for spec in services.values() if "build" in spec]
    assert {*SHARED, *CITY_WORKERS, *CITY_SIMULATORS} <= set(roles), roles
    assert roles.count("ingest") >= 2
    for name, spec in services.items():
        limits = spec.get("deploy", {}).get("resources", {}).get("limits", {})
        assert float(limits.get("cpus", 0)) > 0, f"{name}: no cpu limit"
        assert re.fullmatch(r"\d+[MG]", str(limits.get("memory", ""))), f"{name}: no memory limit"
        check = spec.get("healthcheck") or {}
        if _one_shot(name, services):
            assert spec.get("restart") == "no", f"{name}: a job others wait for must not restart"
            assert check == {"disable": True}, f"{name}: say explicitly that a job has no check"
            continue
        assert spec.get("restart") == "unless-stopped", f"{name}: restart policy"
        test = check.get("test")
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
        for key in ("interval", "timeout", "retries", "start_period"):
            assert key in check, f"{name}: healthcheck.{key}"


def test_dependencies_wait_for_health_and_for_the_migration(
        services: dict[str, dict[str, Any]], parkleit_services: dict[str, dict[str, Any]]) -> None:
    conditions = {"service_healthy", "service_completed_successfully", "service_started"}
    for name, spec in services.items():
        for target, rule in (spec.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            assert rule["condition"] in conditions, f"{name} -> {target}"
            if rule["condition"] == "service_healthy":
                assert not services[target]["healthcheck"].get("disable"), f"{name} -> {target}"
    for name, spec in parkleit_services.items():
        if _one_shot(name, services) or spec.get("profiles"):
            continue
        assert spec["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"


def test_every_command_is_a_parkleit_command(parkleit_services: dict[str, dict[str, Any]]) -> None:
    parser = build_parser()
    for name, spec in parkleit_services.items():
        assert "entrypoint" not in spec, f"{name}: the image's entrypoint is parkleit"
        command = spec["command"]
        assert isinstance(command, list) and all(isinstance(arg, str) for arg in command), name
        try:
            args = parser.parse_args(command)
        except SystemExit:
            pytest.fail(f"{name}: `parkleit {' '.join(command)}` does not parse")
        assert callable(args.handler), name


def test_the_image_runs_parkleit_as_a_user_without_privileges() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert stages[-1].startswith("python:3.11"), stages
    assert re.search(r'^ENTRYPOINT \["parkleit"\]$', dockerfile, re.MULTILINE)
    users = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), users
    assert "COPY cities /app/cities" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    for secret in (".env", "deploy/mosquitto/passwords", "deploy/mosquitto/devices",
                   "deploy/mosquitto/monitor-login", "deploy/mosquitto/certs"):
        assert secret in ignored, f".dockerignore must keep {secret} out of the build context"


def test_every_parkleit_variable_is_a_setting_with_a_valid_value(
        parkleit_services: dict[str, dict[str, Any]]) -> None:
    for name, spec in parkleit_services.items():
        env = _environment(spec)
        # Besides the settings only the tokens its city's OCPI peers name (token_env).
        unknown = [key for key in env
                   if (not key.startswith("PARKLEIT_")
                       or key.removeprefix("PARKLEIT_") not in Settings.model_fields)
                   and key not in _peer_secrets(spec)]
        assert not unknown, f"{name}: not parkleit settings: {unknown}"
        settings = _settings_of(spec)
        # city_refs: PARKLEIT_CITIES, else PARKLEIT_CITY (its default "zeitz" is no path).
        for ref in settings.city_refs:
            assert _config_file(ref).is_file(), f"{name}: {ref}"
        assert "./cities:/app/cities:ro" in spec["volumes"], name


@pytest.fixture(scope="module")
def installation(parkleit_services: dict[str, dict[str, Any]]) -> tuple[str, ...]:
    """The cities of the installation: the API's PARKLEIT_CITIES (config paths)."""
    apis = [spec for spec in parkleit_services.values() if _role(spec) == "api"]
    assert len(apis) == 1, "one API service serves every city"
    assert "PARKLEIT_CITIES" in _environment(apis[0]), "the API names every city"
    refs = _settings_of(apis[0]).city_refs
    assert len(refs) >= 2, refs
    return refs


def test_every_city_of_the_api_has_its_own_workers(
        parkleit_services: dict[str, dict[str, Any]], installation: tuple[str, ...]) -> None:
    served: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name, spec in parkleit_services.items():
        role, env = _role(spec), _environment(spec)
        if role in SHARED:  # every city: the API serves, migrate syncs, ocpp hears them
            assert env["PARKLEIT_CITIES"].split(",") == list(installation), name
            served["*"][role].append(name)
            continue
        # A worker serves PARKLEIT_CITY alone.
        assert "PARKLEIT_CITIES" not in env, f"{name}: {role} serves PARKLEIT_CITY only"
        assert "PARKLEIT_CITY" in env, f"{name}: which city?"
        city = env["PARKLEIT_CITY"]
        assert city in installation, f"{name}: {city} is not in the API's PARKLEIT_CITIES"
        served[city][role].append(name)
        if role in CITY_WORKERS:
            assert not spec.get("profiles"), f"{name}: a city's worker runs in production"
        elif role in CITY_SIMULATORS:
            assert spec.get("profiles") == ["demo"], f"{name}: simulators are the demo's"
    assert {role: len(names) for role, names in served["*"].items()} == dict.fromkeys(SHARED, 1)
    for city in installation:
        roles = served[city]
        config = load_city(str(_config_file(city)))
        pulled = [peer for peer in config.ocpi_peers if peer.locations_url is not None]
        # One pull per city with a peer (a second would stand by), with each peer's token;
        # in the demo the peer's platform at its locations_url (127.0.0.1 of the pull).
        assert len(roles["ocpi"]) == (1 if pulled else 0), f"{city}: ocpi {roles['ocpi']}"
        assert len(roles["simulate ocpi"]) == len(roles["ocpi"]), f"{city}: simulated OCPI"
        for peer in pulled:
            pull = parkleit_services[roles["ocpi"][0]]
            assert (pull["environment"][peer.token_env]
                    == f"${{{peer.token_env}:?set {peer.token_env} in .env}}"), city
            assert urlsplit(peer.locations_url).hostname == "127.0.0.1", peer.id
            platform = parkleit_services[roles["simulate ocpi"][0]]
            assert platform["network_mode"] == f"service:{roles['ocpi'][0]}", city
            assert platform["command"][-2:] == ["--port", str(urlsplit(peer.locations_url).port)]
        assert len(roles["simulate chargers"]) == (1 if config.chargers else 0), city
        assert len(roles["ingest"]) >= 1, f"{city}: no ingest worker"
        # Exactly one: two signage services would both push to every sign, two forecasters
        # would both write every forecast (docs/operations.md: no leader election).
        assert len(roles["signage"]) == 1, f"{city}: signage {roles['signage']}"
        assert len(roles["forecast serve"]) == 1, f"{city}: forecast {roles['forecast serve']}"
        assert len(roles["simulate city"]) == 1, f"{city}: city simulator"
        assert len(roles["simulate signs"]) == 1, f"{city}: sign simulator"
        # The city's signs are at 127.0.0.1 of its signage service.
        signs = parkleit_services[roles["simulate signs"][0]]
        assert signs["network_mode"] == f"service:{roles['signage'][0]}", city


def test_the_cities_of_the_installation_load_together(installation: tuple[str, ...]) -> None:
    cities = load_cities(str(_config_file(ref)) for ref in installation)
    assert len({city.id for city in cities}) == len(installation)
    # Every city's ingest workers log in as `ingest` and share $share/ingest/<filter>: a filter
    # two cities subscribed to would be one shared subscription, handing each city's messages
    # to the other's workers too (which would dead-letter them as unknown).
    owners: dict[str, str] = {}
    for city in cities:
        for topic_filter in Decoder(city).subscriptions():
            owner = owners.setdefault(topic_filter, city.id)
            assert owner == city.id, f"{topic_filter}: ingest of {owner} and of {city.id}"


def test_health_checks_probe_what_each_service_serves(
        parkleit_services: dict[str, dict[str, Any]]) -> None:
    parser = build_healthcheck_parser()
    for name, spec in parkleit_services.items():
        test = spec["healthcheck"].get("test")
        if test is None:
            continue
        assert test[:4] == ["CMD", "python", "-m", "parkleit.healthcheck"], name
        args = parser.parse_args(test[4:])
        env = _environment(spec)
        if args.check == "http":
            port = urlsplit(args.url).port
            command = spec["command"]
            listens = {env.get("PARKLEIT_INGEST_METRICS_PORT"),
                       env.get("PARKLEIT_SIGNAGE_METRICS_PORT"),
                       command[command.index("--port") + 1] if "--port" in command else None}
            assert str(port) in listens, f"{name}: the check asks port {port}"
        elif args.check == "tcp":
            command = spec["command"]
            assert command[command.index("--port") + 1] == str(args.port), name
        else:
            assert "PARKLEIT_MQTT_URL" in env, name


def _mounts(spec: dict[str, Any]) -> dict[str, str]:
    """Container path -> what is mounted there (a path in the repository, a volume, tmpfs)."""
    mounts = dict.fromkeys(spec.get("tmpfs", []), "tmpfs")
    for volume in spec["volumes"]:
        if isinstance(volume, dict):
            mounts[volume["target"]] = volume["source"]
        else:
            source, target = volume.split(":")[:2]
            mounts[target] = source
    return mounts


@pytest.mark.parametrize(("service", "files", "at_least"), [
    ("mosquitto", ("mosquitto.conf", "conf.d/tls.conf.example"), 7),
    ("mosquitto-public", ("public.conf",), 2)])
def test_the_broker_gets_every_file_its_config_names(services: dict[str, dict[str, Any]],
                                                     service: str, files: tuple[str, ...],
                                                     at_least: int) -> None:
    mounts = _mounts(services[service])
    config = "".join((DEPLOY / name).read_text(encoding="utf-8") for name in files)
    named = re.findall(r"^(?:password_file|acl_file|include_dir|persistence_location|certfile|"
                       r"keyfile|cafile)\s+(/mosquitto/\S+)", config, re.MULTILINE)
    assert len(named) >= at_least, named
    for path in named:
        path = path.rstrip("/")
        assert any(path == target or path.startswith(target + "/")
                   or target.startswith(path + "/") for target in mounts), f"nothing at {path}"
    for source in mounts.values():
        if source.startswith("./"):
            shipped = ROOT / source
            assert shipped.exists() or source in MADE_BY_SCRIPT, source
    assert mounts[f"/mosquitto/config/{files[0]}"] == f"./deploy/mosquitto/{files[0]}"
    if service == "mosquitto":
        assert mounts["/mosquitto/config/tuning/tuning.conf"] == "./deploy/mosquitto/tuning.conf"
    else:  # the public broker runs its start script, which writes the bridge into a tmpfs
        command = services[service]["command"]
        assert mounts[command[-1]] == "./deploy/mosquitto/public-bridge.sh"
        assert mounts["/mosquitto/bridge"] == "tmpfs"


def test_ingest_workers_share_one_user_with_distinct_client_ids(
        parkleit_services: dict[str, dict[str, Any]]) -> None:
    workers = [_environment(spec) for spec in parkleit_services.values()
               if spec["command"] == ["ingest"]]
    ids = [env["PARKLEIT_INGEST_CLIENT_ID"] for env in workers]
    assert len(set(ids)) == len(ids) >= 2, ids
    assert {urlsplit(env["PARKLEIT_MQTT_URL"]).username for env in workers} == {"ingest"}


def test_no_secret_is_written_down(compose: dict[str, Any]) -> None:
    reference = re.compile(r"\$\{[A-Z0-9_]+(?::[-?][^}]*)?\}")
    urls = 0
    for path, text in _leaves(compose):
        assert "change-me" not in text, path
        masked = REFERENCE.sub("<ref>", text)  # a ${VAR:?message} may hold spaces
        for match in re.finditer(r"[a-z][a-z0-9+.-]*://([^/@\s:]+):([^@\s/]*)@", masked):
            assert match[2] == "<ref>", f"{path}: a password in a URL: {match[0]}"
            urls += 1
        for match in re.finditer(r"\s-P\s+(\S+)", text):
            assert re.fullmatch(r'"\$\$[A-Z0-9_]+"', match[1]), f"{path}: {match[0]}"
    assert urls >= 5, "the URLs with credentials were not found"
    for name, spec in compose["services"].items():
        for key, value in (spec.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert reference.fullmatch(str(value)), f"{name}: {key} is not a ${{VAR}}"
        # A missing secret stops `docker compose` (${VAR:?...}); only the optional demo
        # profile may run without one (then its login fails).
        for _, text in _leaves(spec):
            for match in REFERENCE.finditer(text):
                if SECRET_NAME.search(match["name"]):
                    allowed = {":?"} | ({":-"} if spec.get("profiles") else set())
                    assert match["op"] in allowed, f"{name}: {match[0]}"


def test_only_services_that_always_run_require_a_variable(
        services: dict[str, dict[str, Any]]) -> None:
    # Compose interpolates every service before it picks the profiles: a required variable of
    # an optional service would stop a plain `docker compose up` without that profile.
    for name, spec in services.items():
        if spec.get("profiles"):
            required = [m["name"] for _, text in _leaves(spec) for m in REFERENCE.finditer(text)
                        if m["op"] and "?" in m["op"]]
            assert not required, f"{name} (profiles {spec['profiles']}) requires {required}"


def test_every_variable_is_documented_in_the_env_example(compose: dict[str, Any]) -> None:
    documented = _env_example()
    used = {match["name"] for _, text in _leaves(compose) for match in REFERENCE.finditer(text)}
    assert used <= documented.keys(), f"not in .env.example: {used - documented.keys()}"
    assert not [name for name in documented if name.startswith("PARKLEIT_")], (
        "PARKLEIT_* in .env would reach every parkleit process run by hand in the checkout")
    for name, value in documented.items():
        if SECRET_NAME.search(name):
            assert value in ("", "change-me"), f".env.example: {name} must be a placeholder"
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    for secret in (".env", "deploy/mosquitto/passwords", "deploy/mosquitto/devices",
                   "deploy/mosquitto/monitor-login"):
        assert secret in ignored, f".gitignore: {secret}"


def _acl_users() -> set[str]:
    text = (DEPLOY / "acl").read_text(encoding="utf-8")
    return set(re.findall(r"^user (\S+)$", text, re.MULTILINE))


def _password_roles() -> dict[str, str]:
    """Service user -> the .env variable make-passwords.sh takes its password from."""
    text = MAKE_PASSWORDS.read_text(encoding="utf-8")
    return dict(re.findall(r"\b([a-z]+):(MQTT_[A-Z]+_PASSWORD)\??", text))


def test_every_service_user_has_an_acl_and_a_password(
        parkleit_services: dict[str, dict[str, Any]]) -> None:
    roles = _password_roles()
    assert set(roles) == _acl_users(), "make-passwords.sh and the ACL name different users"
    assert set(roles.values()) <= _env_example().keys()
    for name, spec in parkleit_services.items():
        url = (spec.get("environment") or {}).get("PARKLEIT_MQTT_URL")
        if url is None:
            continue
        user = urlsplit(_interpolate(url, _secrets())).username
        assert user in roles, f"{name}: MQTT user {user} has no ACL"
        assert f"${{{roles[user]}:" in url, f"{name}: {user}'s password is {roles[user]}"


def test_the_city_configs_fit_the_acl_patterns() -> None:
    """A device logs in as the topic level it owns; those names must be unambiguous."""
    service_users = _acl_users()
    for path in sorted((ROOT / "cities").glob("*.toml")):
        city = load_city(str(path))
        devices = [(bay.id, "bay") for _, bay in city.bays()
                   if bay.network == "native"]  # LoRaWAN bays come through their gateway
        devices += [(lot.id, "counter") for lot in city.lots if lot.counting == "counter"]
        devices += [(app, "ttn") for app in city.lorawan.ttn_applications]
        devices += [(app, "chirpstack") for app in city.lorawan.chirpstack_applications]
        devices += [(sign.id, "sign") for sign in city.signs if sign.driver == "mqtt"]
        owners: dict[str, str] = {}
        for name, what in devices:
            assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9@._-]*", name), f"{city.id}: {name!r}"
            assert name not in service_users, f"{city.id}: {what} {name} is a service user"
            assert owners.setdefault(name, what) == what, (
                f"{city.id}: {name} would be both {owners[name]} and {what}")
        for sign in city.signs:
            if sign.driver == "mqtt":
                assert sign.address == f"parkleit/v1/{city.id}/signs/{sign.id}", sign.id


def test_make_passwords_refuses_the_placeholders(tmp_path: Path) -> None:
    result = subprocess.run(
        ["sh", str(MAKE_PASSWORDS), "-e", str(ROOT / ".env.example"),
         "-o", str(tmp_path / "passwords")],
        capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2, result
    assert "placeholder" in result.stderr
    assert not (tmp_path / "passwords").exists()


def _run_as(user: pwd.struct_passwd | None, command: list[str],
            env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``command`` as ``user`` (root can become anyone; None: as this process)."""
    prefix = [] if user is None else ["setpriv", f"--reuid={user.pw_uid}",
                                      f"--regid={user.pw_gid}", "--clear-groups"]
    return subprocess.run([*prefix, *command], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.fixture
def unprivileged() -> Iterator[tuple[pwd.struct_passwd | None, Path]]:
    """Who runs make-passwords.sh without root (nobody, when the tests run as root; else this
    process's user), and a directory of theirs with an env file of good passwords."""
    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("needs mosquitto_passwd")
    user = pwd.getpwnam("nobody") if os.geteuid() == 0 else None
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("needs setpriv to run as nobody")
    root = Path(tempfile.mkdtemp(prefix="parkleit-passwords-"))
    try:
        env = [f"{name}={value}" for name, value in _secrets().items() if value]
        (root / "env").write_text("\n".join(env) + "\n", encoding="utf-8")
        if user is not None:
            os.chown(root, user.pw_uid, user.pw_gid)
        yield user, root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _without_docker() -> dict[str, str]:
    path = [d for d in os.environ.get("PATH", "/usr/bin:/bin").split(":")
            if d and not (Path(d) / "docker").exists()]
    return {"PATH": ":".join([*path, "/usr/sbin", "/sbin"])}


def test_make_passwords_writes_files_only_their_owner_reads(
        unprivileged: tuple[pwd.struct_passwd | None, Path]) -> None:
    user, root = unprivileged
    uid = os.geteuid() if user is None else user.pw_uid
    made = _run_as(user, ["sh", str(MAKE_PASSWORDS), "-e", str(root / "env"), "-o",
                          str(root / "passwords"), "-m", str(root / "monitor-login"),
                          "-u", str(uid), "-x", str(root / "users.csv")], _without_docker())
    assert made.returncode == 0, made.stderr
    for name in ("passwords", "monitor-login", "users.csv"):
        status = (root / name).stat()
        assert status.st_mode & 0o777 == 0o600, (name, oct(status.st_mode))
        assert status.st_uid == uid, name
    login = (root / "monitor-login").read_text(encoding="utf-8").splitlines()
    assert login == ["-u monitor", f"-P {_secrets()['MQTT_MONITOR_PASSWORD']}"]
    # The same users for EMQX (deploy/emqx), as its bootstrap file: plain, EMQX hashes them.
    header, *rows = (root / "users.csv").read_text(encoding="utf-8").splitlines()
    assert header == "user_id,password,is_superuser"
    users = {user: password for user, password, superuser in (row.split(",") for row in rows)
             if superuser == "false"}
    assert len(users) == len(rows)
    hashed = (root / "passwords").read_text(encoding="utf-8").splitlines()
    assert set(users) == {line.split(":")[0] for line in hashed}
    assert users["ingest"] == _secrets()["MQTT_INGEST_PASSWORD"]

    # A broker of another uid: without root or docker the file cannot become the broker's,
    # and a file anyone may read is no way out; nothing is written.
    if os.geteuid() == 0 or uid != 1883:
        other = _run_as(user, ["sh", str(MAKE_PASSWORDS), "-e", str(root / "env"), "-o",
                               str(root / "other"), "-m", str(root / "other-login"),
                               "-u", "1883"], _without_docker())
        assert other.returncode == 2 and "cannot give the password file" in other.stderr, other
        assert not (root / "other").exists() and not (root / "other-login").exists()


COMPOSE_SCHEMA = ROOT.parent / "shared" / "schemas" / "compose-spec" / "compose-spec.json"


@pytest.fixture(scope="module")
def compose_schema() -> Validator:
    """The official Compose Specification schema (../shared/schemas/compose-spec), which Docker
    Compose itself validates against, as a validator; interpolation is not applied by it."""
    import jsonschema_rs

    if not COMPOSE_SCHEMA.is_file():
        pytest.fail(f"the Compose schema is missing: {COMPOSE_SCHEMA}")
    return jsonschema_rs.validator_for(json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8")))


def _schema_errors(validator: Validator, document: dict[str, Any]) -> list[str]:
    """Where ``document`` breaks the schema, one line each: the path, then what is wrong."""
    return [f"{'/'.join(map(str, error.instance_path))}: {error.message}"
            for error in validator.iter_errors(document)]


def test_the_compose_file_is_valid_against_the_compose_schema(
        compose_schema: Validator, compose: dict[str, Any]) -> None:
    """docker-compose.yml is valid Compose, as Docker Compose itself checks it."""
    assert _schema_errors(compose_schema, compose) == []
    broken = {**compose, "services": {**compose["services"], "api": {
        **compose["services"]["api"], "ports": [{"published": "8000", "targt": 8000}]}}}
    assert not compose_schema.is_valid(broken)  # the check can fail


class _ComposeLoader(yaml.SafeLoader):
    """YAML as Docker Compose reads it: ``!override`` and ``!reset`` (merge tags of override
    files) give their value as written."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


for _tag in ("!override", "!reset"):
    _ComposeLoader.add_constructor(_tag, _tagged)

EMQX_COMPOSE_FILE = ROOT / "docker-compose.emqx.yml"
EMQX = ROOT / "deploy" / "emqx"


@pytest.fixture(scope="module")
def emqx_compose() -> dict[str, Any]:
    document = yaml.load(EMQX_COMPOSE_FILE.read_text(encoding="utf-8"),
                         Loader=_ComposeLoader)
    assert isinstance(document, dict) and isinstance(document.get("services"), dict)
    return document


def test_the_emqx_override_is_valid_against_the_compose_schema(
        compose_schema: Validator, emqx_compose: dict[str, Any],
        compose: dict[str, Any]) -> None:
    """docker-compose.emqx.yml: valid Compose, and a cluster the base file's services reach."""
    assert _schema_errors(compose_schema, emqx_compose) == []
    broken = {**emqx_compose, "services": {**emqx_compose["services"], "emqx-2": {
        **emqx_compose["services"]["emqx-2"], "hostname": ["emqx-2"]}}}
    assert not compose_schema.is_valid(broken)  # the check can fail
    nodes = {name: spec for name, spec in emqx_compose["services"].items()
             if str(spec.get("image", "")).startswith("emqx/")}
    assert set(nodes) == {"mosquitto", "emqx-2", "emqx-3"}  # node 1 replaces the broker
    assert "mosquitto" in compose["services"]
    conf = (EMQX / "emqx.conf").read_text(encoding="utf-8")
    seeds = re.search(r"seeds = \[([^\]]*)\]", conf)
    assert seeds is not None
    names = {spec["environment"]["EMQX_NODE__NAME"] for spec in nodes.values()}
    assert names == set(re.findall(r'"([^"]+)"', seeds[1]))
    for name, spec in nodes.items():
        host = spec["environment"]["EMQX_NODE__NAME"].split("@")[1]
        aliases = spec["networks"]["default"]["aliases"]
        assert spec["hostname"] == host and host in aliases, name
        # Every node answers to the name the services connect to (mosquitto:1883).
        assert name == "mosquitto" or "mosquitto" in aliases, name
        mounts = {m["target"] if isinstance(m, dict) else m.split(":")[1]: m
                  for m in spec["volumes"]}
        assert {"/opt/emqx/etc/emqx.conf", "/opt/emqx/etc/acl.conf",
                "/opt/emqx/etc/parkleit-users.csv", "/opt/emqx/data"} <= set(mounts), name
    # Node 1 replaces the Mosquitto mounts and ports, not adds to them.
    assert not any("mosquitto" in str(m) for m in nodes["mosquitto"]["volumes"])
    assert [p.split(":")[-1] for p in nodes["mosquitto"]["ports"]] == ["1883", "1884", "8883"]
    assert "bootstrap_file = \"/opt/emqx/etc/parkleit-users.csv\"" in conf
    assert "path = \"/opt/emqx/etc/acl.conf\"" in conf
    assert "deploy/emqx/users.csv" in (ROOT / ".gitignore").read_text(encoding="utf-8")


def _mosquitto_rights() -> set[tuple[str, str, str]]:
    """(user or * for every user, publish|subscribe, topic) that deploy/mosquitto/acl allows."""
    rights: set[tuple[str, str, str]] = set()
    user = "*"
    for line in (DEPLOY / "acl").read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words[:1] == ["user"]:
            user = words[1]
        elif words[:1] in (["topic"], ["pattern"]) and words[1] != "deny":
            who = user if words[0] == "topic" else "*"
            topic = words[2].replace("%u", "${username}")
            if words[1] in ("read", "readwrite"):
                rights.add((who, "subscribe", topic))
            if words[1] in ("write", "readwrite"):
                rights.add((who, "publish", topic))
    return rights


def _emqx_rights() -> set[tuple[str, str, str]]:
    """The same from deploy/emqx/acl.conf (a $share/group/ subscription as its topic)."""
    text = "\n".join(line for line in (EMQX / "acl.conf").read_text(
        encoding="utf-8").splitlines() if not line.lstrip().startswith("%%"))
    rights: set[tuple[str, str, str]] = set()
    rules = re.findall(r'\{(allow|deny),\s*(?:\{username,\s*"([^"]+)"\}|all),\s*(\w+),'
                       r'\s*\[([^\]]*)\]\}\.', text)
    assert rules and text.rstrip().endswith("{deny, all}.")
    for permission, user, action, topics in rules:
        if permission == "deny":
            assert topics.strip() == '"#"', "only whole denials"
            continue
        actions = ("publish", "subscribe") if action == "all" else (action,)
        for topic in re.findall(r'"([^"]+)"', topics):
            topic = re.sub(r"^\$share/[^/]+/", "", topic)
            rights |= {(user or "*", one, topic) for one in actions}
    return rights


def test_the_emqx_acl_gives_what_the_mosquitto_acl_gives() -> None:
    """Every user's rights are the same on both brokers (Mosquitto's read = EMQX's subscribe,
    write = publish; a device's %u = ${username})."""
    mosquitto, emqx = _mosquitto_rights(), _emqx_rights()
    assert mosquitto - emqx == set(), "in deploy/mosquitto/acl only"
    assert emqx - mosquitto == set(), "in deploy/emqx/acl.conf only"
    users = {user for user, _, _ in mosquitto} - {"*"}
    assert users == _acl_users()


def test_every_port_is_published_on_a_chosen_address_only(
        services: dict[str, dict[str, Any]]) -> None:
    """A port without a host address is published on every interface of the host, whatever
    the *_BIND settings say."""
    published = 0
    for name, spec in services.items():
        for port in spec.get("ports", []):
            assert isinstance(port, str), f"{name}: use HOST:PUBLISHED:TARGET"
            bind = re.fullmatch(r"\$\{(?P<var>[A-Z_]+_BIND):-127\.0\.0\.1\}:\d+:\d+", port)
            assert bind, f"{name}: {port} must be on ${{..._BIND:-127.0.0.1}}"
            assert bind["var"] in _env_example(), f"{bind['var']} not in .env.example"
            assert _env_example()[bind["var"]] == "127.0.0.1", bind["var"]
            published += 1
    assert published >= 5


# What each parkleit command connects to the database as: its own role (core/sql/roles.sql).
DATABASE_ROLES = {"ingest": "ingest", "forecast serve": "forecast", "signage": "signage",
                  "api": "api", "ocpp": "ocpp", "ocpi": "ocpi"}


def test_each_service_connects_to_the_database_as_its_own_role(
        parkleit_services: dict[str, dict[str, Any]]) -> None:
    login = re.compile(r"postgresql://(?P<user>\w+):\$\{(?P<secret>\w+):\?[^}]*\}@db:5432/parkleit")
    migrate = parkleit_services["migrate"]["environment"]
    owner = login.fullmatch(migrate["PARKLEIT_DATABASE_URL"])
    assert owner and (owner["user"], owner["secret"]) == ("parkleit", "POSTGRES_PASSWORD")
    settings = _settings_of(parkleit_services["migrate"])
    assert settings.DB_ROLES
    checked = set()
    for name, spec in parkleit_services.items():
        url = (spec.get("environment") or {}).get("PARKLEIT_DATABASE_URL")
        role = DATABASE_ROLES.get(_role(spec))
        if name == "migrate" or url is None:
            assert role is None, f"{name}: no database URL"
            continue
        assert role is not None, f"{name}: {_role(spec)} needs no database"
        found = login.fullmatch(url)
        assert found and found["user"] == f"{settings.DB_ROLE_PREFIX}{role}", f"{name}: {url}"
        # The password the migration sets for the role is the one the service logs in with.
        assert migrate[f"PARKLEIT_DB_{role.upper()}_PASSWORD"].startswith(
            f"${{{found['secret']}:?"), name
        assert "POSTGRES_PASSWORD" not in json.dumps(spec), f"{name} knows the owner's password"
        checked.add(role)
    assert checked == set(DATABASE_ROLES.values())


def test_the_api_believes_the_proxy_named_in_env_only(
        parkleit_services: dict[str, dict[str, Any]]) -> None:
    api = parkleit_services["api"]["environment"]
    assert api["PARKLEIT_API_FORWARDED_ALLOW_IPS"] == "${API_FORWARDED_ALLOW_IPS:-}"
    assert _env_example()["API_FORWARDED_ALLOW_IPS"] == ""  # by default nobody's header
    example = re.search(r"^# e\.g\. API_FORWARDED_ALLOW_IPS=(\S+);",
                        (ROOT / ".env.example").read_text(encoding="utf-8"), re.MULTILINE)
    assert example, "documented example"
    proxy = Settings(API_FORWARDED_ALLOW_IPS=example[1]).API_FORWARDED_ALLOW_IPS
    assert proxy == example[1]


def test_images_are_pinned_to_a_release(services: dict[str, dict[str, Any]]) -> None:
    """Each image names an exact release (a digest too, once someone with access to the
    registry has checked it: docs/operations.md, "Deployment files"); the password script
    runs the broker's image."""
    pinned = re.compile(r"[a-z0-9./-]+:\d+\.\d+\.\d+[A-Za-z0-9.-]*(@sha256:[0-9a-f]{64})?")
    for name, spec in services.items():
        if "build" in spec:
            continue
        assert pinned.fullmatch(spec["image"]), f"{name}: {spec['image']}"
    script = re.search(r'^mosquitto_image="([^"]+)"$', MAKE_PASSWORDS.read_text(encoding="utf-8"),
                       re.MULTILINE)
    assert script and script[1] == services["mosquitto"]["image"]


# --------------------------------------------------------------------------- the real broker

CITY = "zeitz"
BAY = f"{CITY}-bay-7"  # a bay sensor logs in as its bay id
OTHER_BAY = f"{CITY}-bay-8"
LOT = f"{CITY}-garage"  # a garage counter logs in as its lot id
TTN_APP = "zeitz-parking@ttn"
CHIRPSTACK_APP = "3c1e8a52-7d4b-4f0e-9a61-2b8c5d7e1f40"
SIGN = f"{CITY}-vms-1"
OTHER_SIGN = f"{CITY}-vms-2"
# The second city of docker-compose.yml, on the same broker: devices of its config.
NAUMBURG = "naumburg"
NAUMBURG_BAY = "naumburg-markt-001"
NAUMBURG_LOT = "naumburg-marientor"
NAUMBURG_TTN_APP = "naumburg-parking@ttn"
SERVICE_USERS = ("ingest", "signage", "forecast", "ocpp", "ocpi", "api", "public", "monitor",
                 "simulator")
DEVICES = (BAY, OTHER_BAY, LOT, TTN_APP, CHIRPSTACK_APP, SIGN, OTHER_SIGN,
           NAUMBURG_BAY, NAUMBURG_LOT, NAUMBURG_TTN_APP)


def topic(rest: str) -> str:
    return f"parkleit/v1/{CITY}/{rest}"


@dataclass
class Broker:
    port: int  # the services' listener (1883)
    device_port: int  # the devices' listener (1884): client id = username
    tls_port: int | None  # the devices' TLS listener (8883)
    ca_file: Path | None
    passwords: dict[str, str]
    log: Path
    monitor_login: Path  # the health check's mosquitto_sub options file

    def port_of(self, user: str) -> int:
        """Where ``user`` connects: services on the services' listener, devices on theirs."""
        return self.port if user in SERVICE_USERS else self.device_port

    def settings(self, user: str, *, tls: bool = False, v5: bool = True,
                 password: str | None = None) -> Settings:
        secret = self.passwords[user] if password is None else password
        if tls:
            assert self.tls_port is not None
            url = f"mqtts://{user}:{secret}@{LOOPBACK}:{self.tls_port}"
        else:
            url = f"mqtt://{user}:{secret}@{LOOPBACK}:{self.port_of(user)}"
        return Settings(MQTT_URL=url, MQTT_CA_FILE=self.ca_file if tls else None,
                        MQTT_PROTOCOL="5" if v5 else "3.1.1", CITY=CITY)


def _broker_account() -> pwd.struct_passwd | None:
    """The account Mosquitto drops to when started as root."""
    if os.geteuid() != 0:
        return None
    for name in ("mosquitto", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return None


def _make_certificates(certs: Path) -> None:
    """A throw-away CA and a server certificate for 127.0.0.1 and localhost."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=certs, check=True, capture_output=True,
                       timeout=30)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=parkleit test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (certs / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
        "keyUsage=critical,digitalSignature\n", encoding="utf-8")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext")


def _install(text: str, root: Path, listeners: dict[int, int]) -> str:
    """A shipped config with the container's /mosquitto/ at ``root`` and our own ports."""
    assert "/mosquitto/" in text
    text = text.replace("/mosquitto/", f"{root}/")
    for shipped, port in listeners.items():
        line = f"listener {shipped}"
        assert len(re.findall(rf"^{line}$", text, re.MULTILINE)) == 1, line
        text = re.sub(rf"^{line}$", f"listener {port} {LOOPBACK}", text, flags=re.MULTILINE)
    assert not re.search(r"^listener \d+$", text, re.MULTILINE), "a listener on every address"
    return text


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    """Mosquitto with the shipped mosquitto.conf, ACL, tuning and TLS listener (conf.d)."""
    binary = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).is_file()),
        None)
    if binary is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("needs mosquitto and mosquitto_passwd")
    # Outside pytest's tmp_path: the broker drops root, and a concurrent pytest session
    # strips the group and other bits of /tmp/pytest-of-<user> (see test_reliability.py).
    root = Path(tempfile.mkdtemp(prefix="parkleit-deploy-"))
    root.chmod(0o755)
    account = _broker_account()
    try:
        config, data, certs = root / "config", root / "data", root / "certs"
        for directory in (config / "tuning", config / "conf.d", data, certs):
            directory.mkdir(parents=True)
        shutil.copy(DEPLOY / "acl", config / "acl")
        shutil.copy(DEPLOY / "tuning.conf", config / "tuning" / "tuning.conf")

        # The passwords, written by the shipped script from an env file and a devices file.
        passwords = {user: f"{user}-secret-0123456789" for user in SERVICE_USERS}
        passwords |= {device: f"device-{index}-0123456789" for index, device in enumerate(DEVICES)}
        env = [f"POSTGRES_PASSWORD={'p' * 20}"]
        env += [f"{variable}={passwords[user]}" for user, variable in _password_roles().items()]
        (root / "env").write_text("\n".join(env) + "\n", encoding="utf-8")
        (root / "devices").write_text(
            "# test devices\n" + "".join(f"{d} {passwords[d]}\n" for d in DEVICES),
            encoding="utf-8")
        command = ["sh", str(MAKE_PASSWORDS), "-e", str(root / "env"), "-d",
                   str(root / "devices"), "-o", str(config / "passwords"),
                   "-m", str(root / "monitor-login"),
                   "-u", str(account.pw_uid if account is not None else os.geteuid())]
        made = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert made.returncode == 0, made.stderr
        assert f"{len(passwords)} users, {len(DEVICES)} of them devices" in made.stdout

        port, device_port, tls_port = free_port(), free_port(), None
        listeners = {1883: port, 1884: device_port}
        ca_file = None
        if shutil.which("openssl"):
            _make_certificates(certs)
            ca_file = certs / "ca.crt"
            tls_port = free_port()
            tls_conf = (DEPLOY / "conf.d" / "tls.conf.example").read_text(encoding="utf-8")
            (config / "conf.d" / "tls.conf").write_text(
                _install(tls_conf, root, {8883: tls_port}), encoding="utf-8")
        (config / "mosquitto.conf").write_text(
            _install((DEPLOY / "mosquitto.conf").read_text(encoding="utf-8"), root, listeners),
            encoding="utf-8")
        if account is not None:
            for path in (data, certs / "server.key"):
                if path.exists():
                    os.chown(path, account.pw_uid, account.pw_gid)

        log = root / "mosquitto.log"
        ports = [port, device_port] + ([tls_port] if tls_port else [])
        with _running([binary, "-c", str(config / "mosquitto.conf")], log, ports):
            yield Broker(port, device_port, tls_port, ca_file, passwords, log,
                         root / "monitor-login")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _running(command: list[str], log: Path, ports: list[int],
             env: dict[str, str] | None = None) -> Iterator[None]:
    """A broker run by ``command`` (output into ``log``) once it answers on every port;
    stopped afterwards."""
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=sink,
                                   stderr=sink)
    try:
        deadline = time.monotonic() + 15
        while not all(tcp_answers(LOOPBACK, port) for port in ports):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{command} did not start with the shipped config:\n"
                            + log.read_text(encoding="utf-8", errors="replace")[-3000:])
            time.sleep(0.05)
        yield
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Peer:
    """One MQTT client: its CONNACK, PUBACK reason codes and received messages."""

    def __init__(self, client_id: str, protocol: MQTTProtocolVersion = mqtt.MQTTv5) -> None:
        self.messages: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        self.connack = threading.Event()
        self.refusal: str | None = None
        self.dropped = threading.Event()  # the broker closed the connection
        self.subacks: queue.Queue[list[Any]] = queue.Queue()
        self.pubacks: dict[int, int] = {}
        self.puback = threading.Condition()
        self.v5 = protocol == mqtt.MQTTv5
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=protocol)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self.dropped.set()
        self.client.on_subscribe = lambda _c, _u, _mid, codes, _p: self.subacks.put(codes)
        self.client.on_publish = self._on_publish
        self.client.on_message = lambda _c, _u, m: self.messages.put(
            (m.topic, bytes(m.payload), bool(m.retain)))

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        self.refusal = str(reason) if reason.is_failure else None
        self.connack.set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        with self.puback:
            # 0x10 "No matching subscribers" is an accepted message too.
            self.pubacks[mid] = int(reason.value) if reason.is_failure else 0
            self.puback.notify_all()

    def connect(self, port: int, username: str | None, password: str | None) -> str | None:
        """None when the broker accepts the login, else its refusal."""
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.connect(LOOPBACK, port, keepalive=30)
        self.client.loop_start()
        assert self.connack.wait(WAIT_S), "no CONNACK"
        return self.refusal

    def subscribe(self, *filters: str) -> None:
        self.client.subscribe([(f, 1) for f in filters])
        assert self.subacks.get(timeout=WAIT_S)

    def publish(self, topic: str, payload: str, *, retain: bool = False) -> int:
        """0 if the broker took it, else the PUBACK's reason code (3.1.1 has none: 0)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        with self.puback:
            assert self.puback.wait_for(lambda: info.mid in self.pubacks, WAIT_S), "no PUBACK"
            return self.pubacks.pop(info.mid)

    def until(self, sentinel: str) -> list[str]:
        """Topics received up to and including the message whose payload is ``sentinel``."""
        return [received for received, _, _ in self.drain(sentinel)]

    def drain(self, sentinel: str) -> list[tuple[str, bytes, bool]]:
        """Messages received up to and including the one whose payload is ``sentinel``."""
        received = []
        while True:
            message = self.messages.get(timeout=WAIT_S)
            received.append(message)
            if message[1] == sentinel.encode():
                return received

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


Login = Callable[..., Peer]


@pytest.fixture
def peers(broker: Broker) -> Iterator[Login]:
    """``login(user)``: a connected Peer of that user (MQTT 5 unless told otherwise)."""
    opened: list[Peer] = []
    counter = iter(range(1_000_000))

    def login(user: str, protocol: MQTTProtocolVersion = mqtt.MQTTv5) -> Peer:
        peer = Peer(f"test-{user}-{next(counter)}", protocol)
        opened.append(peer)
        refusal = peer.connect(broker.port_of(user), user, broker.passwords[user])
        assert refusal is None, f"{user} refused: {refusal}"
        return peer

    yield login
    for peer in opened:
        peer.close()


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311], ids=["mqtt5", "mqtt311"])
def test_anonymous_and_wrong_passwords_are_refused(broker: Broker,
                                                   protocol: MQTTProtocolVersion) -> None:
    attempts = {"anonymous": (None, None), "wrong password": ("ingest", "not-the-password"),
                "unknown user": ("nobody-here", "whatever-0123456789"),
                "device with a service's password": (BAY, broker.passwords["ingest"])}
    for (what, (user, password)), port in itertools.product(
            attempts.items(), (broker.port, broker.device_port)):
        peer = Peer(f"test-refused-{what.replace(' ', '-')}", protocol)
        try:
            refusal = peer.connect(port, user, password)
        finally:
            peer.close()
        # A refusal the services treat as fatal: they exit 2 instead of retrying forever.
        assert refusal in FATAL_CONNECT, f"{what} on {port}: {refusal}"


def test_a_sensor_reaches_ingest_and_cannot_spoof_another_bay(peers: Login) -> None:
    ingest = peers("ingest")
    ingest.subscribe(SHARE_GROUP + topic("bays/+"), SHARE_GROUP + topic("lots/+/+"))
    sensor = peers(BAY)
    assert sensor.publish(topic(f"bays/{BAY}"), '{"occupied": true}') == 0
    assert ingest.until('{"occupied": true}') == [topic(f"bays/{BAY}")]

    # Another bay, a garage counter, a lot status: refused with PUBACK 0x87, never delivered.
    for forged in (f"bays/{OTHER_BAY}", f"lots/{LOT}/counter", f"lots/{LOT}/status"):
        assert sensor.publish(topic(forged), '{"occupied": false}') == NOT_AUTHORIZED, forged
    assert sensor.publish(topic(f"bays/{BAY}"), "sentinel") == 0
    assert ingest.until("sentinel") == [topic(f"bays/{BAY}")]


def test_with_mqtt_311_a_spoofed_message_is_dropped_silently(peers: Login) -> None:
    ingest = peers("ingest")
    ingest.subscribe(SHARE_GROUP + topic("bays/+"))
    sensor = peers(BAY, mqtt.MQTTv311)
    assert sensor.publish(topic(f"bays/{OTHER_BAY}"), "forged") == 0  # 3.1.1: no reason code
    assert sensor.publish(topic(f"bays/{BAY}"), "sentinel") == 0
    assert ingest.until("sentinel") == [topic(f"bays/{BAY}")]


def test_counters_and_gateways_publish_only_their_own_topics(peers: Login) -> None:
    # Ingest with the very subscriptions it makes for the Zeitz config.
    city = load_city(CITY)
    assert city.lorawan.ttn_applications[0] == TTN_APP
    assert city.lorawan.chirpstack_applications[0] == CHIRPSTACK_APP
    ingest = peers("ingest")
    ingest.subscribe(*(SHARE_GROUP + f for f in Decoder(city).subscriptions()))
    counter, ttn, chirpstack = peers(LOT), peers(TTN_APP), peers(CHIRPSTACK_APP)
    own = {counter: topic(f"lots/{LOT}/counter"),
           ttn: f"v3/{TTN_APP}/devices/eui-70b3d57ed0000001/up",
           chirpstack: f"application/{CHIRPSTACK_APP}/device/0004a30b001c0530/event/up"}
    forged = {counter: [topic("lots/zeitz-other/counter"), topic(f"bays/{BAY}"),
                        topic(f"lots/{LOT}/status")],
              ttn: ["v3/other-app@ttn/devices/eui-70b3d57ed0000001/up", topic(f"bays/{BAY}")],
              chirpstack: ["application/00000000-0000-0000-0000-000000000000/device/"
                           "0004a30b001c0530/event/up"]}
    for peer, own_topic in own.items():
        for bad in forged[peer]:
            assert peer.publish(bad, "forged") == NOT_AUTHORIZED, bad
        assert peer.publish(own_topic, f"sentinel {own_topic}") == 0
        assert ingest.until(f"sentinel {own_topic}") == [own_topic]


def test_only_ingest_reads_sensor_topics_and_public_reads_status_only(peers: Login) -> None:
    ingest = peers("ingest")
    ingest.subscribe(SHARE_GROUP + topic("bays/+"))
    status = topic(f"lots/{LOT}/status")
    ingest.publish(status, '{"free": 3}', retain=True)
    ingest.publish(topic("services/parkleit-ingest-1"), "online", retain=True)
    # Everybody else subscribes to everything and gets what the ACL lets it read.
    readers = {user: peers(user) for user in ("public", "api", "forecast", "signage")}
    for reader in readers.values():
        reader.subscribe("#")
    sensor, signage = peers(BAY), peers("signage")
    assert sensor.publish(topic(f"bays/{BAY}"), "raw") == 0
    assert signage.publish(topic(f"signs/{SIGN}/content"), "content") == 0
    assert ingest.publish(status, "sentinel", retain=True) == 0
    assert ingest.until("raw") == [topic(f"bays/{BAY}")]
    for user, reader in readers.items():
        seen = set(reader.until("sentinel"))
        assert topic(f"bays/{BAY}") not in seen, f"{user} read a sensor topic"
        assert status in seen, user
    public = readers["public"]
    assert public.publish(status, '{"free": 999}', retain=True) == NOT_AUTHORIZED
    for forged in (topic("bays/public"), topic("lots/public/counter"),
                   "v3/public/devices/x/up", topic("signs/public/ack"),
                   topic("services/parkleit-ingest-1")):
        assert public.publish(forged, "x") == NOT_AUTHORIZED, forged
    assert sensor.publish(topic(f"services/{BAY}"), "offline") == NOT_AUTHORIZED
    # Ingest follows every service's status: an offline one is an alarm (ingest/_alarms.py).
    ingest.subscribe(topic("services/+"))
    assert signage.publish(topic("services/signage"), "sentinel of signage") == 0
    assert topic("services/signage") in ingest.until("sentinel of signage")


def test_the_charging_services_publish_the_points_state_only(peers: Login) -> None:
    """ocpp and ocpi: a charging point's retained state and their own status, which the
    public bridge and ingest (the alarms) read; no sensor, lot or other service's topic."""
    public, ingest = peers("public"), peers("ingest")
    public.subscribe("#")
    ingest.subscribe(topic("services/+"))
    for user in ("ocpp", "ocpi"):
        service = peers(user)
        state = topic("chargers/DE*ZTZ*E0001*1/state")
        payload = f'{{"status": "AVAILABLE", "by": "{user}"}}'
        assert service.publish(state, payload, retain=True) == 0
        assert state in public.until(payload)
        assert service.publish(topic(f"services/{user}"), f"online {user}") == 0
        assert topic(f"services/{user}") in ingest.until(f"online {user}")
        assert service.publish(topic(f"services/{user}/parkleit-{user}-1"), "role") == 0
        for forged in (topic("chargers/DE*ZTZ*E0001*1/status"), topic(f"lots/{LOT}/status"),
                       topic(f"bays/{BAY}"), topic("services/ingest"),
                       topic(f"signs/{SIGN}/content")):
            assert service.publish(forged, "x") == NOT_AUTHORIZED, (user, forged)


def test_two_cities_share_the_broker_without_mixing(peers: Login) -> None:
    """Each city's ingest workers get their city's messages only, on one broker and user."""
    zeitz, naumburg = load_city(CITY), load_city(NAUMBURG)
    assert NAUMBURG_TTN_APP in naumburg.lorawan.ttn_applications
    workers = {}
    for city in (zeitz, naumburg):
        workers[city.id] = peers("ingest")
        workers[city.id].subscribe(*(SHARE_GROUP + f for f in Decoder(city).subscriptions()))
    sensor, naumburg_sensor = peers(BAY), peers(NAUMBURG_BAY)
    ttn, naumburg_ttn = peers(TTN_APP), peers(NAUMBURG_TTN_APP)
    sent = {CITY: [(sensor, topic(f"bays/{BAY}")),
                   (ttn, f"v3/{TTN_APP}/devices/eui-70b3d57ed0000001/up")],
            NAUMBURG: [(naumburg_sensor, f"parkleit/v1/{NAUMBURG}/bays/{NAUMBURG_BAY}"),
                       (naumburg_ttn, f"v3/{NAUMBURG_TTN_APP}/devices/eui-70b3d57ed005c101/up")]}
    for city_id, messages in sent.items():
        for publisher, sent_topic in messages:
            assert publisher.publish(sent_topic, f"from {city_id}") == 0, sent_topic
    for city_id, messages in sent.items():
        publisher, last_topic = messages[0]
        assert publisher.publish(last_topic, f"sentinel {city_id}") == 0
        received = workers[city_id].until(f"sentinel {city_id}")
        assert sorted(received) == sorted([t for _, t in messages] + [last_topic]), city_id


def test_a_device_of_one_city_cannot_write_for_another(peers: Login) -> None:
    naumburg_sensor, naumburg_counter = peers(NAUMBURG_BAY), peers(NAUMBURG_LOT)
    naumburg_ttn = peers(NAUMBURG_TTN_APP)
    forged = {naumburg_sensor: [topic(f"bays/{BAY}"), topic(f"lots/{LOT}/counter"),
                                topic(f"lots/{LOT}/status")],
              naumburg_counter: [topic(f"lots/{LOT}/counter"), topic(f"bays/{BAY}")],
              naumburg_ttn: [f"v3/{TTN_APP}/devices/eui-70b3d57ed0000001/up"]}
    for peer, topics in forged.items():
        for bad in topics:
            assert peer.publish(bad, "forged") == NOT_AUTHORIZED, bad

    # What the ACL cannot do: tie a device to its city (Mosquitto matches whole usernames, and
    # the topic level is the device's id). A Naumburg sensor may publish its own id under
    # Zeitz's prefix; Zeitz's ingest gets it and stores it as a dead letter, an unknown bay,
    # because ids are unique across the cities (core.city.load_cities).
    ingest = peers("ingest")
    zeitz = load_city(CITY)
    ingest.subscribe(*(SHARE_GROUP + f for f in Decoder(zeitz).subscriptions()))
    elsewhere = topic(f"bays/{NAUMBURG_BAY}")
    payload = '{"occupied": true}'
    assert naumburg_sensor.publish(elsewhere, payload) == 0
    assert ingest.until(payload) == [elsewhere]
    with pytest.raises(DecodeError, match="unknown bay"):
        Decoder(zeitz).decode(elsewhere, payload.encode(), utc_now())
    assert NAUMBURG_BAY in {bay.id for _, bay in load_city(NAUMBURG).bays()}


def test_public_gets_the_retained_status_and_services_only(peers: Login) -> None:
    city = f"retained{os.getpid()}"  # retained messages outlive the test: a city of its own
    sensor, ingest, signage = peers(BAY), peers("ingest"), peers("signage")
    retained = {f"parkleit/v1/{city}/bays/{BAY}": sensor,
                f"parkleit/v1/{city}/signs/{SIGN}/content": signage,
                f"parkleit/v1/{city}/lots/{LOT}/status": ingest,
                f"parkleit/v1/{city}/services/parkleit-ingest-1": ingest}
    for retained_topic, publisher in retained.items():
        assert publisher.publish(retained_topic, "retained", retain=True) == 0, retained_topic
    public = peers("public")
    public.subscribe(f"parkleit/v1/{city}/#")
    # Retained messages come right after the SUBACK, so before this one.
    assert ingest.publish(f"parkleit/v1/{city}/lots/{LOT}/status", "sentinel") == 0
    assert set(public.until("sentinel")) == {f"parkleit/v1/{city}/lots/{LOT}/status",
                                             f"parkleit/v1/{city}/services/parkleit-ingest-1"}


def test_signs_read_their_own_content_and_acknowledge_only_it(peers: Login) -> None:
    signage = peers("signage")
    signage.subscribe(topic("signs/+/ack"))
    sign = peers(SIGN)
    sign.subscribe(topic("signs/+/content"))
    assert signage.publish(topic(f"signs/{OTHER_SIGN}/content"), "for the other sign") == 0
    assert signage.publish(topic(f"signs/{SIGN}/content"), "sentinel") == 0
    assert sign.until("sentinel") == [topic(f"signs/{SIGN}/content")]
    assert sign.publish(topic(f"signs/{OTHER_SIGN}/ack"), "forged") == NOT_AUTHORIZED
    assert sign.publish(topic(f"signs/{SIGN}/content"), "forged") == NOT_AUTHORIZED
    assert sign.publish(topic(f"signs/{SIGN}/ack"), "sentinel") == 0
    assert signage.until("sentinel") == [topic(f"signs/{SIGN}/ack")]


def test_the_compose_health_check_of_the_broker(broker: Broker,
                                                services: dict[str, dict[str, Any]],
                                                tmp_path: Path) -> None:
    """It logs in as `monitor` with the options file make-passwords.sh wrote, mounted where
    the check's XDG_CONFIG_HOME points: the password is in no variable of the container (so
    not in `docker inspect`) and on no command line (so not in `ps`)."""
    spec = services["mosquitto"]
    check = spec["healthcheck"]["test"]
    assert check[0] == "CMD-SHELL"
    assert broker.passwords["monitor"] not in json.dumps(spec)
    assert not [key for key in spec.get("environment") or {} if SECRET_NAME.search(key)]
    assert "-P" not in check[1].split() and "-u" not in check[1].split()
    home = re.fullmatch(r"XDG_CONFIG_HOME=(\S+) (mosquitto_sub .*)", _interpolate(check[1], {}))
    assert home, check[1]
    assert _mounts(spec)[f"{home[1]}/mosquitto_sub"] == "./deploy/mosquitto/monitor-login"
    command = home[2].replace("-p 1883", f"-p {broker.port}")
    assert f"-p {broker.port}" in command
    assert broker.monitor_login.stat().st_mode & 0o777 == 0o600
    login = tmp_path / "good"
    login.mkdir()
    shutil.copy(broker.monitor_login, login / "mosquitto_sub")
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "mosquitto_sub").write_text("-u monitor\n-P wrong-0123456789\n", encoding="utf-8")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for directory, healthy in ((login, True), (wrong, False), (tmp_path, False)):
        result = subprocess.run(["sh", "-c", command], env={**env, "XDG_CONFIG_HOME":
                                str(directory)}, capture_output=True, timeout=20, check=False)
        assert (result.returncode == 0) == healthy, (directory, result)


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


def test_the_health_checks_of_the_services(broker: Broker) -> None:
    server = ThreadingHTTPServer((LOOPBACK, 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert check_http(f"http://{LOOPBACK}:{server.server_port}/healthz") is None
        assert "503" in str(check_http(f"http://{LOOPBACK}:{server.server_port}/other"))
    finally:
        server.shutdown()
        server.server_close()
    assert "does not answer" in str(check_http(f"http://{LOOPBACK}:{free_port()}/healthz", 2))

    assert check_mqtt(broker.settings("simulator")) is None
    refused = check_mqtt(broker.settings("simulator", password="wrong-0123456789"))
    assert "refused" in str(refused)

    city = f"hc{os.getpid()}"
    forecast = broker.settings("forecast")
    assert "no retained message" in str(check_service_status(forecast, city, "forecast", 1))
    status = ServiceStatus(forecast, city, "forecast", client_id="test-forecast-status").start()
    try:
        deadline = time.monotonic() + WAIT_S
        while (problem := check_service_status(forecast, city, "forecast")) is not None:
            assert time.monotonic() < deadline, problem
            time.sleep(0.1)
    finally:
        status.close()
    assert "'offline'" in str(check_service_status(forecast, city, "forecast"))


def test_clients_connect_over_tls_with_the_ca_file(broker: Broker, peers: Login) -> None:
    if broker.tls_port is None:
        pytest.skip("needs openssl for a test certificate")
    city = f"tls{os.getpid()}"
    ingest, watcher = peers("ingest"), peers("api")
    ingest.subscribe(topic("bays/+"))
    watcher.subscribe(f"parkleit/v1/{city}/services/forecast")
    # The simulators' client and every service's status client, over mqtts:// with the CA.
    sensor_settings = broker.settings(BAY, tls=True)
    assert sensor_settings.mqtt.tls
    client = mqtt_client(sensor_settings, "test-tls-sensor")
    acks = PubAcks()
    client.on_publish = acks.on_publish
    try:
        client.publish(topic(f"bays/{BAY}"), "sentinel", qos=1)
        assert acks.wait(0, 1, WAIT_S)
        assert acks.refused == 0
        assert ingest.until("sentinel") == [topic(f"bays/{BAY}")]
    finally:
        client.disconnect()
        client.loop_stop()
    status = ServiceStatus(broker.settings("forecast", tls=True), city, "forecast",
                           client_id="test-tls-forecast").start()
    try:
        assert watcher.until("online") == [f"parkleit/v1/{city}/services/forecast"]
    finally:
        status.close()
    assert check_mqtt(broker.settings("signage", tls=True)) is None
    # Without the CA the certificate cannot be verified: no silent fallback to no checking.
    untrusted = broker.settings("signage", tls=True).model_copy(update={"MQTT_CA_FILE": None})
    with warnings.catch_warnings():
        # paho leaves the socket of a failed TLS handshake to the garbage collector.
        warnings.simplefilter("ignore", ResourceWarning)
        problem = check_mqtt(untrusted, 3)
        gc.collect()
    assert "CERTIFICATE_VERIFY_FAILED" in str(problem)


def test_a_device_cannot_take_over_an_ingest_workers_session(broker: Broker) -> None:
    """A worker's session holds the messages it has not yet committed: whoever logs in with
    its client id takes that session over (and a clean start throws the messages away). The
    id is no secret (services/<id>), but on the devices' listeners the broker gives every
    device its username as client id, whatever the device asks for."""
    client_id = f"parkleit-ingest-takeover-{os.getpid()}"
    worker = Peer(client_id)
    devices = [Peer(client_id), Peer(client_id, mqtt.MQTTv311)]
    try:
        assert worker.connect(broker.port, "ingest", broker.passwords["ingest"]) is None
        worker.subscribe(SHARE_GROUP + topic("bays/+"))
        for number, device in enumerate(devices):
            assert device.connect(broker.device_port, BAY, broker.passwords[BAY]) is None
            assert device.publish(topic(f"bays/{BAY}"), f"sentinel {number}") == 0
            # The worker is still connected and still gets the sensor's messages.
            assert worker.until(f"sentinel {number}") == [topic(f"bays/{BAY}")]
            assert not worker.dropped.is_set()
        # The device was renamed, not the worker: two of its own connections push each other
        # out (one username per device), the worker stays.
        assert devices[0].dropped.wait(WAIT_S)
        assert not worker.dropped.is_set()
    finally:
        for device in devices:
            device.close()
        worker.close()


# --------------------------------------------------------------------------- the public broker


@pytest.fixture(scope="module")
def public_broker(broker: Broker) -> Iterator[int]:
    """The shipped public broker (public.conf and public-acl, started by public-bridge.sh as
    docker-compose.yml starts it), bridged to ``broker`` as the user `public`; its port."""
    root = Path(tempfile.mkdtemp(prefix="parkleit-public-"))
    root.chmod(0o755)
    try:
        config, bridge = root / "config", root / "bridge"
        config.mkdir()
        bridge.mkdir()
        shutil.copy(DEPLOY / "public-acl", config / "public-acl")
        port = free_port()
        (config / "public.conf").write_text(
            _install((DEPLOY / "public.conf").read_text(encoding="utf-8"), root, {1883: port}),
            encoding="utf-8")
        env = {"PATH": f"{os.environ.get('PATH', '/usr/bin:/bin')}:/usr/sbin:/usr/local/sbin",
               "MQTT_PUBLIC_PASSWORD": broker.passwords["public"],
               "MQTT_BRIDGE_ADDRESS": f"{LOOPBACK}:{broker.port}", "MQTT_BRIDGE_DIR": str(bridge)}
        command = ["sh", str(DEPLOY / "public-bridge.sh"), str(config / "public.conf")]
        with _running(command, root / "mosquitto.log", [port], env):
            yield port
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_apps_read_the_status_from_the_public_broker_and_nothing_else(
        public_broker: int, peers: Login, services: dict[str, dict[str, Any]]) -> None:
    city = f"public{os.getpid()}"
    ingest, sensor, api = peers("ingest"), peers(BAY), peers("api")
    status, service = f"parkleit/v1/{city}/lots/{LOT}/status", f"parkleit/v1/{city}/services/x"
    api.subscribe(f"parkleit/v1/{city}/#")
    # What the bridge copies, live: once it arrived the bridge is up.
    app = Peer(f"test-app-{os.getpid()}")
    try:
        assert app.connect(public_broker, None, None) is None  # anonymous
        app.subscribe(f"parkleit/v1/{city}/#")
        deadline = time.monotonic() + WAIT_S
        while True:
            assert ingest.publish(service, "online", retain=True) == 0
            with contextlib.suppress(queue.Empty):
                if app.messages.get(timeout=0.2)[:2] == (service, b"online"):
                    break
            assert time.monotonic() < deadline, "nothing came over the bridge"
        assert ingest.publish(status, '{"free": 7}', retain=True) == 0
        assert sensor.publish(f"parkleit/v1/{city}/bays/{BAY}", "raw") == 0
        assert ingest.publish(status, "sentinel") == 0
        # (A late copy of an "online" sent while the bridge came up may come first.)
        assert [t for t in app.until("sentinel") if t != service] == [status, status]
        # Read-only: an app's message is refused and never reaches the parkleit broker.
        assert app.publish(status, '{"free": 999}', retain=True) == NOT_AUTHORIZED
        assert app.publish(f"parkleit/v1/{city}/bays/{BAY}", "forged") == NOT_AUTHORIZED
    finally:
        app.close()
    assert ingest.publish(status, "sentinel 2", retain=True) == 0
    assert b"999" not in b"".join(payload for _, payload, _ in api.drain("sentinel 2"))

    # A new reader gets the retained status at once, as apps expect; the compose health check
    # of the public broker asks exactly that.
    latecomer = Peer(f"test-app-late-{os.getpid()}")
    try:
        assert latecomer.connect(public_broker, None, None) is None
        latecomer.subscribe(status)
        assert latecomer.messages.get(timeout=WAIT_S) == (status, b"sentinel 2", True)
    finally:
        latecomer.close()
    check = services["mosquitto-public"]["healthcheck"]["test"]
    command = _interpolate(check[1], {}).replace("-p 1883", f"-p {public_broker}")
    assert f"-p {public_broker}" in command
    healthy = subprocess.run(["sh", "-c", command], capture_output=True, timeout=20, check=False)
    assert healthy.returncode == 0, healthy


def test_no_app_on_the_public_broker_can_reach_an_ingest_workers_session(
        broker: Broker, public_broker: int) -> None:
    client_id = f"parkleit-ingest-public-{os.getpid()}"
    worker, app = Peer(client_id), Peer(client_id)
    try:
        assert worker.connect(broker.port, "ingest", broker.passwords["ingest"]) is None
        assert app.connect(public_broker, None, None) is None
        assert not worker.dropped.wait(1.0)
    finally:
        app.close()
        worker.close()


def test_the_public_broker_needs_the_bridge_password(tmp_path: Path) -> None:
    for password, reason in (("", "not set"), ("has space", "may hold")):
        started = subprocess.run(
            ["sh", str(DEPLOY / "public-bridge.sh"), str(tmp_path / "public.conf")],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MQTT_BRIDGE_DIR": str(tmp_path),
                 "MQTT_PUBLIC_PASSWORD": password}, capture_output=True, text=True, timeout=20,
            check=False)
        assert started.returncode == 2 and reason in started.stderr, started
        assert not (tmp_path / "bridge.conf").exists()
