"""``parkleit demo`` runs the whole system and stops cleanly on Ctrl-C."""

from __future__ import annotations

import signal
from collections.abc import Callable

import psycopg
import pytest
from _helpers import ServiceProcess, service_env, wait_for

from core.settings import Settings


@pytest.mark.slow
def test_demo_runs_the_city_and_stops_on_ctrl_c(
        spawn: Callable[..., ServiceProcess], settings: Settings, db_url: str) -> None:
    demo = spawn(["demo"], service_env(settings), name="demo")
    demo.wait_log("started city simulator", timeout=60)
    demo.wait_log("spaces free in Teststadt", timeout=60)
    with psycopg.connect(db_url) as conn:
        history = conn.execute(
            "SELECT count(*) FROM lot_occupancy WHERE source = 'history'").fetchone()
        assert history is not None and history[0] == 4 * 7 * 24 * 12  # a week, every 5 min
        wait_for(lambda: conn.execute(
            "SELECT count(*) FROM lot_state WHERE status <> 'unknown'").fetchone() == (4,))
    assert demo.proc is not None
    demo.proc.send_signal(signal.SIGINT)
    assert demo.proc.wait(60) == 0
    log = demo.log.read_text()
    assert "demo stopped" in log and "Traceback" not in log
    assert "stopped unexpectedly" not in log
