"""The API against its own OpenAPI description: requests generated from the schema (valid and
invalid) never get a 5xx, and every answer is what the schema says it is; and the parts of the
contract a fuzzer finds only by luck, asked directly."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import schemathesis
from _helpers import utc_now
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api import create_app
from api._keys import add_key
from core.city import City
from core.registry import sync_registry
from core.settings import Settings
from simulators.history import backfill_history

# The operations of the open-data core; the other routers' operations have their own tests.
OPERATIONS = ("listLots", "getLot", "getLotHistory", "getLotForecast", "listSigns",
              "exportHistoryCsv", "getHealth", "getMetrics")
MAX_EXAMPLES = 50  # per operation: a budget that keeps the run well under a minute
PROBLEM = "application/problem+json"


@pytest.fixture
def api_schema(settings: Settings, conn: psycopg.Connection[tuple[Any, ...]],
               city: City) -> Iterator[Any]:
    """The app's OpenAPI schema, served in-process (ASGI) on a day of history."""
    now = utc_now()
    sync_registry(conn, city)
    backfill_history(conn, city, end=now, weeks=1 / 7)
    conn.execute("UPDATE lot_state SET free = 50, occupied = 50, updated = %s, quality = 1 "
                 "WHERE lot_id = %s", (now, city.lots[0].id))
    unlimited = settings.model_copy(update={"API_RATE_PER_IP": 0.0})  # a burst of requests
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(unlimited, city))
    yield schema.include(operation_id=list(OPERATIONS))
    # schemathesis runs the app's lifespan itself; close the pool before the database goes.
    shutdown_lifespans()


def test_api_conforms_to_its_openapi(api_schema: Any, city: City) -> None:
    # One Hypothesis run per operation through as_strategy(): schemathesis' own pytest
    # integration (from_fixture) does not work with pytest 9 (it sets Item._nodeid).
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert sorted(operation.definition.raw["operationId"] for operation in operations) == sorted(
        OPERATIONS)
    for operation in operations:
        strategies = [operation.as_strategy(GenerationMode.POSITIVE),
                      operation.as_strategy(GenerationMode.NEGATIVE)]
        if "{lot_id}" in operation.path:
            # Random ids only ever find no lot; real ones reach the queries.
            strategies += [operation.as_strategy(path_parameters={"lot_id": lot.id})
                           for lot in city.lots[:2]]

        @given(case=st.one_of(strategies))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def conforms(case: Any) -> None:
            case.call_and_validate(checks=[not_a_server_error, status_code_conformance,
                                           content_type_conformance,
                                           response_schema_conformance])

        conforms()


# -- the contract, asked directly --------------------------------------------------------------


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


def _problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body: dict[str, Any] = answer.json()
    assert body["status"] == status
    return body


def _operations(openapi: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            yield method.upper(), path, operation


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
        _problem(client.post(url, content=body, headers=json_type), 401)
        _problem(client.post(url, content=body, headers={**json_type, "X-API-Key": "x.y"}), 403)
        # With the key, a body that is no JSON is invalid input like any other: 422 naming it.
        refused = _problem(client.post(url, content=body, headers={
            **json_type, "X-API-Key": api.key}), 422)
        assert [(error["location"], error["name"]) for error in refused["errors"]] == [
            ("body", "body")], refused
    openapi = client.get("/openapi.json").json()
    for method, path, operation in _operations(openapi):
        if "requestBody" in operation:
            assert {"401", "403", "422"} <= set(operation["responses"]), f"{method} {path}"
            assert {"apiKey", "bearer"} <= {name for requirement in operation["security"]
                                            for name in requirement}, f"{method} {path}"
    assert set(openapi["components"]["securitySchemes"]) == {"apiKey", "bearer"}


@pytest.mark.parametrize("text", [
    "0.5", "1781683200", "-1", "2026-06-17", "2026-06-17T10:00:00", "2026-06-17 10:00:00Z",
    "20260617T100000Z", "2026-06-17T10:00Z", "2026-W25-3T10:00:00Z", "now"])
def test_times_are_rfc3339_text_with_an_offset_only(client: TestClient, api: Api,
                                                    text: str) -> None:
    lot = api.city.lots[0].id
    for path in (f"/v1/lots/{lot}/history", "/v1/export.csv", "/v1/dashboard/occupancy",
                 "/v1/dashboard/heatmap", "/v1/dashboard/target", "/v1/dashboard/forecast",
                 "/v1/dashboard/signs"):
        for name in ("from", "to"):
            refused = _problem(client.get(path, params={name: text}), 422)
            assert [(error["location"], error["name"]) for error in refused["errors"]] == [
                ("query", name)], (path, refused)


def test_a_time_in_a_body_is_rfc3339_text_too(client: TestClient, api: Api) -> None:
    key = {"X-API-Key": api.key}
    lot, sign = api.city.lots[0].id, api.city.signs[0].id
    later = utc_now() + timedelta(hours=1)
    for until in (later.timestamp(), int(later.timestamp()), str(int(later.timestamp())),
                  later.date().isoformat()):
        refused = _problem(client.post(f"/v1/admin/lots/{lot}/close", headers=key, json={
            "reason": "Baustelle", "until": until}), 422)
        assert [error["name"] for error in refused["errors"]] == ["until"], refused
        refused = _problem(client.post(f"/v1/admin/signs/{sign}/override", headers=key, json={
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
    # Every documented path: the methods of its operations (and HEAD with GET), no more.
    openapi = client.get("/openapi.json").json()
    for path, operations in openapi["paths"].items():
        url = path.replace("{lot_id}", api.city.lots[0].id).replace("{sign_id}", sign)
        answer = client.request("PUT", url)
        _problem(answer, 405)
        documented = {method.upper() for method in operations}
        if "GET" in documented:
            documented.add("HEAD")
        assert set(answer.headers["allow"].split(", ")) == documented, path
