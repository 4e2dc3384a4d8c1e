"""A sign's mode set in the operator console reaches a real (simulated NTCIP) sign through the
signage service, the console lists what it asked beside what the sign acknowledged, and a mode
whose end passes (by the suite's clock, shared by every process) returns the sign to auto."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from _helpers import ROOT, ServiceProcess, api_server, service_env, utc_now, wait_for
from test_signage_service import Rig, rig, start

__all__ = ["rig"]  # the fixture, used by name

PASSWORD = "correct horse battery"


def _lines(view: dict[str, Any], key: str) -> list[str] | None:
    lines = view[key]
    return None if lines is None else [line["text"] for line in lines]


def test_a_mode_shows_on_the_sign_and_returns_to_auto_after_its_end(
        spawn: Callable[..., ServiceProcess], rig: Rig, tmp_path: Path) -> None:
    bank, cid = rig.bank, rig.cid
    start(spawn, rig)
    rig.publish_counter(30)
    wait_for(lambda: bank.texts("a") == ["70", "--"], timeout=5, interval=0.02)
    added = subprocess.run([sys.executable, "-m", "parkleit", "users", "add", "olga", "--role",
                            "operator"], input=f"{PASSWORD}\n", env=service_env(rig.settings),
                           cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert added.returncode == 0, added.stderr
    with api_server(rig.settings, tmp_path / "api.log") as api, \
            httpx.Client(base_url=api.url, timeout=30) as client:
        login = client.post("/v1/console/login",
                            json={"username": "olga", "password": PASSWORD})
        assert login.status_code == 200, login.text
        csrf = {"X-CSRF-Token": login.json()["csrf_token"]}

        def view(sign: str) -> dict[str, Any]:
            listed = client.get("/v1/console/signs")
            assert listed.status_code == 200, listed.text
            views: dict[str, dict[str, Any]] = {v["sign_id"]: v for v in listed.json()}
            return views[f"{cid}-{sign}"]

        def shown_b() -> list[str]:
            return [line.strip() for line in bank.call(bank.signs["b"].shown)]

        until = utc_now() + timedelta(seconds=4)
        full = client.put(f"/v1/console/signs/{cid}-a/mode", headers=csrf, json={
            "mode": "full", "until": until.isoformat(), "reason": "Veranstaltung"})
        assert full.status_code == 200, full.text
        assert _lines(full.json(), "asked") == ["besetzt", "besetzt"]
        # A fixed text on the other sign, without an end.
        text = client.put(f"/v1/console/signs/{cid}-b/mode", headers=csrf, json={
            "mode": "text", "text": "Umleitung\nA9 Süd", "reason": "Sperrung"})
        assert text.status_code == 200, text.text

        wait_for(lambda: bank.texts("a") == ["besetzt", "besetzt"], timeout=2, interval=0.02)
        # The sign's font has no umlauts: the driver spells them out.
        wait_for(lambda: shown_b() == ["Umleitung", "A9 Sued"], timeout=2, interval=0.02)
        shown = wait_for(lambda: (v := view("a"))["shown"] and v, timeout=3)
        assert (shown["mode"], _lines(shown, "shown")) == ("full", ["besetzt", "besetzt"])
        assert shown["asked"] == shown["shown"]
        assert wait_for(lambda: _lines(view("b"), "shown")) == ["Umleitung", "A9 Süd"]

        # Its end passes: the sign shows the counts again by itself, and is listed as auto.
        wait_for(lambda: bank.texts("a") == ["70", "--"], timeout=6, interval=0.05)
        assert utc_now() >= until
        back = wait_for(lambda: (v := view("a"))["mode"] == "auto"
                        and _lines(v, "shown") == ["70", "--"] and v, timeout=3)
        assert back["asked"] is None and back["until"] is None
        assert view("b")["mode"] == "text"  # the other sign keeps its text
        assert shown_b() == ["Umleitung", "A9 Sued"]
