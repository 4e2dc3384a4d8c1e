"""The API against its own OpenAPI description.

First the parts of the contract a fuzzer finds only by luck, asked directly: the 429 every
operation can answer, the key checked before an admin body is read, times as RFC 3339 text
only, the methods a 405 names. Then schemathesis' engine in-process (ASGI), as
``st run --checks all`` tests a server: every operation, every phase (coverage, fuzzing,
stateful), every check, once without an admin key and once with one. No answer may be a 5xx or
differ from what the schema says.

The engine's configuration has the form of a ``schemathesis.toml``. What the schema cannot
say, it says instead:

- which ids exist (cities, lots, signs): ids are data, not schema; half of the fuzzed path
  ids are real ones, so the queries and the admin writes run too;
- the operations whose parameters constrain each other (``from`` before ``to``, at most so many
  days, ``until`` in the future, as many override lines as the sign has, a sign text that fits
  the sign, a count or capacity within the lot's capacity, an event's end after its start and
  ahead, its lots in its city): a schema-valid request may get
  their documented 422 problem;
- the live stream never ends: it is read for one event, or one second.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import schemathesis
from _helpers import PROBLEM, problem, utc_now
from fastapi.testclient import TestClient
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Ok
from schemathesis.engine import Status, events, from_schema
from schemathesis.python.asgi import shutdown_lifespans

from api import add_user, create_app
from api._keys import add_key
from core.city import City
from core.registry import sync_registry
from core.settings import Settings
from simulators.history import backfill_history

# Examples per operation and phase. The coverage phase adds its own cases (boundaries, missing
# and wrong-typed parameters, unsupported methods) whatever this is. 10 fuzzed ones on top keep
# each run at about 20 s here, and find the faults this file's other tests pin (a 400 before
# the key check, Unix times, the Allow of a 405) when they come back. Deeper runs:
# PARKLEIT_TEST_FUZZ_EXAMPLES=150 (four minutes a run) found one thing more once, a NUL in an
# admin reason, which PostgreSQL refuses, for input validation to turn away.
MAX_EXAMPLES = int(os.environ.get("PARKLEIT_TEST_FUZZ_EXAMPLES", "10"))
# The runs are seeded, so that ``make test`` sends the same requests each time and a failure
# can be replayed; another seed explores other requests.
SEED = 20260617
# Operations whose parameters constrain each other (or the state: a taken user name, one's own
# account) in ways JSON Schema cannot express; a schema-valid request to them may get their
# documented 409 or 422.
CONSTRAINED = ("getLotHistory", "exportHistoryCsv", "dashboard_occupancy", "dashboard_heatmap",
               "dashboard_target", "dashboard_forecast", "dashboard_signs", "dashboard_chargers",
               "closeLot",
               "overrideSign", "consoleCloseLot", "consoleSetSignMode", "consoleCorrectCount",
               "consoleLimitCapacity", "consoleAddUser", "consoleDisableUser",
               "consoleMonthlyReport", "consoleCreateEvent")


@dataclass(frozen=True)
class Api:
    app: Any
    city: City
    key: str


@pytest.fixture
def api(settings: Settings, city: City, tmp_path: Path) -> Api:
    """An app with an admin key, no rate limit by address or key and a quick stream heartbeat."""
    keys = tmp_path / "api-keys"
    key = add_key(keys, "schemathesis")
    return Api(create_app(settings.model_copy(update={
        "API_RATE_PER_IP": 0.0, "API_RATE_PER_KEY": 0.0, "API_KEYS_FILE": keys,
        "API_STREAM_HEARTBEAT_S": 0.5}), city), city, key)


@pytest.fixture
def client(api: Api, conn: psycopg.Connection[tuple[Any, ...]]) -> Iterator[TestClient]:
    sync_registry(conn, api.city)
    with TestClient(api.app) as client:
        yield client




def _operations(openapi: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            yield method.upper(), path, operation


# -- the contract, asked directly --------------------------------------------------------------


def test_every_operation_documents_the_429_of_the_rate_limit(client: TestClient) -> None:
    openapi = client.get("/openapi.json").json()
    operations = list(_operations(openapi))
    assert len(operations) >= 27
    for method, path, operation in operations:
        too_many = operation["responses"].get("429")
        assert too_many is not None, f"{method} {path} does not document 429"
        assert PROBLEM in too_many["content"], f"{method} {path}"
        assert too_many["headers"]["Retry-After"]["required"] is True, f"{method} {path}"


def test_every_documented_error_is_a_problem_document(client: TestClient) -> None:
    # Every 4xx and 5xx the API sends is application/problem+json (api/_http.py); the OpenAPI
    # says so for each one it documents, with the Retry-After a 429 and a 503 always carry.
    for method, path, operation in _operations(client.get("/openapi.json").json()):
        for status, response in operation["responses"].items():
            if path.startswith("/ocpi/") and status in ("400", "401", "404"):
                continue  # the OCPI receiver answers these in OCPI's envelope
            if int(status) >= 400:
                assert PROBLEM in response.get("content", {}), f"{method} {path} {status}"
            if status in ("429", "503"):
                assert response["headers"]["Retry-After"]["required"], f"{method} {path}"


def test_the_key_is_checked_before_the_body_is_read(client: TestClient, api: Api) -> None:
    lot = api.city.lots[0].id
    url = f"/v1/admin/lots/{lot}/close"
    json_type = {"Content-Type": "application/json"}
    for body in (b"{not json", b"\xff\xfe{}", b"[" * 3000):  # 3000: nested too deep
        # Whatever the body: no key 401, a wrong key 403; the body is not parsed.
        problem(client.post(url, content=body, headers=json_type), 401)
        problem(client.post(url, content=body, headers={**json_type, "X-API-Key": "x.y"}), 403)
        # With the key, a body that is no JSON is invalid input like any other: 422 naming it.
        refused = problem(client.post(url, content=body, headers={
            **json_type, "X-API-Key": api.key}), 422)
        assert [(error["location"], error["name"]) for error in refused["errors"]] == [
            ("body", "body")], refused
    openapi = client.get("/openapi.json").json()
    for method, path, operation in _operations(openapi):
        if "requestBody" in operation and path.startswith("/v1/admin/"):
            assert {"401", "403", "422"} <= set(operation["responses"]), f"{method} {path}"
            assert {"apiKey", "bearer"} <= {name for requirement in operation["security"]
                                            for name in requirement}, f"{method} {path}"
    assert set(openapi["components"]["securitySchemes"]) == {"apiKey", "bearer",
                                                              "consoleSession"}


@pytest.mark.parametrize("text", [
    "0.5", "1781683200", "-1", "2026-06-17", "2026-06-17T10:00:00", "2026-06-17 10:00:00Z",
    "20260617T100000Z", "2026-06-17T10:00Z", "2026-W25-3T10:00:00Z", "now"])
def test_times_are_rfc3339_text_with_an_offset_only(client: TestClient, api: Api,
                                                    text: str) -> None:
    lot = api.city.lots[0].id
    for path in (f"/v1/lots/{lot}/history", "/v1/export.csv", "/v1/dashboard/occupancy",
                 "/v1/dashboard/heatmap", "/v1/dashboard/target", "/v1/dashboard/forecast",
                 "/v1/dashboard/signs", "/v1/dashboard/chargers"):
        for name in ("from", "to"):
            refused = problem(client.get(path, params={name: text}), 422)
            assert [(error["location"], error["name"]) for error in refused["errors"]] == [
                ("query", name)], (path, refused)


def test_a_time_in_a_body_is_rfc3339_text_too(client: TestClient, api: Api) -> None:
    key = {"X-API-Key": api.key}
    lot, sign = api.city.lots[0].id, api.city.signs[0].id
    later = utc_now() + timedelta(hours=1)
    for until in (later.timestamp(), int(later.timestamp()), str(int(later.timestamp())),
                  later.date().isoformat()):
        refused = problem(client.post(f"/v1/admin/lots/{lot}/close", headers=key, json={
            "reason": "Baustelle", "until": until}), 422)
        assert [error["name"] for error in refused["errors"]] == ["until"], refused
        refused = problem(client.post(f"/v1/admin/signs/{sign}/override", headers=key, json={
            "lines": [{"text": "frei"}], "reason": "Test", "until": until}), 422)
        assert [error["name"] for error in refused["errors"]] == ["until"], refused
    closed = client.post(f"/v1/admin/lots/{lot}/close", headers=key, json={
        "reason": "Baustelle", "until": later.isoformat()})
    assert closed.status_code == 200, closed.text


def test_a_405_names_every_method_of_the_path(client: TestClient, api: Api) -> None:
    sign = api.city.signs[0].id
    assert client.put(f"/v1/admin/signs/{sign}/override").headers["allow"] == "DELETE, POST"
    assert client.get("/v1/admin/reload").headers["allow"] == "POST"
    assert client.request("PATCH", "/static/favicon.svg").headers["allow"] == "GET, HEAD"
    # Every documented path: the methods of its operations (and HEAD with GET), no more (asked
    # with PATCH, or DELETE where PATCH is an operation: the OCPI receiver's).
    openapi = client.get("/openapi.json").json()
    for path, operations in openapi["paths"].items():
        url = path.replace("{lot_id}", api.city.lots[0].id).replace("{sign_id}", sign)
        answer = client.request("DELETE" if "patch" in operations else "PATCH", url)
        problem(answer, 405)
        documented = {method.upper() for method in operations}
        if "GET" in documented:
            documented.add("HEAD")
        assert set(answer.headers["allow"].split(", ")) == documented, path


# -- schemathesis over every operation -----------------------------------------------------------


@pytest.fixture
def history(api: Api, conn: psycopg.Connection[tuple[Any, ...]]) -> Iterator[None]:
    """A day of history and a live count for the app's city."""
    now = utc_now()
    sync_registry(conn, api.city)
    backfill_history(conn, api.city, end=now, weeks=1 / 7)
    conn.execute("UPDATE lot_state SET free = 50, occupied = 50, updated = %s, quality = 1 "
                 "WHERE lot_id = %s", (now, api.city.lots[0].id))
    yield
    # schemathesis runs the app's lifespan itself; close the pool before the database goes.
    shutdown_lifespans()


