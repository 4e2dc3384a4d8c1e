"""Security of the API: headers on pages and data, CORS (open reads, never admin), hashed keys
compared in constant time, no internals in a 500, no personal data in the schema, and the
pages' Content-Security-Policy in a real headless Chromium (with tiles from a host of their own).
"""

from __future__ import annotations

import hmac
import http.server
import logging
import re
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from _browser import LEAFLET, chromium, policy_page
from _helpers import PROBLEM, api_server, free_port, wait_for
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api import create_app
from api._keys import KeyStore, add_key
from api._security import page_policy, tile_source
from core.city import City
from core.registry import sync_registry
from core.settings import Settings

PAGES = ("/", "/kiosk", "/dashboard")


def _policy(response: httpx.Response) -> dict[str, str]:
    """The directives of a response's Content-Security-Policy: name -> sources."""
    directives = (part.strip().split(" ", 1) for part in
                  response.headers["content-security-policy"].split(";"))
    return {name: (sources[0] if sources else "") for name, *sources in directives}


@pytest.fixture
def keys_file(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "api-keys"
    return path, add_key(path, "ops")


# -- headers ------------------------------------------------------------------------------------

def test_pages_carry_a_strict_policy_and_the_browser_headers(api_client: TestClient) -> None:
    for path in PAGES:
        page = api_client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = _policy(page)
        assert policy["default-src"] == "'none'"
        assert policy["script-src"] == policy["style-src"] == "'self'"
        assert policy["connect-src"] == "'self'"  # /v1/... and the stream, nothing else
        assert policy["img-src"] == "'self' data:"  # no tiles configured: no third party
        assert policy["frame-ancestors"] == "'self'" and policy["base-uri"] == "'none'"
        assert "unsafe-inline" not in page.headers["content-security-policy"]
        assert "unsafe-eval" not in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "SAMEORIGIN"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert "geolocation=()" in page.headers["permissions-policy"]
        assert page.headers["cross-origin-opener-policy"] == "same-origin"
        assert "strict-transport-security" not in page.headers  # plain HTTP cannot set it


def test_data_answers_can_run_nothing_when_opened(api_client: TestClient) -> None:
    answers = [api_client.get("/v1/lots"), api_client.get("/v1/lots/atlantis"),
               api_client.get("/v1/lots", params={"limit": "0"}), api_client.get("/healthz"),
               api_client.get("/static/favicon.svg"), api_client.get("/static/js/live.js"),
               api_client.get("/metrics")]
    assert [answer.status_code for answer in answers] == [200, 404, 422, 200, 200, 200, 200]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["content-security-policy"] == (
            "default-src 'none'; frame-ancestors 'none'")
        assert answer.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    # An ES module is only run with a JavaScript type once nosniff is on.
    assert answers[5].headers["content-type"].split(";")[0] in ("text/javascript",
                                                                 "application/javascript")
    # Swagger UI has a policy of its own (tests/api/test_api_docs.py), and is never framed.
    docs = api_client.get("/docs")
    assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]
    assert docs.headers["x-frame-options"] == "DENY"


def test_hsts_only_over_https(settings: Settings) -> None:
    with TestClient(create_app(settings), base_url="https://parken.example.org") as client:
        assert client.get("/healthz").headers["strict-transport-security"] == "max-age=31536000"
        assert client.get("/").headers["strict-transport-security"] == "max-age=31536000"


def test_tiles_and_framing_come_from_the_settings(settings: Settings) -> None:
    assert tile_source("") is None
    assert tile_source("https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png") == (
        "https://*.tile.openstreetmap.org")
    assert tile_source("https://tiles.example.org:8443/{z}/{x}/{y}{r}.png") == (
        "https://tiles.example.org:8443")
    assert tile_source("https://{s}.org/{z}/{x}/{y}.png") is None  # "*.org": too wide
    assert tile_source("ftp://tiles.example.org/{z}/{x}/{y}.png") is None
    embedded = settings.model_copy(update={
        "API_TILE_URL": "https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png",
        "API_FRAME_ANCESTORS": ("https://www.zeitz.de",)})
    assert "img-src 'self' data: https://*.tile.openstreetmap.org;" in page_policy(embedded)
    with TestClient(create_app(embedded)) as client:
        page = client.get("/")
    assert _policy(page)["frame-ancestors"] == "'self' https://www.zeitz.de"
    assert "x-frame-options" not in page.headers  # it cannot name another site; CSP does


# -- CORS -----------------------------------------------------------------------------------

