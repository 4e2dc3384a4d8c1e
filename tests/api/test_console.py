"""The operator console against a real uvicorn server and PostgreSQL: people added by the real
``parkleit users`` command, sessions, role boundaries, CSRF, idle and absolute expiry (by the
app's injectable clock), a disabled person, login limits and logs, closing a lot as a person,
the audit; and in Debian's Chromium: log in, close a lot with a reason, see it closed."""

from __future__ import annotations

import csv
import io
import json
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from xml.etree import ElementTree

import httpx
import psycopg
import pytest
from _browser import browser_fixture, error_free_tab, watched_tab
from _helpers import ROOT, problem, service_env, utc_now, wait_for
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, expect
from psycopg.types.json import Jsonb
from test_api_stream_admin import counter, iso, serve

from api import create_app
from core.city import City
from core.registry import sync_registry
from core.settings import Settings
from ingest import Message, Writer, prepare_connection

PASSWORD = "correct horse battery"
ARTIFACTS = ROOT / "test-artifacts" / "pages"
LOGIN_BURST = 6


def entries_exits(city: City, lot: str, entries: int, exits: int, moment: datetime) -> Message:
    """A counter reading of cumulative entries and exits."""
    return Message(f"parkleit/v1/{city.id}/lots/{city.id}-{lot}/counter",
                   json.dumps({"entries": entries, "exits": exits, "ts": iso(moment)}).encode(),
                   moment)