def _console_session(conn: psycopg.Connection[tuple[Any, ...]]) -> tuple[str, str]:
    """The token and CSRF token of an admin's console session (made in the database: logging
    in is tests/api/test_console.py's)."""
    token, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(32), utc_now()
    add_user(conn, "fuzzer", "admin", "a password for the fuzzer", now)
    conn.execute("INSERT INTO console_sessions (token_hash, user_name, csrf_token, created, "
                 "last_seen, expires) VALUES (%s, 'fuzzer', %s, %s, %s, %s)",
                 (hashlib.sha256(token.encode()).digest(), csrf, now, now,
                  now + timedelta(days=1)))
    return token, csrf


def _config(api: Api, headers: dict[str, str], skip: list[str] | None = None,
            session: tuple[str, str] | None = None) -> SchemathesisConfig:
    """What ``schemathesis.toml`` would say for this run."""
    lots = [lot.id for lot in api.city.lots]
    config = SchemathesisConfig.from_dict({
        "seed": SEED,
        "headers": headers,
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
        "dictionaries": {"city": {"values": [api.city.id]}, "lot": {"values": lots},
                         "sign": {"values": [sign.id for sign in api.city.signs]}},
        "parameters": {
            # Filters name ids that exist; half of the fuzzed path ids do (the rest get 404).
            "query.city": api.city.id,
            "query.lot": lots[0],
            "query.lots": ",".join(lots),
            "query.signs": api.city.signs[0].id,
            "path.city": {"dictionary": "city", "probability": 0.5},
            "path.lot_id": {"dictionary": "lot", "probability": 0.5},
            "path.sign_id": {"dictionary": "sign", "probability": 0.5},
            **({"header.X-CSRF-Token": session[1]} if session else {}),
        },
        # The console's cookie as the scheme it is: the checks of authentication know it.
        **({"auth": {"openapi": {"consoleSession": {"api_key": session[0]}}}} if session
           else {}),
        "operations": [
            {"include-operation-id": list(CONSTRAINED), "checks": {
                "positive_data_acceptance": {"expected-statuses": [
                    "2xx", "3xx", "401", "403", "404", "409", "422", "429"]}}},
            {"include-operation-id": "streamChanges", "max-stream-events": 1,
             "request-timeout": 1},
            *([{"include-operation-id": skip, "enabled": False}] if skip else []),
        ],
    })
    config.projects.override.checks.update(included_check_names=["all"])  # --checks all
    return config


