"""One truth about a lot: every output says the same of it, read by independent clients.

A real ``parkleit ingest`` and ``parkleit api`` on a city with a lot in each state - open,
almost full, full, closed by an operator, stale, never counted - and a bay-counted lot whose
disabled bays all have sensors. The counts arrive over MQTT; the closure goes through the admin
API. Then every output is read the way its consumers read it: the JSON list, GeoJSON, CSV, the
live stream, the retained MQTT status, ParkAPI, DATEX II, and the signs (rendered from what
signage hears: the published status). Each must give the same status and the same free count
(none at all where the lot is not counted right now).
"""

from __future__ import annotations

import csv
import io
import json
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from _helpers import Watcher, service_env, utc_now, wait_for
from paho.mqtt.enums import CallbackAPIVersion

from api._keys import add_key
from core import channels
from core.city import City, load_city
from core.settings import Settings
from core.status import rfc3339
from parkleit.embedded import free_port
from signage._render import Observation, render

# lot suffix -> (status, free) every output must give
EXPECTED: dict[str, tuple[str, int | None]] = {
    "open": ("open", 70),
    "almost": ("almost_full", 8),
    "full": ("full", 0),
    "closed": ("closed", None),
    "stale": ("unknown", None),
    "never": ("unknown", None),
    "bays": ("open", 2),  # b-002 and d-001 of five bays
}
NAMESPACES = {"prk": "http://datex2.eu/schema/3/parking",
              "fac": "http://datex2.eu/schema/3/facilities",
              "d2": "http://datex2.eu/schema/3/d2Payload"}
SIGN_TEXT = {"almost_full": "fast voll", "full": "besetzt", "closed": "geschlossen",
             "unknown": "--"}


def _city_toml(city_id: str) -> str:
    lots = [("open", 100), ("almost", 100), ("full", 50), ("closed", 80), ("stale", 40),
            ("never", 30)]
    text = f'[city]\nid = "{city_id}"\nname = "Wahrstadt"\n'
    for index, (suffix, capacity) in enumerate(lots):
        text += (f'\n[[lots]]\nid = "{city_id}-{suffix}"\nname = "Platz {suffix}"\n'
                 f'kind = "garage"\ncounting = "counter"\ncapacity = {capacity}\n'
                 f'latitude = {51.05 + index / 1000}\nlongitude = 12.14\n')
    text += (f'\n[[lots]]\nid = "{city_id}-bays"\nname = "Platz bays"\nkind = "surface"\n'
             'counting = "bays"\ncapacity = 5\ndisabled_spaces = 2\nlatitude = 51.06\n'
             'longitude = 12.14\nbay_groups = [\n'
             f'  {{ prefix = "{city_id}-b", count = 3 }},\n'
             f'  {{ prefix = "{city_id}-d", count = 2, kind = "disabled" }},\n]\n')
    for suffix in EXPECTED:
        text += (f'\n[[signs]]\nid = "{city_id}-vms-{suffix}"\nname = "Tafel {suffix}"\n'
                 'driver = "http"\naddress = "http://127.0.0.1:1/sign"\nlatitude = 51.06\n'
                 f'longitude = 12.14\nlines = [{{ lots = ["{city_id}-{suffix}"], '
                 f'label = "Platz" }}]\n')
    return text


@dataclass
class Site:
    city: City
    url: str
    watcher: Watcher

    def lot(self, suffix: str) -> str:
        return f"{self.city.id}-{suffix}"

    def get(self, path: str, **headers: str) -> httpx.Response:
        response = httpx.get(f"{self.url}{path}", headers=headers, timeout=10)
        assert response.status_code == 200, (path, response.text[:300])
        return response


