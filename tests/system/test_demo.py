"""``parkleit demo`` runs the whole system and stops cleanly on Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from _citytoml import CHIRPSTACK_EUI, TTN_EUI, station_toml
from _helpers import ROOT, ServiceProcess, service_env, wait_for
from _ocpipeer import write_peer_city

from core.city import City
from core.settings import Settings
from parkleit.embedded import free_port

LOTS = 4  # of the test city


def _live_lots(url: str) -> list[dict[str, Any]]:
    lots: list[dict[str, Any]] = httpx.get(f"{url}/v1/lots", timeout=5).json()["lots"]
    return [lot for lot in lots if not lot["stale"] and lot["status"] != "unknown"]


def _live_sources(url: str, protocols: dict[str, str]) -> set[str]:
    """The ways in (a station's protocol) of which /v1/charging/locations shows a point with
    a status other than UNKNOWN."""
    answer = httpx.get(f"{url}/v1/charging/locations", timeout=5).json()
    return {protocols[location["id"]] for location in answer["locations"]
            if any(evse["status"] != "UNKNOWN" for evse in location["evses"])}


def _children(log: str) -> dict[str, int]:
    return {name: int(pid) for name, pid in re.findall(r"started (.+?) \(pid (\d+)\)", log)}


@pytest.mark.slow
def test_demo_runs_the_whole_system_and_stops_on_ctrl_c(
        spawn: Callable[..., ServiceProcess], settings: Settings, db_url: str, city: City,
        tmp_path: Path) -> None:
    """Two cities, as ``make demo`` runs them: a worker set each, one API for both; the
    second with charging points of each way in (OCPP, OCPI from its simulated peer, MQTT)."""
    other = f"u{city.id[1:]}"
    ocpi_port = free_port()
    other_path = write_peer_city(tmp_path, other,
                                 f"http://127.0.0.1:{ocpi_port}/ocpi/cpo/2.2.1/locations")
    ocpp_station = station_toml(other, 4, f"{other}-garage", name="Ladestation OCPP",
                                operator="city", protocol="ocpp")
    other_path.write_text(other_path.read_text(encoding="utf-8")
                          .replace(TTN_EUI, "70b3d57ed00000b1")
                          .replace(CHIRPSTACK_EUI, "70b3d57ed00000b2")
                          .replace("http://127.0.0.1:1/sign", "http://127.0.0.1:2/sign")
                          + ocpp_station, encoding="utf-8")
    protocols = {f"{other}-cp-{n}": protocol
                 for n, protocol in ((1, "mqtt"), (2, "ocpi"), (3, "ocpi"), (4, "ocpp"))}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    demo = spawn(["demo"], service_env(settings, PARKLEIT_API_PORT=str(port),
                                       PARKLEIT_SIGNAGE_METRICS_PORT="0",
                                       PARKLEIT_OCPP_PORT=str(free_port()),
                                       # the forecasters train on a week: what runs counts here
                                       PARKLEIT_FORECAST_TRAIN_DAYS="7",
                                       PARKLEIT_CITIES=f"{settings.CITY},{other_path}"),
                 name="demo")
    assert demo.proc is not None
    try:
        demo.wait_log("first live map after", timeout=60)
        log = demo.log.read_text()
        for path in ("/", "/dashboard", "/kiosk", "/docs"):
            assert re.search(rf" {re.escape(url + path)}$", log, re.MULTILINE), path
        assert _live_lots(url)
        wait_for(lambda: len(_live_lots(url)) == 2 * LOTS, timeout=30, interval=0.5)
        assert {lot["city"] for lot in _live_lots(url)} == {city.id, other}
        # Live charger statuses from all three ways in.
        wait_for(lambda: _live_sources(url, protocols) == {"ocpp", "ocpi", "mqtt"},
                 timeout=30, interval=0.5)
        with psycopg.connect(db_url) as conn:
            history = conn.execute(
                "SELECT count(*) FROM lot_occupancy WHERE source = 'history'").fetchone()
            assert history == (2 * LOTS * 3 * 7 * 24 * 12,)  # three weeks, every 5 minutes
            wait_for(lambda: conn.execute(
                "SELECT count(DISTINCT l.city) FROM forecasts JOIN lots AS l USING (lot_id)"
                " WHERE forecasts.kind = 'live'").fetchone() == (2,), timeout=120, interval=0.5)
        for name in (city.id, other):  # one training at a time, each city's service after it
            demo.wait_log(f"forecast training {name} done", timeout=1)
        demo.proc.send_signal(signal.SIGINT)
        assert demo.proc.wait(60) == 0
    finally:
        if demo.proc.poll() is None:  # failed half-way: leave no child running
            for pid in _children(demo.log.read_text()).values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    log = demo.log.read_text()
    children = _children(log)
    assert set(children) >= {f"{part} {name}" for name in (city.id, other) for part in (
        "ingest", "city simulator", "signage", "forecast training", "forecast")} | {
        "api", "ocpp", f"charger simulator {other}", f"OCPI pull {other}"}
    for name in children:
        if not name.startswith(("forecast training", "sign simulators")):
            assert f"{name} stopped (exit 0)" in log, name
    for pid in children.values():  # each one ended and was reaped by the demo
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert "demo stopped" in log and "Traceback" not in log
    assert "stopped unexpectedly" not in log


def test_demo_refuses_a_taken_api_port_before_starting_anything(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "parkleit", "demo"], cwd=ROOT, capture_output=True,
            text=True, timeout=60, env=service_env(settings, PARKLEIT_API_PORT=str(port)))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"parkleit: something listens on 127.0.0.1:{port} already, where the demo's API "
        "would; set PARKLEIT_API_PORT to a free port"]
