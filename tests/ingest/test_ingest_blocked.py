"""A bay change can change its charging point: ``parkleit ingest`` publishes the point's
effective state (read with its bays, rules.sql evse_effective) on its retained topic after a
bay message too, as a real process on the real broker and database."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from _citytoml import evse_id, write_city
from _helpers import ServiceProcess, Watcher, start_ingest, utc_now, wait_for

from core.channels import charger_state_topic, charger_status_topic
from core.city import City
from core.settings import Settings
from core.status import rfc3339
from simulators._mqtt import mqtt_client


@pytest.fixture
def city_path(tmp_path: Path) -> Path:
    return write_city(tmp_path, f"t{secrets.token_hex(4)}", chargers=True)


def test_a_car_parked_without_charging_blocks_the_point(
        spawn: Callable[..., ServiceProcess], watch: Callable[..., Watcher],
        settings: Settings, city: City) -> None:
    cid, point = city.id, evse_id(city.id, 1, 1)
    watcher = watch(f"parkleit/v1/{cid}/chargers/+/state")
    start_ingest(spawn, settings)
    topic = charger_state_topic(cid, point)
    now = utc_now().replace(microsecond=0)
    client = mqtt_client(settings, f"pub-{cid}")
    try:
        def send(subtopic: str, body: dict[str, object]) -> None:
            client.publish(f"parkleit/v1/{cid}/{subtopic}", json.dumps(body),
                           qos=1).wait_for_publish(5)

        client.publish(charger_status_topic(cid, point), json.dumps(
            {"status": "AVAILABLE", "ts": rfc3339(now - timedelta(hours=1))}),
            qos=1).wait_for_publish(5)
        assert wait_for(lambda: watcher.last(topic))["status"] == "AVAILABLE"
        # A car on its bay since 20 minutes (the city's limit is 15), the point not charging.
        parked = now - timedelta(minutes=20)
        send(f"bays/{cid}-st-001", {"occupied": True, "ts": rfc3339(parked)})
        state = wait_for(lambda: (s := watcher.last(topic)) and s["status"] == "BLOCKED" and s)
        assert state["since"] == rfc3339(parked + timedelta(minutes=15))
        # The car leaves: available again, as reported since an hour.
        send(f"bays/{cid}-st-001", {"occupied": False, "ts": rfc3339(now)})
        state = wait_for(lambda: (s := watcher.last(topic)) and s["status"] == "AVAILABLE" and s)
        assert state["since"] == rfc3339(now - timedelta(hours=1))
    finally:
        client.disconnect()
        client.loop_stop()
