"""``parkleit ingest`` as a process, over the real broker and database."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from _citytoml import CHIRPSTACK_EUI, TTN_EUI
from _helpers import ServiceProcess, Watcher, start_ingest, utc_now, wait_for
from _payloads import bay_topic, dumps, native_bay

from core.city import City
from core.settings import Settings
from parkleit.embedded import free_port
from simulators._mqtt import mqtt_client


def now_iso() -> str:
    return utc_now().isoformat().replace("+00:00", "Z")


@pytest.fixture
def ingest(spawn: Callable[..., ServiceProcess], settings: Settings) -> ServiceProcess:
    port = free_port()
    process = start_ingest(spawn, settings, PARKLEIT_INGEST_METRICS_PORT=str(port))
    process.metrics_port = port  # type: ignore[attr-defined]
    return process


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values = [float(line.split()[-1]) for line in text.splitlines()
              if line.startswith(name + " ") or line.startswith(name + "{")]
    return sum(values)


def count(db_url: str, query: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def test_every_inbound_format_flows_to_the_database_and_status_out(
        ingest: ServiceProcess, watch: Callable[..., Watcher], settings: Settings, city: City,
        db_url: str) -> None:
    cid = city.id
    watcher = watch(f"parkleit/v1/{cid}/#")
    client = mqtt_client(settings, f"pub-{cid}")
    try:
        for n in range(1, 4):
            client.publish(f"parkleit/v1/{cid}/bays/{cid}-st-00{n}",
                           json.dumps({"occupied": True, "ts": now_iso(), "seq": n}), qos=1)
        client.publish(f"parkleit/v1/{cid}/lots/{cid}-garage/counter",
                       json.dumps({"entries": 120, "exits": 30, "ts": now_iso()}), qos=1)
        ttn = {"end_device_ids": {"device_id": "pls-1", "dev_eui": TTN_EUI.upper(),
                                  "application_ids": {"application_id": f"{cid}-app"}},
               "received_at": now_iso(),
               "uplink_message": {"f_port": 1, "f_cnt": 42,
                                  "frm_payload": base64.b64encode(b"\x01").decode(),
                                  "rx_metadata": [{"gateway_ids": {"gateway_id": "gw-rathaus"},
                                                   "rssi": -97, "snr": 7.5}]}}
        client.publish(f"v3/{cid}-app@ttn/devices/pls-1/up", json.dumps(ttn), qos=1)
        chirp = {"deduplicationId": "3ac7e3c4", "time": now_iso(),
                 "deviceInfo": {"devEui": CHIRPSTACK_EUI, "applicationId": f"{cid}-cs"},
                 "fCnt": 7, "fPort": 1, "data": base64.b64encode(b"\x00").decode(),
                 "rxInfo": [{"gatewayId": "0016c001ff10a235", "rssi": -110, "snr": -3.0}]}
        client.publish(f"application/{cid}-cs/device/{CHIRPSTACK_EUI}/event/up",
                       json.dumps(chirp), qos=1)
        client.publish(f"parkleit/v1/{cid}/bays/{cid}-st-004", b"\xff not json",
                       qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()

    wait_for(lambda: count(db_url, "SELECT count(*) FROM bay_events") == 5)
    wait_for(lambda: count(db_url, "SELECT count(*) FROM dead_letters") == 1)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT bay_id, occupied, source FROM bay_events "
                            "WHERE source <> 'native' ORDER BY 1").fetchall() == [
            (f"{cid}-cs-1", False, "chirpstack"), (f"{cid}-ttn-1", True, "ttn")]
        assert conn.execute("SELECT sensor_id, rssi, gateway_id, frame_count FROM sensor_health "
                            "ORDER BY 1").fetchall() == [
            (f"{cid}-cs-1", -110.0, "0016c001ff10a235", 7), (f"{cid}-ttn-1", -97.0,
                                                            "gw-rathaus", 42)]

    status = f"parkleit/v1/{cid}/lots/{cid}-street/status"
    wait_for(lambda: (watcher.last(status) or {}).get("free") == 1)
    assert watcher.last(status)["status"] == "almost_full"
    wait_for(lambda: (watcher.last(f"parkleit/v1/{cid}/lots/{cid}-garage/status") or {}
                      ).get("occupied") == 90)
    assert watcher.last(f"parkleit/v1/{cid}/services/ingest-{cid}") == "online"

    port = ingest.metrics_port  # type: ignore[attr-defined]
    assert metric(port, "parkleit_ingest_messages_received_total") == 7
    wait_for(lambda: metric(port, "parkleit_ingest_messages_written_total") == 6)
    assert metric(port, "parkleit_ingest_dead_letters_total") == 1
    assert metric(port, "parkleit_ingest_lag_seconds_count") == 7

    assert ingest.terminate() == 0
    wait_for(lambda: watcher.last(f"parkleit/v1/{cid}/services/ingest-{cid}") == "offline")


@pytest.mark.usefixtures("ingest")
def test_retained_status_reaches_a_late_subscriber(
        watch: Callable[..., Watcher], settings: Settings, city: City) -> None:
    cid = city.id
    client = mqtt_client(settings, f"pub-{cid}")
    client.publish(f"parkleit/v1/{cid}/lots/{cid}-small/counter",
                   json.dumps({"occupied": 10, "ts": now_iso()}), qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
    topic = f"parkleit/v1/{cid}/lots/{cid}-small/status"
    first = watch(topic)
    wait_for(lambda: first.last(topic))
    late = watch(topic)  # subscribes after the publish: gets the retained copy
    payload = wait_for(lambda: late.last(topic))
    assert payload["free"] == 0 and payload["status"] == "full" and payload["capacity"] == 10
    assert datetime.fromisoformat(payload["updated"]).tzinfo is not None


def test_stale_lot_is_published_as_unknown(
        spawn: Callable[..., ServiceProcess], watch: Callable[..., Watcher], settings: Settings,
        city: City, tmp_path: Path) -> None:
    # A lot whose newest reading is older than its stale limit shows unknown, not a number.
    watcher = watch(f"parkleit/v1/{city.id}/#")
    stale = tmp_path / "stale.toml"
    stale.write_text(Path(settings.CITY).read_text().replace(
        'counter_modulus = 1000', 'counter_modulus = 1000\nstale_after_s = 30'))
    stale_settings = settings.model_copy(update={"CITY": str(stale)})
    start_ingest(spawn, stale_settings)
    client = mqtt_client(settings, f"pub-{city.id}")
    old = utc_now().timestamp() - 29
    client.publish(f"parkleit/v1/{city.id}/lots/{city.id}-garage/counter",
                   json.dumps({"occupied": 5, "ts": datetime.fromtimestamp(old, UTC).isoformat()}),
                   qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
    topic = f"parkleit/v1/{city.id}/lots/{city.id}-garage/status"
    assert wait_for(lambda: watcher.last(topic))["status"] == "open"
    wait_for(lambda: watcher.last(topic)["status"] == "unknown", timeout=15)
    # A count nobody can vouch for is not published (core.status.public_numbers).
    assert watcher.last(topic)["free"] is None


@pytest.mark.parametrize("leave", [True, False], ids=["leave", "restart"])
def test_a_worker_that_leaves_parks_nothing_on_its_session(
        spawn: Callable[..., ServiceProcess], settings: Settings, city: City, db_url: str,
        leave: bool) -> None:
    """Scale-down: ``parkleit ingest --leave`` unsubscribes, drains and ends its session, so
    the other worker gets every message after it. A plain stop keeps the session (a restart
    picks up its share): the broker holds that worker's share until it is back."""
    def worker(name: str, *args: str) -> ServiceProcess:
        return start_ingest(spawn, settings, "--client-id", f"{city.id}-{name}", *args,
                            name=name, PARKLEIT_INGEST_METRICS_PORT="0")

    worker("a")
    leaving = worker("b", *(["--leave"] if leave else []))
    assert leaving.terminate() == 0
    assert ("leaving the shared subscription" in leaving.log.read_text()) is leave
    client = mqtt_client(settings, f"pub-{city.id}")
    start, sent = utc_now(), 40
    try:
        for index in range(sent):
            moment = start.replace(microsecond=0) - timedelta(seconds=sent - index)
            client.publish(bay_topic(city.id), dumps(native_bay(moment, index % 2 == 0)),
                           qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()
    query = f"SELECT count(*) FROM bay_events WHERE bay_id = '{city.id}-st-001'"
    if leave:
        wait_for(lambda: count(db_url, query) == sent, timeout=10)
        return
    # Without leaving, part of the messages wait for "b" on the broker (none is lost)...
    time.sleep(3)
    assert 0 < count(db_url, query) < sent
    worker("b")  # ...and the restarted worker writes them.
    wait_for(lambda: count(db_url, query) == sent, timeout=10)
