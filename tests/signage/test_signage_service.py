"""``parkleit signage`` as a process: MQTT -> ingest -> signage -> simulated NTCIP signs over UDP,
with the audit log, sign health, retries, staleness and the signs' own fallbacks."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
import psycopg
import pytest
from _citytoml import city_toml
from _helpers import ServiceProcess, service_env, utc_now, wait_for
from paho.mqtt.enums import CallbackAPIVersion
from psycopg.rows import dict_row

from core.city import City, load_city
from core.settings import Settings
from signage import Observation, SignageService
from signage.ntcip import ControlMode, SourceMode
from simulators._mqtt import mqtt_client
from simulators.signs_ntcip import NtcipSignSimulator, SignModel

_T = TypeVar("_T")

# Fast enough for a test, and still the production relations: keep-alive well inside the
# comm-loss time of one sign minute (the driver's default for stale_after_s 30).
FAST = {"PARKLEIT_SIGNAGE_KEEPALIVE_S": "0.3", "PARKLEIT_SIGNAGE_TICK_S": "0.2",
        "PARKLEIT_SIGNAGE_RESYNC_S": "1", "PARKLEIT_SIGNAGE_RETRY_MIN_S": "0.2",
        "PARKLEIT_SIGNAGE_RETRY_MAX_S": "2", "PARKLEIT_SIGNAGE_METRICS_PORT": "0"}
STALE_AFTER_S = 30


class SignBank:
    """Simulated NTCIP signs on free UDP ports, served by an event loop in a thread of its own;
    every look at a sign runs in that loop, so the test never races the sign's timers."""

    def __init__(self, names: list[str], minute_s: float) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="signs",
                                        daemon=True)
        self._thread.start()
        self.signs = {name: NtcipSignSimulator(SignModel(name, minute_s=minute_s))
                      for name in names}
        for simulator in self.signs.values():
            self.run(simulator.start())

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def call(self, function: Callable[[], _T]) -> _T:
        async def call() -> _T:
            return function()
        return self.run(call())

    def texts(self, name: str) -> list[str]:
        """The text (rightmost word) of each line the sign shows."""
        return [line.split()[-1] for line in self.call(self.signs[name].shown)]

    def source(self, name: str) -> SourceMode:
        return self.call(lambda: self.signs[name].model.source_mode)

    def close(self) -> None:
        for simulator in self.signs.values():
            self.run(simulator.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


@dataclass
class Rig:
    city: City
    settings: Settings
    bank: SignBank
    db_url: str

    @property
    def cid(self) -> str:
        return self.city.id

    def publish_counter(self, occupied: int, ts: datetime | None = None) -> float:
        """Publish a counter reading of the garage; the monotonic time it was sent."""
        client = mqtt_client(self.settings, f"pub-{secrets.token_hex(4)}")
        try:
            stamp = (ts or utc_now()).isoformat().replace("+00:00", "Z")
            sent = time.monotonic()
            client.publish(f"parkleit/v1/{self.cid}/lots/{self.cid}-garage/counter",
                           json.dumps({"occupied": occupied, "ts": stamp}),
                           qos=1).wait_for_publish(5)
        finally:
            client.disconnect()
            client.loop_stop()
        return sent

    def log_rows(self, sign: str) -> list[dict[str, Any]]:
        with psycopg.connect(self.db_url, row_factory=dict_row) as conn:
            return conn.execute(
                "SELECT time, ok, content, error, ack FROM sign_log WHERE sign_id = %s "
                "ORDER BY time", (f"{self.cid}-{sign}",)).fetchall()

    def state(self, sign: str) -> dict[str, Any] | None:
        with psycopg.connect(self.db_url, row_factory=dict_row) as conn:
            return conn.execute(
                "SELECT content, last_ack, last_error, consecutive_failures FROM sign_state "
                "WHERE sign_id = %s", (f"{self.cid}-{sign}",)).fetchone()


def _sign_toml(cid: str, name: str, address: str) -> str:
    return f"""
[[signs]]
id = "{cid}-{name}"
name = "Schild {name}"
driver = "ntcip1203"
address = "{address}"
latitude = 51.06
longitude = 12.14
stale_after_s = {STALE_AFTER_S}
lines = [
  {{ lots = ["{cid}-garage"], label = "Zentrum", arrow = "left" }},
  {{ lots = ["{cid}-small"], label = "Klein", arrow = "right" }},
]
"""


def _rig(tmp_path: Path, db_url: str, mqtt_url: str, minute_s: float) -> Iterator[Rig]:
    cid = f"t{secrets.token_hex(4)}"
    bank = SignBank(["a", "b"], minute_s)
    try:
        # The test city without its placeholder http sign, with the two simulated signs.
        text = city_toml(cid).split("[[signs]]")[0] + "".join(
            _sign_toml(cid, name, simulator.address) for name, simulator in bank.signs.items())
        path = tmp_path / f"{cid}.toml"
        path.write_text(text, encoding="utf-8")
        settings = Settings(DATABASE_URL=db_url, MQTT_URL=mqtt_url, CITY=str(path),
                            INGEST_CLIENT_ID=f"ingest-{cid}", INGEST_METRICS_PORT=0)
        yield Rig(load_city(str(path)), settings, bank, db_url)
    finally:
        bank.close()


@pytest.fixture
def rig(tmp_path: Path, db_url: str, mqtt_url: str) -> Iterator[Rig]:
    """Signs whose minute lasts a second: they fall back 1 s after the central goes quiet."""
    yield from _rig(tmp_path, db_url, mqtt_url, minute_s=1.0)


@pytest.fixture
def slow_rig(tmp_path: Path, db_url: str, mqtt_url: str) -> Iterator[Rig]:
    """Signs that fall back 3 s after the central goes quiet."""
    yield from _rig(tmp_path, db_url, mqtt_url, minute_s=3.0)


def start(spawn: Callable[..., ServiceProcess], rig: Rig) -> tuple[ServiceProcess, ServiceProcess]:
    ingest = spawn(["ingest"], service_env(rig.settings), name="ingest")
    signage = spawn(["signage"], service_env(rig.settings, **FAST), name="signage")
    ingest.wait_log("connected to MQTT")
    signage.wait_log("serving 2 signs")
    return ingest, signage


def retained(settings: Settings, topic: str) -> str | None:
    """The retained payload of ``topic`` (None if there is none)."""
    got: list[str] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda _c, _u, msg: got.append(msg.payload.decode())
    client.connect(settings.mqtt.host, settings.mqtt.port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    try:
        deadline = time.monotonic() + 3
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    return got[-1] if got else None


def test_changes_reach_the_sign_within_a_second_are_audited_and_a_refusing_sign_waits_alone(
        spawn: Callable[..., ServiceProcess], rig: Rig) -> None:
    bank = rig.bank
    bank.call(lambda: setattr(bank.signs["b"].model, "control_mode", ControlMode.LOCAL))
    _, signage = start(spawn, rig)
    # No data yet: stale is not free.
    wait_for(lambda: bank.texts("a") == ["--", "--"], timeout=5, interval=0.02)

    sent = rig.publish_counter(30)
    wait_for(lambda: bank.texts("a")[:1] == ["70"], timeout=2, interval=0.01)
    assert time.monotonic() - sent < 2.0
    ok = [row for row in rig.log_rows("a") if row["ok"]]
    assert [line["text"] for line in ok[0]["content"]["lines"]] == ["--", "--"]
    assert wait_for(lambda: [row for row in rig.log_rows("a") if row["ok"] and row["content"][
        "lines"][0]["text"] == "70"])[0]["ack"].count("crc")

    # The sign in local mode: every attempt is logged with the reason, further and further apart.
    failures = wait_for(lambda: (rows := rig.log_rows("b")) and len(rows) >= 4 and rows,
                        timeout=6, interval=0.05)
    assert not any(row["ok"] for row in failures)
    assert all(row["error"].endswith("refused the activation: localMode") for row in failures)
    gaps = [(b["time"] - a["time"]).total_seconds() for a, b in itertools.pairwise(failures)]
    assert gaps[2] > 2 * gaps[0] > 0.2, gaps
    assert bank.texts("b") == []  # what the operator set up (nothing) stays

    # Meanwhile the other sign changes as fast as ever.
    sent = rig.publish_counter(55)
    wait_for(lambda: bank.texts("a")[:1] == ["45"], timeout=1.0, interval=0.01)
    assert time.monotonic() - sent < 1.0
    # sign_state follows the ack by the audit writer's next batch: wait for it, not the sign.
    state_a = wait_for(lambda: (state := rig.state("a")) and state["content"]["lines"][0][
        "text"] == "45" and state)
    assert state_a["content"]["lines"][0] == {"label": "Zentrum", "arrow": "left", "text": "45"}
    assert state_a["consecutive_failures"] == 0 and state_a["last_error"] is None
    assert utc_now() - state_a["last_ack"] < timedelta(seconds=2)  # keep-alives update it
    state_b = rig.state("b")
    assert state_b is not None and state_b["content"] is None
    assert state_b["consecutive_failures"] >= 4 and "localMode" in state_b["last_error"]

    # The LISTEN connection is cut: the service listens again and reads what it missed.
    with psycopg.connect(rig.db_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND query LIKE 'LISTEN%%'"
                            ).fetchone() == (1,)
    rig.publish_counter(60)
    wait_for(lambda: bank.texts("a")[:1] == ["40"], timeout=4, interval=0.02)
    signage.wait_log("listening for lot changes again")

    # The operator hands the sign back: the next retry puts the content up, and says so.
    bank.call(lambda: setattr(bank.signs["b"].model, "control_mode", ControlMode.CENTRAL))
    wait_for(lambda: bank.texts("b") == ["40", "--"], timeout=4, interval=0.05)
    wait_for(lambda: rig.log_rows("b")[-1]["ok"])

    # The service dies: the sign drops the counts by itself, one sign minute after the last
    # keep-alive.
    assert signage.proc is not None
    signage.proc.send_signal(signal.SIGKILL)
    signage.proc.wait(5)
    killed = time.monotonic()
    wait_for(lambda: bank.source("a") == SourceMode.COMM_LOSS, timeout=3, interval=0.02)
    assert 0.5 < time.monotonic() - killed < 1.5
    assert bank.texts("a") == ["--", "--"]


def test_a_stale_lot_goes_to_the_safe_state_without_a_message_and_sigterm_leaves_the_signs(
        spawn: Callable[..., ServiceProcess], slow_rig: Rig) -> None:
    rig, bank = slow_rig, slow_rig.bank
    ingest, signage = start(spawn, rig)
    read_at = utc_now() - timedelta(seconds=STALE_AFTER_S - 4)
    rig.publish_counter(20, ts=read_at)
    wait_for(lambda: bank.texts("a")[:1] == ["80"], timeout=2, interval=0.02)
    assert ingest.terminate() == 0  # nothing tells the service any more

    wait_for(lambda: bank.texts("a")[:1] == ["--"], timeout=8, interval=0.02)
    age = (utc_now() - read_at).total_seconds()
    assert STALE_AFTER_S - 0.5 < age < STALE_AFTER_S + 2
    assert bank.source("a") == SourceMode.CENTRAL  # the service's doing, not a fallback
    last = wait_for(lambda: (rows := rig.log_rows("a"))
                    and rows[-1]["content"]["lines"][0]["text"] == "--" and rows)[-1]
    assert last["ok"] and last["error"] is None

    # A graceful stop: exit 0, offline, and the signs keep what they show until their timers
    # run out (they are not blanked on purpose).
    shown = bank.call(bank.signs["a"].shown)
    assert signage.terminate() == 0
    assert bank.call(bank.signs["a"].shown) == shown
    assert bank.source("a") == SourceMode.CENTRAL
    assert retained(rig.settings, f"parkleit/v1/{rig.cid}/services/signage") == "offline"
    assert "Traceback" not in signage.log.read_text()


def test_older_news_never_replaces_newer(city: City, settings: Settings) -> None:
    """A late notification or read (older ``updated``) is ignored; the same time is taken."""
    service = SignageService(settings, city)
    lot = f"{city.id}-garage"
    now = utc_now()

    def note(free: int, updated: datetime, city_id: str = city.id) -> str:
        return json.dumps({"lot_id": lot, "city": city_id, "free": free, "occupied": 100 - free,
                           "capacity": 100, "status": "open", "updated": updated.isoformat()})

    service.lot_changed(note(40, now))
    service.lot_changed(note(50, now - timedelta(seconds=1)))
    assert service.observations[lot] == Observation(40, 100, "open", now)
    service.lot_changed(json.dumps({"lot_id": lot, "city": city.id, "free": None,
                                    "occupied": None, "capacity": 100, "status": "unknown",
                                    "updated": now.isoformat()}))
    assert service.observations[lot] == Observation(None, 100, "unknown", now)
    service.lot_changed(note(1, now + timedelta(seconds=1), "elsewhere"))  # another city's
    service.lot_changed("not json")
    assert service.observations[lot].status == "unknown"


def test_bad_timing_exits_2_with_one_line(spawn: Callable[..., ServiceProcess],
                                          settings: Settings, city: City) -> None:
    process = spawn(["signage"], service_env(settings, PARKLEIT_SIGNAGE_KEEPALIVE_S="200"),
                    name="signage")
    assert process.proc is not None and process.proc.wait(30) == 2
    assert process.log.read_text().strip().splitlines() == [
        f"parkleit: PARKLEIT_SIGNAGE_KEEPALIVE_S (200 s) must be at most half the "
        f"stale_after_s of sign {city.id}-vms-1 (300 s), or the "
        "sign falls back between keep-alives"]