def _publish(settings: Settings, messages: list[tuple[str, dict[str, Any]]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(settings.mqtt.host, settings.mqtt.port)
    client.loop_start()
    try:
        for topic, body in messages:
            client.publish(topic, json.dumps(body), qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def site(tmp_path: Path, settings: Settings, spawn: Any) -> Iterator[Site]:
    city_id = f"w{secrets.token_hex(4)}"
    path = tmp_path / f"{city_id}.toml"
    path.write_text(_city_toml(city_id), encoding="utf-8")
    city = load_city(str(path))
    settings = settings.model_copy(update={"CITY": str(path),
                                           "INGEST_CLIENT_ID": f"ingest-{city_id}"})
    keys = tmp_path / "api-keys"
    key = add_key(keys, "ops")
    spawn(["db", "migrate"], service_env(settings), name="migrate").proc.wait(60)
    ingest = spawn(["ingest"], service_env(settings), name="ingest")
    port = free_port()
    spawn(["api", "--port", str(port)], service_env(
        settings, PARKLEIT_API_KEYS_FILE=str(keys)), name="api")
    ingest.wait_log("subscribed")
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(url), timeout=20)
    watcher = Watcher(settings, f"parkleit/v1/{city_id}/lots/+/status")
    now = utc_now().replace(microsecond=0)
    fresh, old = now - timedelta(seconds=30), now - timedelta(hours=2)

    def counted(suffix: str, occupied: int, moment: datetime) -> tuple[str, dict[str, Any]]:
        return (f"parkleit/v1/{city_id}/lots/{city_id}-{suffix}/counter",
                {"occupied": occupied, "ts": rfc3339(moment)})

    def bay(name: str, occupied: bool) -> tuple[str, dict[str, Any]]:
        return (f"parkleit/v1/{city_id}/bays/{city_id}-{name}",
                {"occupied": occupied, "ts": rfc3339(fresh)})

    _publish(settings, [
        counted("open", 30, fresh), counted("almost", 92, fresh), counted("full", 50, fresh),
        counted("closed", 20, fresh), counted("stale", 10, old),
        bay("b-001", True), bay("b-002", False), bay("b-003", True),
        bay("d-001", False), bay("d-002", True)])
    closed = httpx.post(f"{url}/v1/admin/lots/{city_id}-closed/close", json={
        "reason": "Bauarbeiten"}, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert closed.status_code == 200, closed.text
    try:
        yield Site(city, url, watcher)
    finally:
        watcher.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _by_id(rows: list[dict[str, Any]], key: str = "id") -> dict[str, dict[str, Any]]:
    return {row[key]: row for row in rows}


def _json(site: Site) -> dict[str, tuple[str, int | None]]:
    lots = _by_id(site.get(f"/v1/lots?city={site.city.id}").json()["lots"])
    return {lot_id: (lot["status"], lot["free"]) for lot_id, lot in lots.items()}


def _geojson(site: Site) -> dict[str, tuple[str, int | None]]:
    features = site.get(f"/v1/lots?city={site.city.id}&format=geojson").json()["features"]
    return {f["id"]: (f["properties"]["status"], f["properties"]["free"]) for f in features}


def _csv(site: Site) -> dict[str, tuple[str, int | None]]:
    text = site.get(f"/v1/lots?city={site.city.id}", Accept="text/csv").text
    return {row["id"]: (row["status"], int(row["free"]) if row["free"] else None)
            for row in csv.DictReader(io.StringIO(text))}


def _stream(site: Site) -> dict[str, tuple[str, int | None]]:
    found: dict[str, tuple[str, int | None]] = {}
    with httpx.stream("GET", f"{site.url}/v1/stream?city={site.city.id}",
                      timeout=httpx.Timeout(5, read=10)) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                data = json.loads(line.removeprefix("data:"))
                if "lot_id" in data:
                    found[data["lot_id"]] = (data["status"], data["free"])
            if len(found) == len(site.city.lots):
                break
    return found


def _mqtt(site: Site) -> dict[str, tuple[str, int | None]]:
    found: dict[str, tuple[str, int | None]] = {}
    for lot in site.city.lots:
        status = site.watcher.last(channels.lot_status_topic(site.city.id, lot.id))
        found[lot.id] = ("unknown", None) if status is None else (status["status"],
                                                                    status["free"])
    return found


_PARKAPI = {"open": "counted", "closed": "closed", "nodata": "unknown"}


def _parkapi(site: Site) -> dict[str, tuple[str, int | None]]:
    lots = site.get(f"/v1/parkapi?city={site.city.id}").json()["lots"]
    return {lot["id"]: (_PARKAPI[lot["state"]], lot.get("free")) for lot in lots}


_DATEX = {"spacesAvailable": "open", "almostFull": "almost_full", "full": "full"}


def _datex(site: Site) -> dict[str, tuple[str, int | None]]:
    root = ET.fromstring(site.get(f"/v1/datex2/parking-status?city={site.city.id}").content)
    found: dict[str, tuple[str, int | None]] = {}
    for info in root.iterfind("prk:parkingStatusInformation", NAMESPACES):
        reference = info.find("fac:reference", NAMESPACES)
        assert reference is not None
        if reference.get("id", "").endswith("/ev"):
            continue  # a lot's EV spaces (their own status), not the lot
        vacant = info.findtext("prk:occupancy/prk:numberOfVacantSpaces", namespaces=NAMESPACES)
        if info.findtext("fac:openingStatus", namespaces=NAMESPACES) == "closed":
            status = "closed"
        elif info.find("prk:parkingFault", NAMESPACES) is not None:
            status = "unknown"
        else:
            status = _DATEX[info.findtext("prk:status", namespaces=NAMESPACES) or ""]
        found[reference.get("id", "")] = (status, None if vacant is None else int(vacant))
    return found


def _signs(site: Site) -> dict[str, tuple[str, int | None]]:
    """What each lot's sign shows, rendered from the published status as signage hears it."""
    observations = {}
    for lot_id, (status, _) in _mqtt(site).items():
        payload = site.watcher.last(channels.lot_status_topic(site.city.id, lot_id))
        if payload is not None:
            updated = payload["updated"]
            observations[lot_id] = Observation(
                payload["free"], payload["capacity"], status,
                None if updated is None else datetime.fromisoformat(updated))
    found: dict[str, tuple[str, int | None]] = {}
    now = utc_now()
    text_status = {text: status for status, text in SIGN_TEXT.items()}
    for sign in site.city.signs:
        [line] = render(sign, site.city, observations, now)[0].lines
        lot_id = sign.lines[0].lots[0]
        found[lot_id] = ((text_status[line.text], None) if line.text in text_status
                         else ("open", int(line.text)))
    return found


def _coarse(status: str) -> str:
    return "counted" if status in {"open", "almost_full", "full"} else status


def test_every_output_says_the_same_of_every_lot(site: Site) -> None:
    expected = {site.lot(suffix): figures for suffix, figures in EXPECTED.items()}
    wait_for(lambda: _json(site) == expected, timeout=15)
    # The retained MQTT status follows an operator's closure at ingest's next status refresh
    # (INGEST_STALE_CHECK_S), not at once as the database's outputs do.
    wait_for(lambda: _mqtt(site) == expected, timeout=15)
    outputs = {"json": _json(site), "geojson": _geojson(site), "csv": _csv(site),
               "stream": _stream(site), "mqtt": _mqtt(site), "datex2": _datex(site)}
    for name, said in outputs.items():
        assert said == expected, name
    # ParkAPI knows open, closed and nodata only.
    assert _parkapi(site) == {lot_id: (_coarse(status), free)
                              for lot_id, (status, free) in expected.items()}
    # A sign shows the count of an open lot and a word for the other states; almost full
    # (8 free of 100) shows "fast voll", so its count is not on the sign.
    assert _signs(site) == {lot_id: (status, free if status == "open" else None)
                            for lot_id, (status, free) in expected.items()}


def test_parkapi_gives_free_disabled_where_every_disabled_bay_is_sensed(site: Site) -> None:
    wait_for(lambda: _json(site).get(site.lot("bays")) == EXPECTED["bays"], timeout=15)
    lots = _by_id(site.get(f"/v1/parkapi?city={site.city.id}").json()["lots"])
    assert lots[site.lot("bays")]["free:disabled"] == 1  # d-001 free, d-002 occupied
    assert lots[site.lot("bays")]["total:disabled"] == 2
    assert all("free:disabled" not in lot for lot_id, lot in lots.items()
               if lot_id != site.lot("bays"))  # no disabled bay is sensed there
    listed = _by_id(site.get(f"/v1/lots?city={site.city.id}").json()["lots"])
    assert listed[site.lot("bays")]["disabled"] == {"capacity": 2, "free": 1}