@dataclass
class Outcome:
    operations: set[str] = field(default_factory=set)
    cases: int = 0
    failures: list[str] = field(default_factory=list)


def _run(schema: Any) -> Outcome:
    """Every phase of the engine over ``schema``: the operations tested, the cases sent and a
    line per failed check or error."""
    outcome = Outcome()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            outcome.cases += len(event.recorder.cases)
            if event.status is not Status.SKIP:
                outcome.operations.add(event.recorder.label)
            for case_id, checks in event.recorder.checks.items():
                interaction = event.recorder.interactions.get(case_id)
                answer = interaction.response if interaction else None
                got = f"{answer.status_code} {answer.content[:300]!r}" if answer else "-"
                outcome.failures.extend(
                    f"{check.name} {event.recorder.label}: {check.failure_info.failure.title}"
                    f"\n  {check.failure_info.code_sample}\n  -> {got}"
                    for check in checks if check.failure_info is not None)
        elif isinstance(event, events.NonFatalError | events.FatalError):
            outcome.failures.append(f"error: {event!r}")
    return outcome


# Hypothesis warns when it prints a large example (a dashboard answer), as a note to itself.
@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@pytest.mark.usefixtures("history")
@pytest.mark.parametrize("who", ["anonymous", "key", "console"],
                         ids=["without key", "with admin key", "with console session"])
def test_every_operation_conforms_to_the_openapi(api: Api, who: str,
                                                 conn: psycopg.Connection[Any]) -> None:
    headers = {"X-API-Key": api.key} if who == "key" else {}
    config = _config(api, headers)
    if who == "console":  # a logout would end the session the run acts with
        config = _config(api, headers, skip=["consoleLogout"], session=_console_session(conn))
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app, config=config)
    operations = set()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()  # the schema of each operation is valid
        operations.add(f"{result.ok().method.upper()} {result.ok().path}")
    outcome = _run(schema)
    assert len(operations) >= 27
    if who == "console":
        operations.discard("POST /v1/console/logout")
        # The session worked: the fuzzer's closures and openings are in the audit, by name.
        acted = conn.execute("SELECT count(*) FROM admin_audit WHERE user_name = 'fuzzer'"
                             ).fetchone()
        assert acted is not None and acted[0] > 0
    assert operations <= outcome.operations, f"untested: {operations - outcome.operations}"
    assert not outcome.failures, f"seed {SEED}, {outcome.cases} cases, " \
        f"{len(outcome.failures)} failures:\n" + "\n".join(outcome.failures[:20])