def test_cors_answers_the_configured_origins_only(settings: Settings) -> None:
    limited = settings.model_copy(update={"API_CORS_ORIGINS": ("https://maps.example.org",)})
    with TestClient(create_app(limited)) as client:
        allowed = client.get("/v1/lots", headers={"Origin": "https://maps.example.org"})
        assert allowed.headers["access-control-allow-origin"] == "https://maps.example.org"
        assert "Origin" in allowed.headers["vary"]  # caches keep the answers apart
        refused = client.get("/v1/lots", headers={"Origin": "https://evil.example"})
        assert refused.status_code == 200  # the data is public; the browser withholds it
        assert "access-control-allow-origin" not in refused.headers
        preflight = client.options("/v1/lots", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        assert preflight.status_code == 400
        assert "access-control-allow-origin" not in preflight.headers
        writes = client.options("/v1/lots", headers={
            "Origin": "https://maps.example.org", "Access-Control-Request-Method": "POST"})
        assert writes.status_code == 400  # reads only


def test_admin_routes_never_answer_cors(settings: Settings,
                                        keys_file: tuple[Path, str]) -> None:
    # The default: any origin may read.
    with TestClient(create_app(settings.model_copy(
            update={"API_KEYS_FILE": keys_file[0]}))) as client:
        origin = {"Origin": "https://evil.example"}
        assert client.get("/v1/lots", headers=origin).headers[
            "access-control-allow-origin"] == "*"
        for method in ("POST", "DELETE"):
            preflight = client.options("/v1/admin/lots/nowhere/close", headers={
                **origin, "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "x-api-key"})
            assert preflight.status_code == 405
            assert not [name for name in preflight.headers if name.startswith("access-control")]
        # Even a request a browser would not send: an answer no other page may read.
        answer = client.post("/v1/admin/lots/nowhere/open",
                             headers={**origin, "X-API-Key": keys_file[1]})
        assert answer.status_code == 404
        assert not [name for name in answer.headers if name.startswith("access-control")]


def test_bad_origin_settings_are_refused() -> None:
    for origins in ("https://maps.example.org/", "*,https://maps.example.org", "maps.example"):
        with pytest.raises(ValidationError):
            Settings.model_validate({"API_CORS_ORIGINS": origins})  # a string, as from env
    both = Settings.model_validate({"API_CORS_ORIGINS": "https://a.example, http://localhost:5173"})
    assert both.API_CORS_ORIGINS == ("https://a.example", "http://localhost:5173")


# -- keys ---------------------------------------------------------------------------------------

def test_keys_are_hashed_and_compared_in_constant_time(
        keys_file: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    path, key = keys_file
    name, secret = key.split(".", 1)
    stored = path.read_text()
    assert secret not in stored and re.fullmatch(r"ops:scrypt\$16384\$8\$1\$\S+\$\S+\n", stored)

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # as api._keys calls it
    store = KeyStore(path)
    # A wrong key of the same length: refused, by comparing two scrypt digests in constant
    # time (never the key itself, never with ==).
    wrong = f"{name}.{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    assert len(wrong) == len(key) and store.verify(wrong) is None
    assert len(compared) == 1
    assert [len(value) for value in compared[0]] == [32, 32] and key.encode() not in compared[0]
    # An unknown name (same length) is hashed and compared too: its answer is no faster.
    assert store.verify(f"opz.{secret}") is None and len(compared) == 2
    assert store.verify(secret) is None and len(compared) == 3  # no name at all
    assert store.verify(key) == "ops" and len(compared) == 4
    assert store.verify(key) == "ops" and len(compared) == 4  # verified once per process


# -- errors ---------------------------------------------------------------------------------

def test_an_unexpected_error_tells_the_client_nothing(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(settings)

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("password=hunter2 at /srv/parkleit/api/secret.py line 42")

    with caplog.at_level(logging.ERROR), TestClient(app, raise_server_exceptions=False) as client:
        failed = client.get("/v1/boom")
    assert failed.status_code == 500 and failed.headers["content-type"] == PROBLEM
    assert failed.json() == {"type": "about:blank", "title": "Internal Server Error",
                             "status": 500, "instance": "/v1/boom",
                             "detail": "the server could not answer; the error is logged"}
    assert failed.headers["x-content-type-options"] == "nosniff"
    for leak in ("hunter2", "secret.py", "RuntimeError", "Traceback", "File "):
        assert leak not in failed.text
    # The operator has it all, in the log.
    logged = [record for record in caplog.records if record.exc_info]
    assert logged and "hunter2" in str(logged[0].exc_info[1])  # type: ignore[index]


# -- personal data --------------------------------------------------------------------------

# Words that would make a column personal data: plates, names, contacts, network identities.
_PERSONAL = re.compile(
    r"(^|_)(plates?|licen[cs]e|kennzeichen|vrn|anpr|e?mail|phone|telephone|mobile|msisdn|"
    r"imsi|imei|surname|forename|person|people|birth|dob|ip|ipv[46]|inet|"
    r"client|remote|agent|useragent|cookie|session|mac|owner|customer|user|username|driver|"
    r"name|address|addr|street|zip|postcode|iban|card|face|image|photo|video)(_|$)")
_PERSONAL_TYPES = ("inet", "cidr", "macaddr", "macaddr8", "bytea")
# Columns that match a word above but hold no personal data, and why. Nothing else may match.
_ALLOWED = {
    ("lots", "name"): "the car park's name",
    ("signs", "name"): "the sign's name",
    ("signs", "driver"): "the protocol of the sign's controller (ntcip, http, mqtt)",
    ("signs", "address"): "the network address of the sign's controller, a device",
    ("admin_audit", "key_name"): "the API key's name; keys are named after roles",
    ("admin_audit", "client"): "the operator's IP address: operational data with a retention "
                               "(docs/operations.md)",
    ("admin_audit", "user_name"): "the console user who acted (staff, not drivers): the "
                                  "audit's purpose (docs/operations.md, personal data)",
    ("console_users", "name"): "a console user's login name (staff; docs/operations.md)",
    ("events", "name"): "an event's name (Weihnachtsmarkt, a concert), not a person's",
    ("charging_stations", "name"): "the charging station's name",
    ("console_sessions", "user_name"): "whose session it is (staff; ends with the session)",
    ("console_sessions", "token_hash"): "the SHA-256 of a session token, no identity",
    ("dead_letters", "payload"): "a rejected sensor message as sent (sensors send no "
                                 "personal data; retention in docs/operations.md)",
    ("dead_letters", "digest"): "the SHA-256 of that message (one row per distinct one)",
    ("forecast_models", "artefact"): "a pickled forecasting model",
    ("schema_migrations", "name"): "a migration's file name",
}


def _personal(table: str, column: str, data_type: str) -> bool:
    return (_PERSONAL.search(column.lower()) is not None or data_type in _PERSONAL_TYPES
            ) and (table, column) not in _ALLOWED


def test_the_personal_data_check_can_fail() -> None:
    for column in ("license_plate", "plate", "kennzeichen", "driver_email", "phone",
                   "client_ip", "user_agent", "first_name", "ip"):
        assert _personal("lots", column, "text"), column
    assert _personal("bay_events", "seen_from", "inet")
    for column in ("capacity", "occupied", "free", "description", "reason", "shipping"):
        assert not _personal("lots", column, "text"), column


def test_the_schema_holds_no_personal_data(conn: psycopg.Connection[Any]) -> None:
    """Every table and view of schema.sql and the migrations (as ``db migrate`` leaves them)."""
    columns = conn.execute(
        "SELECT c.table_name, c.column_name, c.udt_name FROM information_schema.columns AS c"
        " WHERE c.table_schema = 'public' ORDER BY 1, 2").fetchall()
    tables = {table for table, _, _ in columns}
    assert {"lots", "bay_events", "sensor_health", "admin_audit", "sensor_state"} <= tables
    assert [(table, column) for table, column, kind in columns
            if _personal(table, column, kind)] == []
    # The allow-list names only columns that exist: it cannot hide a removed one's successor.
    assert set(_ALLOWED) <= {(table, column) for table, column, _ in columns}


# -- the pages' policy in a real browser -------------------------------------------------------

def _png() -> bytes:
    """A 1x1 grey PNG: a map tile."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b""))


class _Tiles(http.server.ThreadingHTTPServer):
    requests: list[str]


class _TileHandler(http.server.BaseHTTPRequestHandler):
    server: _Tiles

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        body = _png()
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def tiles() -> Iterator[_Tiles]:
    server = _Tiles(("127.0.0.1", 0), _TileHandler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, name="tiles", daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.browser
def test_the_page_policy_lets_the_map_work_and_blocks_the_rest(
        settings: Settings, city: City, conn: psycopg.Connection[Any], tiles: _Tiles,
        tmp_path: Path) -> None:
    sync_registry(conn, city)
    tile_host = f"http://127.0.0.1:{tiles.server_address[1]}"
    with chromium(LEAFLET) as browser, api_server(
            settings, tmp_path / "api.log",
            PARKLEIT_API_TILE_URL=f"{tile_host}/{{z}}/{{x}}/{{y}}.png",
            PARKLEIT_API_TILE_ATTRIBUTION="test tiles") as api:
        page, errors = policy_page(browser)
        page.goto(f"{api.url}/")
        page.wait_for_selector(".leaflet-tile-loaded")  # tiles from their own host
        page.wait_for_selector(".lot-marker")
        assert tiles.requests and page.evaluate("window.violations") == []
        # What an injection would try: an inline handler, a script from elsewhere, an
        # image from another host. The policy blocks each, and says so.
        page.evaluate("""other => {
            document.body.insertAdjacentHTML('beforeend',
                '<img src="/static/nothing.png" onerror="window.pwned = 1">');
            const script = document.createElement('script');
            script.src = other + '/evil.js';
            document.head.append(script);
            const image = document.createElement('img');
            image.src = other + '/pixel.png';
            document.body.append(image);
        }""", f"http://127.0.0.1:{free_port()}")
        violations = wait_for(lambda: len(page.evaluate("window.violations")) >= 3
                              and page.evaluate("window.violations"), timeout=10)
        pwned = page.evaluate("window.pwned")
    assert sorted(violation.split(" ")[0] for violation in violations) == [
        "img-src", "script-src-attr", "script-src-elem"]
    assert pwned is None and errors == []