def users(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``parkleit users ...`` as a process (stdin a pipe, not a terminal)."""
    return subprocess.run([sys.executable, "-m", "parkleit", "users", *args], input=stdin,
                          env=service_env(settings), cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)


@dataclass
class Console:
    url: str
    app: FastAPI
    city: City
    settings: Settings
    conn: psycopg.Connection[Any]
    clients: list[httpx.Client]

    def add(self, name: str, role: str) -> None:
        done = users(self.settings, "add", name, "--role", role, stdin=f"{PASSWORD}\n")
        assert done.returncode == 0, done.stderr

    def client(self) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=30)
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def login(self, name: str, password: str = PASSWORD) -> tuple[httpx.Client, str]:
        """A client holding ``name``'s session, and its CSRF token."""
        client = self.client()
        answer = client.post("/v1/console/login", json={"username": name, "password": password})
        assert answer.status_code == 200, answer.text
        return client, answer.json()["csrf_token"]

    def advance(self, seconds: float) -> None:
        """Move the app's clock on (the injectable clock: ``Settings.CLOCK_OFFSET_S``)."""
        current: Settings = self.app.state.settings
        self.app.state.settings = current.model_copy(
            update={"CLOCK_OFFSET_S": current.CLOCK_OFFSET_S + seconds})

    def lot(self, name: str) -> str:
        return f"{self.city.id}-{name}"


@pytest.fixture
def make_console(settings: Settings, city: City,
                 conn: psycopg.Connection[Any]) -> Iterator[Callable[..., Console]]:
    sync_registry(conn, city)
    prepare_connection(conn)
    now = utc_now()
    Writer(city).write(conn, [counter(city, "garage", 40, now)], now)
    with ExitStack() as stack:

        def start(**overrides: Any) -> Console:
            configured = settings.model_copy(update={
                "CONSOLE_LOGIN_BURST": LOGIN_BURST, "CONSOLE_LOGIN_RATE": 0.001, **overrides})
            app = create_app(configured)
            console = Console(stack.enter_context(serve(app)), app, city, configured, conn, [])
            stack.callback(console.close)
            return console

        yield start


@pytest.fixture
def console(make_console: Callable[..., Console]) -> Console:
    return make_console()






# -- people and sessions ------------------------------------------------------------------------


def test_users_command_adds_lists_and_disables_without_a_password_in_argv(
        console: Console) -> None:
    console.add("olga", "operator")
    console.add("paul", "planner")
    listed = users(console.settings, "list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[:3] for line in listed.stdout.splitlines()] == [
        ["olga", "operator", "active"], ["paul", "planner", "active"]]
    stored = console.conn.execute(
        "SELECT password_hash FROM console_users WHERE name = 'olga'").fetchone()
    assert stored is not None and stored[0].startswith("scrypt$16384$8$1$")
    assert PASSWORD not in stored[0]
    # No way to give a password on the command line; bad input exits 2 with one line.
    for args, stdin in ((["add", "x", "--role", "operator", "--password", "p"], ""),
                        (["add", "olga", "--role", "operator"], f"{PASSWORD}\n"),
                        (["add", "nina", "--role", "chief"], f"{PASSWORD}\n"),
                        (["add", "nina", "--role", "planner"], "short\n"),
                        (["disable", "nobody"], "")):
        refused = users(console.settings, *args, stdin=stdin)
        assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
        assert refused.stderr.strip(), args
    assert users(console.settings, "disable", "paul").returncode == 0
    listed = users(console.settings, "list")
    assert "paul\tplanner\tdisabled" in listed.stdout


def test_login_sets_a_strict_httponly_cookie_that_is_secure_over_https(
        console: Console) -> None:
    console.add("olga", "operator")
    with console.client() as client:
        answer = client.post("/v1/console/login",
                             json={"username": "olga", "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["user"] == "olga" and body["role"] == "operator"
        assert len(body["csrf_token"]) >= 32
        cookie = answer.headers["set-cookie"]
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert {"httponly", "path"} <= attributes and "secure" not in attributes
        assert "samesite=strict" in cookie.lower() and "path=/v1/console" in cookie.lower()
        assert answer.headers["cache-control"] == "no-store"
        token = client.cookies["parkleit_session"]
        me = client.get("/v1/console/me")
        assert me.status_code == 200 and me.json() == body
        # The database holds the token's hash, never the token.
        stored = console.conn.execute("SELECT t::text FROM console_sessions AS t").fetchall()
        assert len(stored) == 1 and token not in stored[0][0]
        # No CORS for the console, whatever API_CORS_ORIGINS says.
        assert "access-control-allow-origin" not in client.get(
            "/v1/console/me", headers={"Origin": "https://elsewhere.example"}).headers
    # Through the proxy uvicorn trusts here (127.0.0.1): https, so the cookie is Secure.
    forwarded = httpx.post(f"{console.url}/v1/console/login",
                           json={"username": "olga", "password": PASSWORD},
                           headers={"X-Forwarded-Proto": "https"}, timeout=30)
    assert forwarded.status_code == 200
    assert "secure" in {part.strip().lower() for part in
                        forwarded.headers["set-cookie"].split(";")}


def test_wrong_password_and_unknown_user_get_one_answer_in_similar_time_and_no_password_logs(
        make_console: Callable[..., Console], caplog: pytest.LogCaptureFixture) -> None:
    console = make_console(CONSOLE_LOGIN_BURST=20)
    console.add("olga", "operator")
    caplog.set_level(logging.INFO)
    timings: dict[str, list[float]] = {"wrong": [], "unknown": []}
    answers = {}
    for attempt in range(7):
        for case, name in (("wrong", "olga"), ("unknown", f"nobody{attempt}")):
            began = time.perf_counter()
            answer = httpx.post(f"{console.url}/v1/console/login", timeout=30,
                                json={"username": name, "password": f"guess-{attempt}"})
            timings[case].append(time.perf_counter() - began)
            body = problem(answer, 401)
            assert "set-cookie" not in answer.headers
            answers[case] = (body["detail"], body["title"])
    assert answers["wrong"] == answers["unknown"] == ("wrong user name or password",
                                                      "Unauthorized")
    wrong, unknown = statistics.median(timings["wrong"]), statistics.median(timings["unknown"])
    # Both pay scrypt (tens of ms); an unknown name answering without it would be far faster.
    assert 0.5 < unknown / wrong < 2.0, timings
    _, csrf = console.login("olga")
    assert "console login for 'olga'" in caplog.text and "refused" in caplog.text
    assert "console login: olga (operator)" in caplog.text
    for secret in ("guess-", PASSWORD, csrf):
        assert secret not in caplog.text, secret


def test_login_attempts_are_limited_per_address_and_per_user_name(
        make_console: Callable[..., Console]) -> None:
    console = make_console()
    console.add("olga", "operator")
    for attempt in range(LOGIN_BURST):
        problem(httpx.post(f"{console.url}/v1/console/login", timeout=30, json={
            "username": "olga" if attempt % 2 else f"x{attempt}", "password": "nope"}), 401)
    # The address has spent its attempts: even the right password waits now.
    limited = httpx.post(f"{console.url}/v1/console/login", timeout=30,
                         json={"username": "olga", "password": PASSWORD})
    problem(limited, 429)
    assert int(limited.headers["retry-after"]) >= 1


def test_each_role_boundary(console: Console) -> None:
    for name, role in (("paul", "planner"), ("olga", "operator"), ("ada", "admin")):
        console.add(name, role)
    lot = console.lot("garage")
    close, open_ = f"/v1/console/lots/{lot}/close", f"/v1/console/lots/{lot}/open"
    reason = {"reason": "Baustelle"}
    # Nobody logged in: 401 everywhere (reads and writes).
    with console.client() as anonymous:
        for method, path in (("GET", "/v1/console/me"), ("GET", "/v1/console/audit"),
                             ("POST", close), ("POST", open_), ("POST", "/v1/console/logout")):
            problem(anonymous.request(method, path, json=reason if path == close else None),
                     401)
        # Checked before the body is read: whatever it sends, no session is a 401.
        for body in (b"{not json", b"\xff\xfe{}", b"[" * 3000):
            problem(anonymous.post(close, content=body,
                                    headers={"Content-Type": "application/json"}), 401)
        anonymous.cookies.set("parkleit_session", "forged-token", path="/v1/console")
        problem(anonymous.get("/v1/console/me"), 401)
    # A planner reads, but may not act on a lot.
    planner, planner_csrf = console.login("paul")
    assert planner.get("/v1/console/audit").status_code == 200
    refused = problem(planner.post(close, json=reason, headers={"X-CSRF-Token": planner_csrf}),
                       403)
    assert "operator" in refused["detail"]
    # An operator and an admin act; without or with a wrong CSRF token they do not.
    for name in ("olga", "ada"):
        client, csrf = console.login(name)
        for headers in ({}, {"X-CSRF-Token": "x" * 43}, {"X-CSRF-Token": planner_csrf}):
            denied = problem(client.post(close, json=reason, headers=headers), 403)
            assert "X-CSRF-Token" in denied["detail"]
        closed = client.post(close, json=reason, headers={"X-CSRF-Token": csrf})
        assert closed.status_code == 200 and closed.json()["status"] == "closed", closed.text
        opened = client.post(open_, headers={"X-CSRF-Token": csrf})
        assert opened.status_code == 200 and opened.json()["status"] == "open", opened.text
    actions = console.conn.execute(
        "SELECT user_name, key_name, action FROM admin_audit ORDER BY time").fetchall()
    assert actions == [("olga", None, "close_lot"), ("olga", None, "open_lot"),
                       ("ada", None, "close_lot"), ("ada", None, "open_lot")]
    # A logout needs the token too, and ends the session.
    problem(planner.post("/v1/console/logout"), 403)
    assert planner.post("/v1/console/logout",
                        headers={"X-CSRF-Token": planner_csrf}).status_code == 204
    problem(planner.get("/v1/console/me"), 401)


def test_idle_and_absolute_expiry_by_the_clock(make_console: Callable[..., Console]) -> None:
    console = make_console(CONSOLE_IDLE_TIMEOUT_S=600, CONSOLE_SESSION_MAX_S=1500)
    console.add("olga", "operator")
    idle, _ = console.login("olga")
    busy, _ = console.login("olga")
    console.advance(590)
    assert idle.get("/v1/console/me").status_code == 200  # within the idle time: starts again
    assert busy.get("/v1/console/me").status_code == 200
    console.advance(590)
    assert busy.get("/v1/console/me").status_code == 200
    console.advance(20)  # 610 s since idle's last request
    problem(idle.get("/v1/console/me"), 401)
    console.advance(290)  # busy: active all along, but 1490 s old
    assert busy.get("/v1/console/me").status_code == 200
    console.advance(20)  # 1510 s: past its lifetime
    problem(busy.get("/v1/console/me"), 401)


def test_a_disabled_users_session_stops_at_once(console: Console) -> None:
    console.add("olga", "operator")
    client, csrf = console.login("olga")
    assert client.get("/v1/console/me").status_code == 200
    # The disabling bypasses the API (a direct UPDATE, as another tool might do it): the
    # session check itself refuses a disabled person, not only the CLI's clean-up.
    console.conn.execute("UPDATE console_users SET disabled = true WHERE name = 'olga'")
    problem(client.get("/v1/console/me"), 401)
    problem(client.post(f"/v1/console/lots/{console.lot('garage')}/close",
                         json={"reason": "x"}, headers={"X-CSRF-Token": csrf}), 401)
    problem(httpx.post(f"{console.url}/v1/console/login", timeout=30,
                        json={"username": "olga", "password": PASSWORD}), 401)
    # And through the CLI: its sessions are gone from the table as well.
    console.conn.execute("UPDATE console_users SET disabled = false WHERE name = 'olga'")
    console.login("olga")
    assert users(console.settings, "disable", "olga").returncode == 0
    assert console.conn.execute("SELECT count(*) FROM console_sessions").fetchone() == (0,)


def test_an_admin_adds_and_disables_people_in_the_console(console: Console) -> None:
    for name, role in (("ada", "admin"), ("olga", "operator")):
        console.add(name, role)
    admin, csrf = console.login("ada")
    operator, operator_csrf = console.login("olga")
    new = {"name": "nina", "role": "planner", "password": "ein-langes-Passwort"}
    # Only an admin, and only with the session's token.
    problem(operator.get("/v1/console/users"), 403)
    problem(operator.post("/v1/console/users", json=new,
                          headers={"X-CSRF-Token": operator_csrf}), 403)
    problem(admin.post("/v1/console/users", json=new), 403)
    with console.client() as anonymous:
        problem(anonymous.get("/v1/console/users"), 401)
    # Bad input: a short password, a bad name or role, a field too many.
    for bad in ({**new, "password": "kurz"}, {**new, "name": "Nina!"},
                {**new, "role": "chief"}, {**new, "extra": 1}):
        problem(admin.post("/v1/console/users", json=bad, headers={"X-CSRF-Token": csrf}), 422)
    added = admin.post("/v1/console/users", json=new, headers={"X-CSRF-Token": csrf})
    assert added.status_code == 201, added.text
    assert added.json()["name"] == "nina" and added.json()["disabled"] is False
    problem(admin.post("/v1/console/users", json=new, headers={"X-CSRF-Token": csrf}), 409)
    listed = {user["name"]: user for user in admin.get("/v1/console/users").json()["users"]}
    assert set(listed) == {"ada", "nina", "olga"} and listed["nina"]["role"] == "planner"
    assert all("password" not in str(user) for user in listed.values())
    # The new person logs in at once; disabled, their session ends at once.
    nina, _ = console.login("nina", "ein-langes-Passwort")
    assert nina.get("/v1/console/me").json()["role"] == "planner"
    problem(admin.post("/v1/console/users/ada/disable", headers={"X-CSRF-Token": csrf}), 422)
    problem(admin.post("/v1/console/users/nobody/disable", headers={"X-CSRF-Token": csrf}), 404)
    disabled = admin.post("/v1/console/users/nina/disable", headers={"X-CSRF-Token": csrf})
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    problem(nina.get("/v1/console/me"), 401)
    # Both in the audit, by the admin, with before and after, and never the password.
    rows = console.conn.execute(
        "SELECT user_name, action, target, before, after, detail::text FROM admin_audit"
        " ORDER BY time").fetchall()
    assert [(user, action, target) for user, action, target, *_ in rows] == [
        ("ada", "add_user", "nina"), ("ada", "disable_user", "nina")]
    assert rows[0][3] is None and rows[0][4] == {"name": "nina", "role": "planner",
                                                 "disabled": False}
    assert rows[1][3]["disabled"] is False and rows[1][4]["disabled"] is True
    assert "ein-langes-Passwort" not in str(rows)


def test_closing_a_lot_reaches_the_api_and_the_audit_with_before_and_after(
        console: Console) -> None:
    console.add("olga", "operator")
    console.add("paul", "planner")
    client, csrf = console.login("olga")
    lot = console.lot("garage")
    until = "2099-01-01T00:00:00Z"
    closed = client.post(f"/v1/console/lots/{lot}/close", headers={"X-CSRF-Token": csrf},
                         json={"reason": "Hochwasser", "until": until})
    assert closed.status_code == 200, closed.text
    assert closed.json()["closure"]["closed_by"] == "olga"
    lots = {entry["id"]: entry for entry in httpx.get(f"{console.url}/v1/lots").json()["lots"]}
    assert lots[lot]["status"] == "closed"
    # Bad input: an end time in the past, no reason, an unknown lot.
    for body, status in (({"reason": "x", "until": "2000-01-01T00:00:00Z"}, 422),
                         ({"reason": ""}, 422), ({}, 422)):
        problem(client.post(f"/v1/console/lots/{lot}/close", json=body,
                             headers={"X-CSRF-Token": csrf}), status)
    problem(client.post(f"/v1/console/lots/{console.city.id}-nowhere/close",
                         json={"reason": "x"}, headers={"X-CSRF-Token": csrf}), 404)

    planner, _ = console.login("paul")
    page = planner.get("/v1/console/audit", params={"limit": 1})
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["total"] == 1 and len(body["entries"]) == 1
    [entry] = body["entries"]
    assert (entry["actor_kind"], entry["actor"], entry["action"], entry["target"]) == (
        "user", "olga", "close_lot", lot)
    assert entry["detail"]["reason"] == "Hochwasser"
    assert entry["before"] == {"status": "open", "closure": None}
    assert entry["after"]["status"] == "closed"
    assert entry["after"]["closure"]["reason"] == "Hochwasser"
    assert entry["after"]["closure"]["until"].startswith("2099-01-01T00:00:00")
    exported = planner.get("/v1/console/audit", params={"format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 1 and rows[0]["actor"] == "olga" and rows[0]["action"] == "close_lot"
    assert json.loads(rows[0]["before"]) == {"closure": None, "status": "open"}


# -- sign modes and count corrections ------------------------------------------------------------


def test_sign_modes_and_counts_keep_the_role_boundaries(console: Console) -> None:
    console.add("paul", "planner")
    console.add("olga", "operator")
    sign = f"{console.city.id}-vms-1"
    mode = f"/v1/console/signs/{sign}/mode"
    count = f"/v1/console/lots/{console.lot('garage')}/count"
    full, corrected = {"mode": "full", "reason": "Test"}, {"occupied": 10, "reason": "gezählt"}
    with console.client() as anonymous:
        problem(anonymous.get("/v1/console/signs"), 401)
        problem(anonymous.put(mode, json=full), 401)
        problem(anonymous.post(count, json=corrected), 401)
    planner, planner_csrf = console.login("paul")
    listed = planner.get("/v1/console/signs")
    assert listed.status_code == 200, listed.text
    assert [(entry["sign_id"], entry["mode"]) for entry in listed.json()] == [(sign, "auto")]
    for method, path, body in (("PUT", mode, full), ("POST", count, corrected)):
        refused = problem(planner.request(method, path, json=body,
                                          headers={"X-CSRF-Token": planner_csrf}), 403)
        assert "operator" in refused["detail"]
    operator, csrf = console.login("olga")
    for method, path, body in (("PUT", mode, full), ("POST", count, corrected)):
        denied = problem(operator.request(method, path, json=body), 403)
        assert "X-CSRF-Token" in denied["detail"]
    assert console.conn.execute("SELECT count(*) FROM sign_overrides").fetchone() == (0,)
    assert console.conn.execute("SELECT count(*) FROM admin_audit").fetchone() == (0,)
    done = operator.put(mode, json=full, headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200 and done.json()["mode"] == "full", done.text


def test_a_sign_text_that_does_not_fit_or_ends_in_the_past_is_refused(console: Console) -> None:
    console.add("olga", "operator")
    client, csrf = console.login("olga")
    sign = f"{console.city.id}-vms-1"  # one line of 20 characters
    path = f"/v1/console/signs/{sign}/mode"
    for body, field, words in (
            ({"mode": "text", "text": "Umleitung über B 2 Nord"}, "text", "20"),
            ({"mode": "text", "text": "Grüße größer Straße"}, "text", "two"),  # 19 + 5
            ({"mode": "text", "text": "Stau ☃"}, "text", "U+2603"),
            ({"mode": "text", "text": "Tab\there"}, "text", "U+0009"),
            ({"mode": "text", "text": "Zeile 1\nZeile 2"}, "text", "has 1"),
            ({"mode": "text"}, "text", "needs the text"),
            ({"mode": "full", "text": "besetzt"}, "text", "only with the mode text"),
            ({"mode": "full", "until": "2000-01-01T00:00:00Z"}, "until", "future"),
            ({"mode": "auto", "until": "2099-01-01T00:00:00Z"}, "until", "auto"),
            ({"mode": "rainbow"}, "mode", ""), ({"mode": "full", "reason": ""}, "reason", "")):
        refused = problem(client.put(path, headers={"X-CSRF-Token": csrf},
                                     json={"reason": "Test", **body}), 422)
        [error] = refused["errors"]
        assert (error["location"], error["name"]) == ("body", field), (body, refused)
        assert words in error["detail"], (body, refused)
    problem(client.put(f"/v1/console/signs/{console.city.id}-nowhere/mode",
                       headers={"X-CSRF-Token": csrf}, json={"mode": "full", "reason": "x"}),
            404)
    assert console.conn.execute("SELECT count(*) FROM sign_overrides").fetchone() == (0,)
    # What fits exactly is taken: 20 cells, an umlaut counting two.
    fits = client.put(path, headers={"X-CSRF-Token": csrf},
                      json={"mode": "text", "text": "Messe: Parken Süd!", "reason": "Messe"})
    assert fits.status_code == 200, fits.text
    assert fits.json()["asked"] == [{"label": "", "arrow": "none", "text": "Messe: Parken Süd!"}]


def test_two_operators_on_one_sign_last_write_wins_both_audited(console: Console) -> None:
    console.add("olga", "operator")
    console.add("otto", "operator")
    sign = f"{console.city.id}-vms-1"
    path = f"/v1/console/signs/{sign}/mode"
    (olga, olga_csrf), (otto, otto_csrf) = console.login("olga"), console.login("otto")
    until = "2099-01-01T00:00:00Z"
    first = olga.put(path, headers={"X-CSRF-Token": olga_csrf},
                     json={"mode": "closed", "until": until, "reason": "Hochwasser"})
    assert first.status_code == 200, first.text
    assert first.json()["asked"] == [{"label": "Zentrum", "arrow": "left", "text": "geschlossen"}]
    second = otto.put(path, headers={"X-CSRF-Token": otto_csrf},
                      json={"mode": "test", "reason": "Wartung"})
    assert second.status_code == 200, second.text
    [listed] = olga.get("/v1/console/signs").json()
    assert (listed["mode"], listed["set_by"], listed["until"], listed["reason"]) == (
        "test", "otto", None, "Wartung")
    assert listed["asked"] == [{"label": "TEST", "arrow": "left", "text": "8" * 15}]
    assert listed["shown"] is None  # no signage service here: the sign has acknowledged nothing
    # The signage service's table has the mode (it reads it on the notification).
    assert console.conn.execute("SELECT mode, set_by FROM sign_overrides").fetchall() == [
        ("test", "otto")]
    entries = olga.get("/v1/console/audit").json()["entries"][::-1]
    assert [(e["actor"], e["action"], e["target"]) for e in entries] == [
        ("olga", "sign_mode", sign), ("otto", "sign_mode", sign)]
    assert entries[0]["before"] == {"mode": "auto"}
    assert entries[0]["after"]["mode"] == "closed"
    assert entries[1]["before"]["mode"] == "closed"  # what olga left
    assert entries[1]["before"]["set_by"] == "olga"
    assert entries[1]["after"]["mode"] == "test"
    # auto clears it, audited too.
    cleared = olga.put(path, headers={"X-CSRF-Token": olga_csrf},
                       json={"mode": "auto", "reason": "fertig"})
    assert cleared.status_code == 200 and cleared.json()["mode"] == "auto", cleared.text
    assert console.conn.execute("SELECT count(*) FROM sign_overrides").fetchone() == (0,)
    # A mode whose end has passed is auto again.
    olga.put(path, headers={"X-CSRF-Token": olga_csrf},
             json={"mode": "blank", "until": iso(utc_now() + timedelta(seconds=60)),
                   "reason": "kurz"})
    assert olga.get("/v1/console/signs").json()[0]["mode"] == "blank"
    console.advance(61)
    assert olga.get("/v1/console/signs").json()[0]["mode"] == "auto"


def _lot_view(console: Console, lot: str) -> dict[str, Any]:
    lots: list[dict[str, Any]] = httpx.get(f"{console.url}/v1/lots", timeout=10).json()["lots"]
    return next(entry for entry in lots if entry["id"] == lot)


def test_a_corrected_count_reaches_the_api_within_2_s_and_is_ingests_new_baseline(
        console: Console) -> None:
    console.add("olga", "operator")
    client, csrf = console.login("olga")
    lot = console.lot("garage")  # a counter lot of 100; the fixture counted 40
    writer, start = Writer(console.city), utc_now()
    # The garage's counter reports entries and exits: the first reading keeps the count.
    writer.write(console.conn, [entries_exits(console.city, "garage", 500, 460, start)], start)
    assert _lot_view(console, lot)["free"] == 60
    path = f"/v1/console/lots/{lot}/count"
    for body in ({"occupied": 101, "reason": "x"}, {"occupied": -1, "reason": "x"},
                 {"occupied": 5, "reason": ""}, {"occupied": 5}):
        problem(client.post(path, json=body, headers={"X-CSRF-Token": csrf}), 422)
    bays = problem(client.post(f"/v1/console/lots/{console.lot('street')}/count",
                               json={"occupied": 1, "reason": "x"},
                               headers={"X-CSRF-Token": csrf}), 422)
    assert "counts its bays" in bays["detail"]

    sent = time.monotonic()
    corrected = client.post(path, json={"occupied": 25, "reason": "nachgezählt"},
                            headers={"X-CSRF-Token": csrf})
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["free"] == 75 and "manual_correction" in corrected.json()["flags"]
    view = wait_for(lambda: (entry := _lot_view(console, lot))["free"] == 75 and entry,
                    timeout=2, interval=0.05)
    assert time.monotonic() - sent < 2.0
    assert view["occupied"] == 25 and "manual_correction" in view["quality_flags"]
    # Ingest counts on from it: 3 in, 1 out.
    later = start + timedelta(seconds=30)
    writer.write(console.conn, [entries_exits(console.city, "garage", 503, 461, later)],
                 later)
    state = console.conn.execute(
        "SELECT occupied, free, flags, corrected_at IS NOT NULL FROM lot_state "
        "WHERE lot_id = %s", (lot,)).fetchone()
    assert state == (27, 73, ["manual_correction"], True)
    wait_for(lambda: _lot_view(console, lot)["free"] == 73, timeout=2, interval=0.05)
    [entry] = client.get("/v1/console/audit").json()["entries"]
    assert (entry["actor"], entry["action"], entry["target"]) == ("olga", "correct_count", lot)
    assert entry["detail"] == {"reason": "nachgezählt", "occupied": 25, "manual": True}
    assert entry["before"]["occupied"] == 40 and entry["after"]["occupied"] == 25


def _vacant_in_datex(console: Console, lot: str) -> str | None:
    answer = httpx.get(f"{console.url}/v1/datex2/parking-status", timeout=10)
    assert answer.status_code == 200, answer.text
    for info in ElementTree.fromstring(answer.content).iter():
        if info.tag.endswith("}parkingStatusInformation") and any(
                ref.get("id") == lot for ref in info if ref.tag.endswith("}reference")):
            vacant = next((e for e in info.iter() if e.tag.endswith("}numberOfVacantSpaces")),
                          None)
            return None if vacant is None else vacant.text
    return None


def test_a_temporary_capacity_reaches_the_api_and_datex_and_ingest_counts_against_it(
        console: Console) -> None:
    console.add("olga", "operator")
    console.add("paul", "planner")
    client, csrf = console.login("olga")
    lot = console.lot("garage")  # 100 spaces, 40 taken
    path = f"/v1/console/lots/{lot}/capacity"
    until = utc_now() + timedelta(hours=1)
    works = {"capacity": 60, "until": iso(until), "reason": "Ebene 3 gesperrt"}
    for body in ({**works, "capacity": 101}, {**works, "capacity": -1},
                 {**works, "until": "2000-01-01T00:00:00Z"}, {"capacity": 60, "reason": "x"},
                 {**works, "reason": ""}):
        problem(client.post(path, json=body, headers={"X-CSRF-Token": csrf}), 422)
    problem(client.post(f"/v1/console/lots/{console.lot('street')}/capacity", json=works,
                        headers={"X-CSRF-Token": csrf}), 422)
    planner, planner_csrf = console.login("paul")
    problem(planner.post(path, json=works, headers={"X-CSRF-Token": planner_csrf}), 403)
    problem(client.post(path, json=works), 403)
    assert _lot_view(console, lot)["capacity"] == 100

    limited = client.post(path, json=works, headers={"X-CSRF-Token": csrf})
    assert limited.status_code == 200, limited.text
    assert (limited.json()["capacity"], limited.json()["free"]) == (60, 20)
    view = wait_for(lambda: (entry := _lot_view(console, lot))["capacity"] == 60 and entry,
                    timeout=2, interval=0.05)
    assert view["free"] == 20
    assert _vacant_in_datex(console, lot) == "20"
    # Ingest counts free spaces against it; the count itself is not cut to it.
    writer, now = Writer(console.city), utc_now()
    writer.write(console.conn, [counter(console.city, "garage", 70, now)], now)
    assert console.conn.execute(
        "SELECT capacity, occupied, free, status FROM lot_state WHERE lot_id = %s", (lot,)
    ).fetchone() == (60, 70, 0, "full")
    wait_for(lambda: _lot_view(console, lot)["status"] == "full", timeout=2, interval=0.05)
    [entry] = client.get("/v1/console/audit").json()["entries"]
    assert (entry["actor"], entry["action"], entry["target"]) == ("olga", "limit_capacity", lot)
    assert entry["before"]["capacity"] == 100 and entry["after"]["capacity"] == 60
    # Past its end, ingest counts against the configured capacity again.
    writer.refresh(console.conn, until + timedelta(seconds=1))
    assert console.conn.execute(
        "SELECT capacity, free FROM lot_state WHERE lot_id = %s", (lot,)).fetchone() == (100, 30)
    # Ended before its time: the configured capacity at once.
    assert client.post(path, json={**works, "capacity": 80},
                       headers={"X-CSRF-Token": csrf}).status_code == 200
    wait_for(lambda: _lot_view(console, lot)["capacity"] == 80, timeout=2, interval=0.05)
    ended = client.delete(path, headers={"X-CSRF-Token": csrf})
    assert ended.status_code == 200 and ended.json()["capacity"] == 100, ended.text
    wait_for(lambda: _lot_view(console, lot)["capacity"] == 100, timeout=2, interval=0.05)


# -- the page in Chromium -------------------------------------------------------------------------


browser = browser_fixture(ROOT / "api" / "static" / "js")


# A 401 before logging in is the console's contract; Chromium logs every 4xx it loads.
UNAUTHORIZED = "status of 401"


def console_tab(browser: Browser, **options: Any) -> AbstractContextManager[Page]:
    """An error-free tab for the block (:func:`_browser.error_free_tab`) on the console's
    pages, where a 401 is no error."""
    return error_free_tab(browser, tolerated=UNAUTHORIZED, **options)


def log_in_on_page(tab: Page, name: str, password: str = PASSWORD) -> None:
    """Log ``name`` in with the console page's form (German) and wait for the console."""
    tab.get_by_label("Benutzername").fill(name)
    tab.get_by_label("Passwort", exact=True).fill(password)
    tab.keyboard.press("Enter")
    expect(tab.locator("#who")).to_contain_text(name)


@pytest.mark.browser
def test_the_console_page_logs_in_and_closes_a_lot(console: Console,
                                                   browser: Browser) -> None:
    console.add("olga", "operator")
    with console_tab(browser) as tab:
        tab.goto(f"{console.url}/console")
        expect(tab.get_by_label("Benutzername")).to_be_focused()
        # Keyboard only: type, tab, type, Enter.
        tab.keyboard.type("olga")
        tab.keyboard.press("Tab")
        tab.keyboard.type(PASSWORD)
        tab.keyboard.press("Enter")
        expect(tab.locator("#who")).to_contain_text("olga")
        lot = console.lot("garage")
        row = tab.locator(f"tr[data-lot='{lot}']")
        expect(row.locator(".badge")).to_have_text("frei")
        expect(row.locator(".badge")).to_have_class("badge status-open")
        name = console.city.lot(lot).name
        # The drivers' map, open in another tab: it hears the closing within 2 s.
        driver_map = tab.context.new_page()
        driver_map.goto(f"{console.url}/")
        on_map = driver_map.locator(f'#lot-list li[data-lot-id="{lot}"]')
        expect(on_map).to_have_attribute("data-status", "open")
        driver_map.wait_for_selector('#connection[data-state="live"]')
        tab.get_by_label(f"Grund für die Schließung von {name}").fill("Baustelle Ebene 2")
        tab.get_by_role("button", name=f"{name} schließen").click()
        expect(row.locator(".badge")).to_have_text("geschlossen")
        expect(row.locator(".badge")).to_have_class("badge status-closed")
        expect(on_map).to_have_attribute("data-status", "closed", timeout=2000)
        driver_map.close()
        expect(tab.locator("#audit-rows")).to_contain_text("Baustelle Ebene 2")
        wait_for(lambda: {entry["id"]: entry["status"] for entry in httpx.get(
            f"{console.url}/v1/lots").json()["lots"]}[lot] == "closed", timeout=5)
        # Opened by another person elsewhere: the page hears it from the live stream.
        other, csrf = console.login("olga")
        assert other.post(f"/v1/console/lots/{lot}/open",
                          headers={"X-CSRF-Token": csrf}).status_code == 200
        expect(row.locator(".badge")).to_have_text("frei")
        expect(row.get_by_role("button", name=f"{name} schließen")).to_be_visible()
        assert other.post(f"/v1/console/lots/{lot}/close", json={"reason": "Markt"},
                          headers={"X-CSRF-Token": csrf}).status_code == 200
        expect(row.locator(".badge")).to_have_text("geschlossen")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / "console.png"), full_page=True)
        # Reloaded, the page keeps the session (the cookie) and asks who it is.
        tab.reload()
        expect(tab.locator("#who")).to_contain_text("olga")
        expect(row.locator(".badge")).to_have_text("geschlossen")


@pytest.mark.browser
def test_the_console_page_lets_an_admin_add_and_disable_a_person(console: Console,
                                                                  browser: Browser) -> None:
    console.add("ada", "admin")
    console.add("olga", "operator")
    with console_tab(browser) as tab:
        tab.goto(f"{console.url}/console")
        log_in_on_page(tab, "olga")
        expect(tab.locator("#people")).to_be_hidden()  # an operator manages no one
        tab.get_by_role("button", name="Abmelden").click()
        log_in_on_page(tab, "ada")
        expect(tab.locator("#people")).to_be_visible()
        tab.get_by_label("Name", exact=True).fill("nina")
        tab.get_by_label("Rolle", exact=True).select_option("planner")
        tab.get_by_label("Erstes Passwort (mind. 12 Zeichen)").fill("ein-langes-Passwort")
        tab.get_by_role("button", name="Person hinzufügen").click()
        row = tab.locator("tr[data-person='nina']")
        expect(row).to_contain_text("Planung")
        expect(row).to_contain_text("aktiv")
        console.login("nina", "ein-langes-Passwort")
        row.get_by_role("button", name="nina sperren").click()
        expect(row).to_contain_text("gesperrt")
        expect(tab.locator("#audit-rows")).to_contain_text("disable_user")
        # No button to lock oneself out.
        expect(tab.locator("tr[data-person='ada'] button")).to_have_count(0)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / "console-people.png"), full_page=True)


@pytest.mark.browser
def test_the_console_page_puts_a_sign_into_full_corrects_a_count_and_limits_capacity(
        console: Console, browser: Browser) -> None:
    console.add("olga", "operator")
    sign, lot = f"{console.city.id}-vms-1", console.lot("garage")
    sign_name, lot_name = console.city.signs[0].name, console.city.lot(lot).name
    tab, errors = watched_tab(browser, tolerated=UNAUTHORIZED)
    try:
        tab.goto(f"{console.url}/console")
        log_in_on_page(tab, "olga")
        row = tab.locator(f"tr[data-sign='{sign}']")
        asked, until, shown = (row.locator("td").nth(index) for index in range(3))
        expect(asked.locator(".mode")).to_have_text("automatisch")
        expect(shown).to_have_text("noch nichts bestätigt")

        tab.get_by_label(f"Modus für {sign_name}").select_option("full")
        tab.get_by_label(f"Ende für {sign_name} (leer: bis geändert)").fill("2099-01-01T12:00")
        tab.get_by_label(f"Grund für den Modus von {sign_name}").fill("Stadtfest")
        tab.get_by_role("button", name=f"Modus von {sign_name} übernehmen").click()
        expect(asked.locator(".mode")).to_have_text("besetzt")
        expect(asked).to_contain_text("Zentrum besetzt")
        expect(until).to_contain_text("01.01.")
        assert console.conn.execute("SELECT mode, reason, set_by FROM sign_overrides").fetchall(
            ) == [("full", "Stadtfest", "olga")]
        # The signage service confirms it (as it records an acknowledged push): the page shows
        # what the sign shows beside what was asked.
        now = utc_now()
        console.conn.execute(
            "INSERT INTO sign_state (sign_id, content, shown_since, last_ack, updated) "
            "VALUES (%s, %s, %s, %s, %s)", (sign, Jsonb({"lines": [
                {"label": "Zentrum", "arrow": "left", "text": "besetzt"}]}), now, now, now))
        expect(shown).to_have_text("Zentrum besetzt", timeout=8000)
        expect(tab.locator("#audit-rows")).to_contain_text("Stadtfest")

        # A fixed text that does not fit: the problem is shown, nothing changes.
        tab.get_by_label(f"Modus für {sign_name}").select_option("text")
        tab.get_by_label(f"Text für {sign_name} (eine Zeile je Zeile der Tafel)").fill(
            "Dieser Text ist zu lang für die Tafel")
        tab.get_by_label(f"Grund für den Modus von {sign_name}").fill("Test")
        tab.get_by_role("button", name=f"Modus von {sign_name} übernehmen").click()
        expect(tab.locator("#sign-error")).to_contain_text("20 per line")
        expect(asked.locator(".mode")).to_have_text("besetzt")

        # The count of a counter lot, corrected by hand.
        lot_row = tab.locator(f"tr[data-lot='{lot}']")
        expect(lot_row.locator(".free")).to_have_text("60 von 100")
        tab.get_by_label(f"Belegte Plätze in {lot_name} jetzt").fill("25")
        tab.get_by_label(f"Grund für die Korrektur von {lot_name}").fill("nachgezählt")
        tab.get_by_role("button", name=f"Zählung von {lot_name} korrigieren").click()
        expect(lot_row.locator(".free")).to_have_text("75 von 100")
        expect(tab.locator("#audit-rows")).to_contain_text("nachgezählt")
        assert _lot_view(console, lot)["free"] == 75
        # A level closed for works: 50 spaces until an end.
        tab.get_by_label(f"Plätze in {lot_name} bis zum Ende").fill("50")
        tab.get_by_label(f"Ende der Begrenzung von {lot_name}").fill("2099-01-01T12:00")
        tab.get_by_label(f"Grund für die Begrenzung von {lot_name}").fill("Ebene 3 gesperrt")
        tab.get_by_role("button", name=f"{lot_name}: Kapazität begrenzen (vorübergehend)"
                        ).click()
        expect(lot_row.locator(".free")).to_have_text("25 von 50")
        expect(tab.locator("#audit-rows")).to_contain_text("Ebene 3 gesperrt")
        assert _lot_view(console, lot)["capacity"] == 50
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / "console-signs.png"), full_page=True)

        # In English as well.
        tab.locator("#lang").click()
        expect(asked.locator(".mode")).to_have_text("full")
        expect(tab.get_by_role("button", name=f"Apply the mode of {sign_name}")).to_be_visible()
    finally:
        tab.context.close()
    # The one error Chromium logs is the refused text's 422 (the page showed its problem).
    assert errors == ["Failed to load resource: the server responded with a status of 422 "
                      "(Unprocessable Entity)"], errors
