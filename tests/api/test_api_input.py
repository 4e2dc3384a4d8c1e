"""What clients send is checked at the edge (``api/_input.py``): a time out of range or text
with control characters is a 422 problem naming the field on every route that takes one, never
a 500 from the arithmetic on it or from PostgreSQL refusing the text."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _helpers import problem, utc_now
from fastapi.testclient import TestClient

from api import create_app
from api._keys import add_key
from core.city import City
from core.registry import sync_registry
from core.settings import Settings

# Python's datetime ends at years 1 and 9999: either, moved to UTC or by a window, overflowed.
EXTREMES = ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"]
TIMED_ROUTES = ["/v1/dashboard/occupancy", "/v1/dashboard/heatmap", "/v1/dashboard/target",
                "/v1/dashboard/forecast", "/v1/dashboard/signs", "/v1/lots/{lot}/history",
                "/v1/export.csv"]
# Text PostgreSQL refuses (NUL), no UTF-8 can carry (a lone surrogate), or that reads otherwise
# than it is stored (controls, a line break, a right-to-left override).
BAD_TEXT = ["a\x00b", "\ud800", "line\nbreak", "tab\there", "\x1b[31mred", "\u202eevil", "\x85"]




@pytest.fixture
def client(settings: Settings, conn: psycopg.Connection[Any], city: City,
           tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    """The API with an admin key and the city in the registry; a 500 is an answer here, as a
    client sees it, not an exception."""
    sync_registry(conn, city)
    keys = tmp_path / "api-keys"
    key = add_key(keys, "ops")
    app = create_app(settings.model_copy(update={"API_KEYS_FILE": keys, "API_RATE_PER_KEY": 0,
                                                 "API_RATE_PER_IP": 0}))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client, key


@pytest.mark.parametrize("route", TIMED_ROUTES)
@pytest.mark.parametrize("name", ["from", "to"])
def test_a_time_out_of_range_is_a_422_naming_it_on_every_route(
        client: tuple[TestClient, str], city: City, route: str, name: str) -> None:
    api, _ = client
    path = route.format(lot=city.lots[0].id)
    for moment in EXTREMES:
        body = problem(api.get(path, params={name: moment}), 422)
        assert [error["name"] for error in body["errors"]] == [name], body
        assert "1970" in body["detail"]
    # The edges of the range are times like any other.
    edge = {"from": "1970-01-01T00:00:00Z", "to": "1970-01-02T00:00:00Z"}
    assert api.get(path, params=edge).status_code == 200
    late = {"from": "2199-12-30T00:00:00Z", "to": "2199-12-31T23:59:59.999999Z"}
    assert api.get(path, params=late).status_code == 200


def test_an_admin_until_out_of_range_is_a_422_and_nothing_is_written(
        client: tuple[TestClient, str], city: City, conn: psycopg.Connection[Any]) -> None:
    api, key = client
    headers = {"X-API-Key": key}
    lot, sign = city.lots[0].id, city.signs[0].id
    for moment in EXTREMES:
        closed = api.post(f"/v1/admin/lots/{lot}/close", headers=headers,
                          json={"reason": "Bau", "until": moment})
        assert problem(closed, 422)["errors"][0]["name"] == "until"
        override = api.post(f"/v1/admin/signs/{sign}/override", headers=headers,
                            json={"lines": [{"text": "Umleitung"}], "reason": "Fest",
                                  "until": moment})
        assert problem(override, 422)["errors"][0]["name"] == "until"
    assert conn.execute("SELECT count(*) FROM admin_audit").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM lot_closures").fetchone() == (0,)
    # A time in range still works, and reads back.
    until = (utc_now() + timedelta(days=30)).isoformat()
    closed = api.post(f"/v1/admin/lots/{lot}/close", headers=headers,
                      json={"reason": "Bau", "until": until})
    assert closed.status_code == 200, closed.text


def _admin_bodies(city: City, text: str) -> list[tuple[str, dict[str, Any], str]]:
    """Each admin body with ``text`` in one of its text fields: (path, body, field)."""
    lot, sign = city.lots[0].id, city.signs[0].id
    override = {"lines": [{"text": "Umleitung"}], "reason": "Stadtfest"}
    return [
        (f"/v1/admin/lots/{lot}/close", {"reason": text}, "reason"),
        (f"/v1/admin/signs/{sign}/override", {**override, "reason": text}, "reason"),
        (f"/v1/admin/signs/{sign}/override", {**override, "lines": [{"text": text}]},
         "lines.0.text"),
        (f"/v1/admin/signs/{sign}/override",
         {**override, "lines": [{"text": "1", "label": text}]}, "lines.0.label"),
    ]


def test_control_characters_in_admin_text_are_a_422_naming_the_field(
        client: tuple[TestClient, str], city: City, conn: psycopg.Connection[Any]) -> None:
    api, key = client
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    for text in BAD_TEXT:
        for path, body, field in _admin_bodies(city, text):
            # As a client writes it: JSON escapes, which a lone surrogate needs.
            answer = api.post(path, content=json.dumps(body), headers=headers)
            found = problem(answer, 422)
            assert [error["name"] for error in found["errors"]] == [field], (text, found)
            assert "control characters" in found["detail"] or (
                text == "\ud800" and "unicode" in found["detail"])
    assert conn.execute("SELECT count(*) FROM admin_audit").fetchone() == (0,)
    # Text beyond the bounds too; and text as people write it passes.
    too_long = api.post(f"/v1/admin/lots/{city.lots[0].id}/close", headers=headers,
                        json={"reason": "x" * 501})
    assert problem(too_long, 422)["errors"][0]["name"] == "reason"
    for path, body, _ in _admin_bodies(city, "Ä ö 🅿 Straße"):
        answer = api.post(path, json=body, headers=headers)
        # The override's width check may refuse a label; never a 500.
        assert answer.status_code in (200, 422), answer.text
    closed = api.post(f"/v1/admin/lots/{city.lots[0].id}/close", headers=headers,
                      json={"reason": "Bauarbeiten – Einfahrt Süd gesperrt"})
    assert closed.status_code == 200, closed.text


def test_a_page_takes_any_rotate_value_and_stays_valid_json(
        client: tuple[TestClient, str]) -> None:
    api, _ = client
    for rotate, seconds in (("nan", 20.0), ("-inf", 1.0), ("inf", 600.0), ("1e400", 600.0),
                            ("0", 1.0), ("7.5", 7.5), ("x" * 100, 20.0)):
        page = api.get("/kiosk", params={"rotate": rotate})
        assert page.status_code == 200
        text = page.text.split('id="parkleit-config">', 1)[1].split("</script>", 1)[0]
        config = json.loads(text, parse_constant=lambda constant: pytest.fail(constant))
        assert config["rotate_s"] == seconds, rotate


@pytest.mark.parametrize(("path", "name"), [
    ("/v1/lots/a%00b", "lot_id"), ("/v1/lots/a%00b/history", "lot_id"),
    ("/v1/admin/lots/a%00b/open", "lot_id"), ("/v1/admin/signs/a%0Ab/override", "sign_id"),
    ("/v1/dashboard/heatmap?lot_id=a%00b", "lot_id"), ("/v1/export.csv?lot=a%00b", "lot"),
    ("/v1/lots?city=a%00b", "city"),
])
def test_ids_are_checked_by_the_registry_pattern(client: tuple[TestClient, str], path: str,
                                                  name: str) -> None:
    api, key = client
    method = "POST" if "/admin/" in path else "GET"
    body = problem(api.request(method, path, headers={"X-API-Key": key}), 422)
    assert body["errors"][0]["name"].split(".")[0] == name


def test_the_schema_states_the_text_rule(client: tuple[TestClient, str]) -> None:
    api, _ = client
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    reason = schemas["CloseLot"]["properties"]["reason"]
    assert (reason["minLength"], reason["maxLength"]) == (1, 500)
    label = schemas["OverrideLine"]["properties"]["label"]["anyOf"][0]
    for pattern in (reason["pattern"], label["pattern"]):
        assert all(re.fullmatch(pattern, text) is None for text in BAD_TEXT if text != "\ud800")
        assert re.fullmatch(pattern, "Bauarbeiten – Einfahrt Süd gesperrt 🅿")
