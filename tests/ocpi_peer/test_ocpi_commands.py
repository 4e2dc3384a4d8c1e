"""``parkleit simulate ocpi`` (or ``simulate chargers``, which serves the peers on this machine
too) and ``parkleit ocpi`` as the processes they run as: the pull reads the simulated peer's
locations into the database; without its token it exits 2."""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from _helpers import ServiceProcess, service_env, wait_for
from _ocpipeer import TOKEN_ENV, peer_points, write_peer_city
from prometheus_client.parser import text_string_to_metric_families

from core.city import load_city
from core.registry import sync_registry
from core.settings import Settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize("simulator", ["ocpi", "chargers"])
def test_the_pull_reads_the_simulated_peer(simulator: str, tmp_path: Path, db_url: str,
                                           mqtt_url: str, conn: psycopg.Connection[Any],
                                           spawn: Callable[..., ServiceProcess]) -> None:
    port = _free_port()
    city_id = f"t{secrets.token_hex(4)}"
    path = write_peer_city(tmp_path, city_id,
                           f"http://127.0.0.1:{port}/ocpi/cpo/2.2.1/locations")
    sync_registry(conn, load_city(str(path)))
    settings = Settings(DATABASE_URL=db_url, MQTT_URL=mqtt_url, CITY=str(path))
    env = service_env(settings, **{TOKEN_ENV: "the-simulated-peers-token"})
    command = ["ocpi", "--port", str(port)] if simulator == "ocpi" else ["chargers"]
    spawn(["simulate", *command], env, name=f"sim-{simulator}")
    metrics = _free_port()
    pull = spawn(["ocpi"], env | {"PARKLEIT_OCPI_METRICS_PORT": str(metrics)}, name="ocpi")
    pull.wait_log("leading ocpi")

    def stored() -> bool:
        rows = conn.execute("SELECT evse_id FROM evse_state WHERE source = 'ocpi' "
                            "ORDER BY evse_id").fetchall()
        return [row[0] for row in rows] == peer_points(city_id)

    wait_for(stored, timeout=30)
    # What Prometheus scrapes from the pull.
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in text_string_to_metric_families(
                   httpx.get(f"http://127.0.0.1:{metrics}/metrics", timeout=5).text)
               for sample in family.samples}
    assert samples[("parkleit_ocpi_pulls_total", (("peer", "stadtwerke"), ("result", "ok")))] >= 1
    assert samples[("parkleit_ocpi_peer_silent", (("peer", "stadtwerke"),))] == 0
    assert samples[("parkleit_leader", (("city", city_id), ("service", "ocpi")))] == 1


def test_without_its_token_the_pull_exits_2(tmp_path: Path, db_url: str) -> None:
    path = write_peer_city(tmp_path, f"t{secrets.token_hex(4)}", "http://127.0.0.1:1/x")
    env = service_env(Settings(DATABASE_URL=db_url, CITY=str(path)))
    env.pop(TOKEN_ENV, None)
    done = subprocess.run([sys.executable, "-m", "parkleit", "ocpi"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and TOKEN_ENV in done.stderr, done.stderr
