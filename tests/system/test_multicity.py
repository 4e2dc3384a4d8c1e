"""Several cities in one installation: the shipped configs together, ids unique across cities
(in the configs and in the shared registry), and two ingest workers side by side on one broker
and one database."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from _helpers import ROOT, ServiceProcess, Watcher, base_env, service_env, utc_now, wait_for
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.city import CITIES_DIR, City, CityConfigError, load_cities, load_city
from core.registry import RegistryConflict, sync_registry
from core.settings import Settings
from simulators._mqtt import mqtt_client

NAUMBURG = CITIES_DIR / "naumburg.toml"
ZEITZ = CITIES_DIR / "zeitz.toml"

# Text edits of naumburg.toml that give it an id Zeitz has: (old, new) pairs, every occurrence.
LOT_CLASH = [('"naumburg-vogelwiese"', '"zeitz-rossmarkt"')]
BAY_CLASH = [('id = "naumburg-markt-l02"', 'id = "zeitz-bruehl-l02"')]
GROUP_CLASH = [('prefix = "naumburg-georgenberg"', 'prefix = "zeitz-steinsgraben"')]
DEVICE_CLASH = [('"70b3d57ed005c102"', '"70B3D57ED005A102"')]  # Zeitz's, in capitals
SIGN_CLASH = [('"naumburg-vms-b87-weimar"', '"zeitz-vms-b2-nord"')]
APP_CLASH = [('"naumburg-parking@ttn"', '"zeitz-parking@ttn"')]


def edited(tmp_path: Path, edits: list[tuple[str, str]], source: Path = NAUMBURG) -> Path:
    """A copy of ``source`` with the text edits applied (each must apply)."""
    text = source.read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"edited-{secrets.token_hex(3)}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def now_iso() -> str:
    return utc_now().isoformat()


# --------------------------------------------------------------------------------------------
# The configs
# --------------------------------------------------------------------------------------------


def _ids(city: City) -> dict[str, set[str]]:
    return {
        "lot": {lot.id for lot in city.lots},
        "bay": {bay.id for _, bay in city.bays()},
        "dev_eui": {bay.dev_eui for _, bay in city.bays() if bay.dev_eui},
        "sign": {sign.id for sign in city.signs},
        "application": {*city.lorawan.ttn_applications, *city.lorawan.chirpstack_applications},
        "sign address": {sign.address for sign in city.signs},
    }


def test_the_shipped_cities_load_together_and_share_no_id() -> None:
    zeitz, naumburg = load_cities(["zeitz", "naumburg"])
    assert (zeitz.id, naumburg.id) == ("zeitz", "naumburg")
    assert [c.id for c in load_cities(["naumburg", "zeitz"])] == ["naumburg", "zeitz"]
    ours, theirs = _ids(naumburg), _ids(zeitz)
    for kind in ours:
        assert ours[kind], kind
        assert not ours[kind] & theirs[kind], kind  # sign addresses: simulators side by side
    for kind in ("lot", "bay", "sign"):
        assert all(ident.startswith("naumburg-") for ident in ours[kind]), kind
    assert naumburg.lorawan.ttn_applications == ("naumburg-parking@ttn",)
    # A small but complete example: both counting kinds, LoRaWAN on both networks, a P+R,
    # signs of two drivers, a weekly market and a dated event.
    assert naumburg.city.illustrative and naumburg.city.state == "ST"
    assert naumburg.city.timezone == "Europe/Berlin"
    assert 4 <= len(naumburg.lots) <= 8
    assert {lot.counting for lot in naumburg.lots} == {"counter", "bays"}
    assert {bay.network for _, bay in naumburg.bays()} == {"native", "ttn", "chirpstack"}
    assert "park_and_ride" in {lot.profile for lot in naumburg.lots}
    assert sorted(sign.driver for sign in naumburg.signs) == ["http", "ntcip1203"]
    assert {event.kind for event in naumburg.events} == {"market", "event"}
    head = NAUMBURG.read_text(encoding="utf-8")[:2000]
    assert head.startswith("#")
    for mark in ("ILLUSTRATIVE EXAMPLE DATA", "BEISPIELDATEN", "ERFUNDENE", "INVENTED"):
        assert mark in head


@pytest.mark.parametrize(("edits", "clash"), [
    (LOT_CLASH, "lot 'zeitz-rossmarkt'"),
    (BAY_CLASH, "bay 'zeitz-bruehl-l02'"),
    (GROUP_CLASH, "bay 'zeitz-steinsgraben-001'"),
    (DEVICE_CLASH, "dev_eui '70b3d57ed005a102'"),
    (SIGN_CLASH, "sign 'zeitz-vms-b2-nord'"),
    (APP_CLASH, "LoRaWAN application 'zeitz-parking@ttn'"),
], ids=["lot", "bay", "generated-bay", "dev_eui", "sign", "lorawan-app"])
def test_load_cities_refuses_an_id_of_another_city(
        tmp_path: Path, edits: list[tuple[str, str]], clash: str) -> None:
    path = edited(tmp_path, edits)
    load_city(str(path))  # on its own the edited config is fine: the clash is across cities
    with pytest.raises(CityConfigError) as refused:
        load_cities(["zeitz", str(path)])
    assert str(refused.value) == f"{path}: {clash} is also in city 'zeitz'"
    with pytest.raises(CityConfigError) as refused:
        load_cities([str(path), "zeitz"])
    assert str(refused.value) == f"{ZEITZ}: {clash} is also in city 'naumburg'"


def test_load_cities_refuses_a_city_id_twice(tmp_path: Path) -> None:
    path = edited(tmp_path, [('id = "naumburg"\n', 'id = "zeitz"\n')])
    with pytest.raises(CityConfigError) as refused:
        load_cities(["zeitz", str(path)])
    assert str(refused.value).startswith(f"{path}: city id 'zeitz'")
    with pytest.raises(CityConfigError, match="no city configured"):
        load_cities([])


# --------------------------------------------------------------------------------------------
# One registry for both cities
# --------------------------------------------------------------------------------------------


_OF_CITY = " WHERE l.city = %(city)s OR %(city)s::text IS NULL ORDER BY 1"
REGISTRY = {  # the first column is the id
    "lots": "SELECT l.* FROM lots AS l" + _OF_CITY,
    "bays": "SELECT b.* FROM bays AS b JOIN lots AS l USING (lot_id)" + _OF_CITY,
    "signs": "SELECT l.* FROM signs AS l" + _OF_CITY,
    "lot_state": "SELECT s.* FROM lot_state AS s JOIN lots AS l USING (lot_id)" + _OF_CITY,
}


def registry(conn: psycopg.Connection[Any], city_id: str | None = None) -> dict[str, list[Any]]:
    """Every registry row (of one city, or of all), for before/after comparisons."""
    return {name: conn.execute(query, {"city": city_id}).fetchall()
            for name, query in REGISTRY.items()}


def test_one_registry_holds_both_cities(conn: psycopg.Connection[Any]) -> None:
    zeitz, naumburg = load_cities(["zeitz", "naumburg"])
    sync_registry(conn, zeitz)
    zeitz_rows = registry(conn, "zeitz")
    sync_registry(conn, naumburg)
    by_city = conn.execute("SELECT city, array_agg(lot_id ORDER BY lot_id) FROM lots "
                           "GROUP BY city ORDER BY city").fetchall()
    assert by_city == [("naumburg", sorted(_ids(naumburg)["lot"])),
                       ("zeitz", sorted(_ids(zeitz)["lot"]))]
    signs = conn.execute("SELECT city, count(*) FROM signs GROUP BY city ORDER BY city")
    assert signs.fetchall() == [("naumburg", 2), ("zeitz", len(zeitz.signs))]
    assert registry(conn, "zeitz") == zeitz_rows  # syncing Naumburg left Zeitz alone
    assert len(registry(conn, "naumburg")["bays"]) == len(_ids(naumburg)["bay"])
    assert len(registry(conn)["lot_state"]) == len(zeitz.lots) + len(naumburg.lots)

    # Naumburg loses a lot (with its bays) and a sign: gone from Naumburg only.
    smaller = naumburg.model_copy(update={
        "lots": tuple(lot for lot in naumburg.lots if lot.id != "naumburg-georgenberg"),
        "signs": naumburg.signs[:1]})
    sync_registry(conn, smaller)
    naumburg_rows = registry(conn, "naumburg")
    assert [row[0] for row in naumburg_rows["lots"]] == sorted(
        _ids(naumburg)["lot"] - {"naumburg-georgenberg"})
    assert [row[0] for row in naumburg_rows["signs"]] == [naumburg.signs[0].id]
    assert not [row for row in naumburg_rows["bays"] if row[0].startswith("naumburg-georgenberg")]
    assert registry(conn, "zeitz") == zeitz_rows
    sync_registry(conn, zeitz)  # and Zeitz's sync keeps Naumburg's
    assert registry(conn, "naumburg") == naumburg_rows


@pytest.mark.parametrize(("edits", "clash"), [
    (LOT_CLASH, "lot 'zeitz-rossmarkt'"),
    (BAY_CLASH, "bay 'zeitz-bruehl-l02'"),
    (DEVICE_CLASH, "device '70b3d57ed005a102'"),
    (SIGN_CLASH, "sign 'zeitz-vms-b2-nord'"),
], ids=["lot", "bay", "device", "sign"])
def test_the_registry_refuses_an_id_of_another_city_and_writes_nothing(
        conn: psycopg.Connection[Any], tmp_path: Path, edits: list[tuple[str, str]],
        clash: str) -> None:
    sync_registry(conn, load_city("zeitz"))
    sync_registry(conn, load_city("naumburg"))
    before = registry(conn)
    # Besides the clash, the config renames a lot: not written either.
    path = edited(tmp_path, [*edits, ('"Parkhaus Marientor"', '"Parkhaus Marientor Neu"')])
    with pytest.raises(RegistryConflict) as refused:
        sync_registry(conn, load_city(str(path)))
    assert isinstance(refused.value, CityConfigError)  # the CLI exits 2 on those
    assert str(refused.value).startswith(f"{clash} of city 'naumburg' is already city 'zeitz''s")
    assert registry(conn) == before


def test_a_clash_is_refused_while_the_other_city_syncs(
        db_url: str, conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    """Two workers of two cities start at once: the second's check must not miss the first's
    uncommitted lots (else its upsert, once the first commits, takes the lot over)."""
    clash = load_city(str(edited(tmp_path, LOT_CLASH)))
    outcome: list[object] = []

    def second() -> None:
        try:
            sync_registry(conn, clash)
            outcome.append("synced")
        except CityConfigError as exc:
            outcome.append(exc)

    with psycopg.connect(db_url) as first:
        first.execute("SELECT 1")  # an open transaction: the sync below is not committed yet
        sync_registry(first, load_city("zeitz"))
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(1.0)
        first.commit()
    thread.join(20)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], RegistryConflict), outcome
    row = conn.execute("SELECT city FROM lots WHERE lot_id = 'zeitz-rossmarkt'").fetchone()
    assert row == ("zeitz",)


def private_edits(name: str, token: str) -> list[tuple[str, str]]:
    """Edits giving the shipped config ``name`` the city id ``{name}-{token}`` and LoRaWAN
    applications of its own: the broker is shared (a demo may be running on it), so the topics
    are this test's alone. Lots, bays and signs stay as shipped."""
    apps = _ids(load_city(name))["application"]
    return [(f'id = "{name}"\n', f'id = "{name}-{token}"\n'),
            *((f'"{app}"', f'"{token}-{app}"') for app in apps)]


def test_ingest_with_a_clashing_config_exits_2_with_one_line(
        db_url: str, mqtt_url: str, conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    sync_registry(conn, load_city("zeitz"))
    before = registry(conn)
    token = secrets.token_hex(3)  # should it not stop, its topics are still its own
    env = base_env()
    env.update({"PARKLEIT_DATABASE_URL": db_url, "PARKLEIT_MQTT_URL": mqtt_url,
                "PARKLEIT_CITY": str(edited(tmp_path, [*LOT_CLASH,
                                                       *private_edits("naumburg", token)])),
                "PARKLEIT_INGEST_CLIENT_ID": f"ingest-clash-{token}",
                "PARKLEIT_INGEST_METRICS_PORT": "0"})
    result = subprocess.run([sys.executable, "-m", "parkleit", "ingest"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"parkleit: lot 'zeitz-rossmarkt' of city 'naumburg-{token}' is already city 'zeitz''s: "
        "ids are unique across the cities of an installation"]
    assert registry(conn) == before


# --------------------------------------------------------------------------------------------
# Two cities side by side: one broker, one database, an ingest worker each
# --------------------------------------------------------------------------------------------


def private_copy(tmp_path: Path, name: str, token: str) -> Path:
    """The shipped config of ``name``, with ``private_edits``."""
    path = edited(tmp_path, private_edits(name, token), CITIES_DIR / f"{name}.toml")
    return path.rename(tmp_path / f"{name}-{token}.toml")


def forget(settings: Settings, client_ids: list[str], topics: list[str]) -> None:
    """Leave nothing on the shared broker: end the persistent sessions, clear retained topics."""
    for client_id in client_ids:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5)
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 0
        client.connect(settings.mqtt.host, settings.mqtt.port, clean_start=True,
                       properties=properties)
        client.loop_start()
        client.publish("parkleit/test/noop", b"", qos=1).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()
    publisher = mqtt_client(settings, f"forget-{secrets.token_hex(4)}")
    for topic in topics:
        publisher.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    publisher.disconnect()
    publisher.loop_stop()


def shown(watcher: Watcher, topic: str) -> tuple[int, int, str] | None:
    """Occupied, free and status of the last lot status on ``topic``."""
    payload = watcher.last(topic)
    return (payload["occupied"], payload["free"], payload["status"]) if payload else None


def shows(watcher: Watcher, topic: str, expected: tuple[int, int, str]) -> bool:
    return shown(watcher, topic) == expected


def test_two_cities_side_by_side_on_one_broker_and_database(
        spawn: Callable[..., ServiceProcess], db_url: str, mqtt_url: str,
        tmp_path: Path) -> None:
    token = secrets.token_hex(3)
    configs = {name: private_copy(tmp_path, name, token) for name in ("zeitz", "naumburg")}
    zeitz, naumburg = load_cities(str(path) for path in configs.values())
    zid, nid = zeitz.id, naumburg.id
    settings = {city.id: Settings(DATABASE_URL=db_url, MQTT_URL=mqtt_url, CITY=str(path),
                                  INGEST_CLIENT_ID=f"ingest-{city.id}", INGEST_METRICS_PORT=0)
                for city, path in zip((zeitz, naumburg), configs.values(), strict=True)}
    watcher = Watcher(settings[zid], f"parkleit/v1/{zid}/#", f"parkleit/v1/{nid}/#")
    workers = [spawn(["ingest"], service_env(s), name=f"ingest-{cid}")
               for cid, s in settings.items()]

    def service_is(presence: str) -> bool:
        return all(watcher.last(f"parkleit/v1/{cid}/services/{s.INGEST_CLIENT_ID}") == presence
                   for cid, s in settings.items())

    try:
        wait_for(lambda: service_is("online"), timeout=30)  # sent after its subscription
        publisher = mqtt_client(settings[zid], f"pub-{token}")
        try:
            messages: list[tuple[str, dict[str, object]]] = [
                (f"parkleit/v1/{zid}/lots/zeitz-rossmarkt/counter", {"occupied": 200}),
                (f"parkleit/v1/{zid}/bays/zeitz-steinsgraben-001", {"occupied": True}),
                (f"parkleit/v1/{nid}/lots/naumburg-vogelwiese/counter",
                 {"entries": 75, "exits": 5}),
                (f"parkleit/v1/{nid}/bays/naumburg-markt-003", {"occupied": True}),
                # Each under the other city's prefix: rejected, never counted.
                (f"parkleit/v1/{zid}/lots/naumburg-vogelwiese/counter", {"occupied": 7}),
                (f"parkleit/v1/{nid}/bays/zeitz-steinsgraben-002", {"occupied": True}),
            ]
            for topic, body in messages:
                publisher.publish(topic, json.dumps({**body, "ts": now_iso()}),
                                  qos=1).wait_for_publish(5)
        finally:
            publisher.disconnect()
            publisher.loop_stop()

        with psycopg.connect(db_url, autocommit=True) as conn:
            wait_for(lambda: conn.execute(
                "SELECT count(*) FROM dead_letters").fetchone() == (2,))
            assert sorted(conn.execute("SELECT topic, reason FROM dead_letters").fetchall()) == [
                (f"parkleit/v1/{nid}/bays/zeitz-steinsgraben-002",
                 "unknown bay 'zeitz-steinsgraben-002'"),
                (f"parkleit/v1/{zid}/lots/naumburg-vogelwiese/counter",
                 "unknown lot 'naumburg-vogelwiese'")]
            states = "SELECT l.city, s.lot_id, s.occupied FROM lot_state AS s JOIN lots AS l " \
                     "USING (lot_id) WHERE s.updated IS NOT NULL ORDER BY 2"
            assert wait_for(lambda: len(conn.execute(states).fetchall()) == 4)
            assert conn.execute(states).fetchall() == [
                (nid, "naumburg-markt", 1), (nid, "naumburg-vogelwiese", 70),
                (zid, "zeitz-rossmarkt", 200), (zid, "zeitz-steinsgraben", 1)]
            assert conn.execute("SELECT bay_id FROM bay_events ORDER BY 1").fetchall() == [
                ("naumburg-markt-003",), ("zeitz-steinsgraben-001",)]

        # Each lot's status on its own city's topic, retained for a late subscriber.
        status = {f"parkleit/v1/{zid}/lots/zeitz-rossmarkt/status": (200, 40, "open"),
                  f"parkleit/v1/{nid}/lots/naumburg-vogelwiese/status": (70, 130, "open")}
        for topic, expected in status.items():
            wait_for(partial(shows, watcher, topic, expected))
        late = Watcher(settings[nid], *status)
        try:
            for topic, expected in status.items():
                wait_for(partial(late.last, topic))
                assert shown(late, topic) == expected and topic in late.retained, topic
        finally:
            late.close()
        assert not [topic for topic in watcher.topics() if topic.endswith("/status")
                    and topic.startswith((f"parkleit/v1/{zid}/lots/naumburg-",
                                          f"parkleit/v1/{nid}/lots/zeitz-"))]
        for worker in workers:
            assert worker.terminate() == 0
        wait_for(lambda: service_is("offline"))
    finally:
        for worker in workers:
            worker.close()
        watcher.close()
        forget(settings[zid], [s.INGEST_CLIENT_ID for s in settings.values()],
               watcher.topics())
