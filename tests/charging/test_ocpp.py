"""The OCPP central system against real peers: the ``ocpp`` package's own ChargePoint (1.6 and
2.0.1) over real WebSockets, the real database and broker."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _citytoml import city_toml
from _helpers import Watcher, synchronous, utc_now, waited
from ocpp.exceptions import PropertyConstraintViolationError
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from charging import OCPP16_STATUS, OCPP201_STATUS, OcppService, hash_password
from core.channels import charger_state_topic
from core.charging import EvseStatus
from core.city import City, load_city
from core.registry import sync_registry
from core.settings import Settings


def evse_id(city_id: str, station: int, number: int) -> str:
    own = "".join(char for char in city_id.upper() if char.isalnum())
    return f"DE*TST*E{own}O{station}*{number}"


def ocpp_city_toml(city_id: str) -> str:
    """The test city with two OCPP stations: ``-ocpp-1`` (points 1 and 2; point 2 has two
    connectors) and ``-ocpp-2`` (point 1), and an OCPI station ``-ocpi-1``."""
    plug = ('\n[[chargers.evses.connectors]]\nstandard = "IEC_62196_T2"\nformat = "SOCKET"\n'
            'power_type = "AC_3_PHASE"\nmax_power_kw = 22.0\n')
    stations = ""
    for name, protocol, points in (("ocpp-1", "ocpp", (1, 2)), ("ocpp-2", "ocpp", (1,)),
                                   ("ocpi-1", "ocpi", (1,))):
        index = 3 if protocol == "ocpi" else int(name[-1])
        stations += (f'\n[[chargers]]\nid = "{city_id}-{name}"\nlot = "{city_id}-garage"\n'
                     f'name = "Ladestation {name}"\noperator = "city"\n'
                     f'protocol = "{protocol}"\n')
        for number in points:
            stations += (f'\n[[chargers.evses]]\nevse_id = "{evse_id(city_id, index, number)}"'
                         f'\nnumber = {number}\n' + plug * (2 if number == 2 else 1))
    return city_toml(city_id) + stations


@pytest.fixture
def ocpp_city(tmp_path: Path, conn: psycopg.Connection[Any]) -> City:
    city_id = f"t{secrets.token_hex(4)}"
    path = tmp_path / f"{city_id}.toml"
    path.write_text(ocpp_city_toml(city_id), encoding="utf-8")
    city = load_city(str(path))
    sync_registry(conn, city)
    return city


PASSWORD = "correct-horse-battery-staple-42"
OCPP16, OCPP201 = Subprotocol("ocpp1.6"), Subprotocol("ocpp2.0.1")


@pytest.fixture
def ocpp_settings(settings: Settings, tmp_path: Path, ocpp_city: City) -> Settings:
    credentials = tmp_path / "ocpp-credentials"
    # A low scrypt cost: the test pays it once per station.
    credentials.write_text("".join(
        f"{station.id}:{hash_password(PASSWORD, n=1024)}\n" for station in ocpp_city.chargers))
    return settings.model_copy(update={"OCPP_CREDENTIALS_FILE": credentials,
                                       "OCPP_HEARTBEAT_S": 120})


@contextlib.asynccontextmanager
async def central(settings: Settings, city: City) -> AsyncIterator[tuple[OcppService, str]]:
    """The central system on a free port, in this event loop; its base URL."""
    service = OcppService(settings, [city], port=0)
    task = asyncio.create_task(service.serve())
    await asyncio.wait_for(service.listening.wait(), 10)
    try:
        yield service, f"ws://127.0.0.1:{service.bound_port}/ocpp"
    finally:
        service.stop()
        await asyncio.wait_for(task, 30)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@contextlib.asynccontextmanager
async def station(url: str, station_id: str, version: str,
                  password: str = PASSWORD) -> AsyncIterator[Any]:
    """The ``ocpp`` package's ChargePoint of ``version``, connected as ``station_id``."""
    async with connect(f"{url}/{station_id}", additional_headers=basic(station_id, password),
                       subprotocols=[OCPP16 if version == "1.6" else OCPP201]) as link:
        client: Any = (ChargePoint16 if version == "1.6" else ChargePoint201)(station_id, link)
        reader = asyncio.create_task(client.start())
        try:
            yield client
        finally:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader


async def boot(client: Any, version: str) -> Any:
    if version == "1.6":
        return await client.call(call16.BootNotification(charge_point_model="T1",
                                                          charge_point_vendor="test"))
    return await client.call(call201.BootNotification(
        charging_station={"model": "T1", "vendor_name": "test"}, reason="PowerUp"))


async def status(client: Any, version: str, number: int, state: str, *,
                 connector: int = 1, suppress: bool = True) -> Any:
    stamp = utc_now().isoformat()
    if version == "1.6":
        return await client.call(call16.StatusNotification(
            connector_id=number, error_code="NoError", status=state, timestamp=stamp),
            suppress=suppress)
    return await client.call(call201.StatusNotification(
        timestamp=stamp, connector_status=state, evse_id=number, connector_id=connector),
        suppress=suppress)


def rows(db_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


@pytest.mark.parametrize(("version", "state", "expected"), [
    ("1.6", "Charging", "CHARGING"), ("1.6", "Faulted", "OUTOFORDER"),
    ("2.0.1", "Occupied", "CHARGING"), ("2.0.1", "Unavailable", "INOPERATIVE")])
@synchronous
async def test_boot_and_status_are_stored_and_published(
        ocpp_settings: Settings, ocpp_city: City, db_url: str, version: str, state: str,
        expected: str) -> None:
    station_id, point = f"{ocpp_city.id}-ocpp-1", evse_id(ocpp_city.id, 1, 2)
    topic = charger_state_topic(ocpp_city.id, point)
    async with central(ocpp_settings, ocpp_city) as (_, url), \
            station(url, station_id, version) as client:
        answer = await boot(client, version)
        assert answer.status == "Accepted" and answer.interval == 120
        assert await client.call(call16.Heartbeat() if version == "1.6"
                                 else call201.Heartbeat()) is not None
        assert await status(client, version, 2, state) is not None
    assert rows(db_url, "SELECT status, source FROM evse_status WHERE evse_id = %s",
                point) == [(expected, "ocpp")]
    assert rows(db_url, "SELECT status, source FROM evse_state WHERE evse_id = %s",
                point) == [(expected, "ocpp")]
    watcher = Watcher(ocpp_settings, topic)  # after the fact: the retained copy
    try:
        await waited(lambda: watcher.last(topic) is not None, 10)
        assert watcher.last(topic)["status"] == expected and topic in watcher.retained
    finally:
        watcher.close()


@synchronous
async def test_a_status_right_after_another_is_the_newer(ocpp_settings: Settings,
                                                         ocpp_city: City, db_url: str) -> None:
    """Two statuses in one second (the timestamps' resolution): both stored, the second
    is the state."""
    point = evse_id(ocpp_city.id, 1, 1)
    stamp = utc_now().replace(microsecond=0).isoformat()
    async with central(ocpp_settings, ocpp_city) as (_, url), \
            station(url, f"{ocpp_city.id}-ocpp-1", "1.6") as client:
        for state in ("Preparing", "Available"):
            await client.call(call16.StatusNotification(
                connector_id=1, error_code="NoError", status=state, timestamp=stamp))
    assert rows(db_url, "SELECT status FROM evse_status WHERE evse_id = %s ORDER BY time",
                point) == [("CHARGING",), ("AVAILABLE",)]
    assert rows(db_url, "SELECT status FROM evse_state WHERE evse_id = %s",
                point) == [("AVAILABLE",)]


@synchronous
async def test_unknown_and_unauthenticated_stations_are_refused(
        ocpp_settings: Settings, ocpp_city: City) -> None:
    async with central(ocpp_settings, ocpp_city) as (service, url):
        cases = [
            (f"{ocpp_city.id}-nowhere", basic(f"{ocpp_city.id}-nowhere", PASSWORD), 404),
            (f"{ocpp_city.id}-ocpi-1", basic(f"{ocpp_city.id}-ocpi-1", PASSWORD), 404),
            (f"{ocpp_city.id}-ocpp-1", basic(f"{ocpp_city.id}-ocpp-1", "wrong-password-123"),
             401),
            (f"{ocpp_city.id}-ocpp-1", basic(f"{ocpp_city.id}-ocpp-2", PASSWORD), 401),
            (f"{ocpp_city.id}-ocpp-1", {}, 401),
        ]
        for station_id, headers, code in cases:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(f"{url}/{station_id}", additional_headers=headers,
                                   subprotocols=[OCPP16]):
                    pass
            assert refused.value.response.status_code == code, station_id
        # Without a subprotocol we speak: refused at the handshake too.
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{url}/{ocpp_city.id}-ocpp-1",
                               additional_headers=basic(f"{ocpp_city.id}-ocpp-1", PASSWORD),
                               subprotocols=[Subprotocol("ocpp1.5")]):
                pass
        assert refused.value.response.status_code == 400
        # What Prometheus sees (a guessed password shows apart from an unknown station).
        for reason, count in (("unknown", 2), ("credentials", 3)):
            assert sample(service, "parkleit_ocpp_connections_refused_total",
                          reason=reason) == count
        assert sample(service, "parkleit_ocpp_stations_connected") == 0


def sample(service: OcppService, name: str, **labels: str) -> float | None:
    return service.metrics.registry.get_sample_value(name, labels)


@synchronous
async def test_unknown_connector_is_refused_while_another_station_goes_on(
        ocpp_settings: Settings, ocpp_city: City, db_url: str) -> None:
    first, second = f"{ocpp_city.id}-ocpp-1", f"{ocpp_city.id}-ocpp-2"
    async with central(ocpp_settings, ocpp_city) as (_, url), \
            station(url, first, "1.6") as old, station(url, second, "2.0.1") as new:
        await boot(old, "1.6")
        await boot(new, "2.0.1")
        with pytest.raises(PropertyConstraintViolationError):
            await status(old, "1.6", 7, "Charging", suppress=False)
        with pytest.raises(PropertyConstraintViolationError):  # EVSE 1 has one connector
            await status(new, "2.0.1", 1, "Occupied", connector=2, suppress=False)
        with pytest.raises(PropertyConstraintViolationError):
            await status(new, "2.0.1", 3, "Occupied", suppress=False)
        # Both links stay up and are heard.
        assert await status(new, "2.0.1", 1, "Occupied") is not None
        assert await status(old, "1.6", 1, "Available") is not None
    assert rows(db_url, "SELECT evse_id, status FROM evse_state ORDER BY evse_id") == sorted([
        (evse_id(ocpp_city.id, 1, 1), "AVAILABLE"), (evse_id(ocpp_city.id, 2, 1), "CHARGING")])
    letters = rows(db_url, "SELECT topic, reason FROM dead_letters ORDER BY id")
    assert [topic for topic, _ in letters] == [f"ocpp/{first}", f"ocpp/{second}",
                                               f"ocpp/{second}"]
    assert "connector 7" in letters[0][1] and "no connector 2" in letters[1][1]
    assert "EVSE 3" in letters[2][1]


async def exchange(link: ClientConnection, frame: str) -> list[Any]:
    await link.send(frame)
    answer: list[Any] = json.loads(await asyncio.wait_for(link.recv(), 10))
    return answer


@synchronous
async def test_malformed_calls_get_a_call_error_and_a_dead_letter(
        ocpp_settings: Settings, ocpp_city: City, db_url: str) -> None:
    station_id = f"{ocpp_city.id}-ocpp-2"
    async with central(ocpp_settings, ocpp_city) as (service, url), \
            connect(f"{url}/{station_id}", additional_headers=basic(station_id, PASSWORD),
                    subprotocols=[OCPP16]) as link:
        assert sample(service, "parkleit_ocpp_stations_connected") == 1
        assert (await exchange(link, "this is no JSON"))[:3] == [4, "-1", "FormatViolation"]
        assert (await exchange(link, '[2, "m2", "StatusNotification", {"connectorId": "one",'
                               ' "errorCode": "NoError", "status": "Available"}]'))[:3] == [
            4, "m2", "TypeConstraintViolation"]
        assert (await exchange(link, '[2, "m3", "StatusNotification", {"connectorId": 1, '
                               '"errorCode": "NoError", "status": "Sleeping"}]'))[:3] == [
            4, "m3", "FormatViolation"]
        assert (await exchange(link, '[2, "m4", "StatusNotification", {"connectorId": 1}]'
                               ))[:3] == [4, "m4", "ProtocolError"]
        assert (await exchange(link, '[2, "m5", "Authorize", {"idTag": "ABC"}]'))[:3] == [
            4, "m5", "NotImplemented"]
        assert (await exchange(link, '[2, "m6", "Teleport", {}]'))[:3] == [
            4, "m6", "NotSupported"]
        # The link is still good.
        assert (await exchange(link, '[2, "m7", "Heartbeat", {}]'))[:2] == [3, "m7"]
        assert sample(service, "parkleit_ocpp_dead_letters_total") == 6
    letters = rows(db_url, "SELECT topic, reason FROM dead_letters ORDER BY id")
    assert len(letters) == 6 and {topic for topic, _ in letters} == {f"ocpp/{station_id}"}
    assert letters[0][1].startswith("FormatViolation")
    assert letters[4][1].startswith("Authorize: NotImplemented")


def test_the_mapping_covers_every_ocpp_status() -> None:
    from ocpp.v16.enums import ChargePointStatus
    from ocpp.v201.enums import ConnectorStatusEnumType

    assert set(OCPP16_STATUS) == {status.value for status in ChargePointStatus}
    assert set(OCPP201_STATUS) == {status.value for status in ConnectorStatusEnumType}
    assert OCPP16_STATUS["SuspendedEV"] is EvseStatus.CHARGING
    assert OCPP201_STATUS["Faulted"] is EvseStatus.OUTOFORDER


@synchronous
async def test_simulated_stations_come_back_after_going_offline(
        ocpp_settings: Settings, ocpp_city: City, db_url: str) -> None:
    """At this speed a station goes offline at its first look (a fault): it reconnects, boots
    again and reports every point again, and nothing it sends is refused."""
    from simulators.chargers import run_chargers

    passwords = {station.id: PASSWORD for station in ocpp_city.chargers}
    async with central(ocpp_settings, ocpp_city) as (_, url):
        stop = asyncio.Event()
        running = asyncio.create_task(run_chargers(
            ocpp_city, stop, url=url, passwords=passwords, clock=ocpp_settings.clock,
            speed=1e6, faults=True))
        await asyncio.sleep(4)
        stop.set()
        report = await asyncio.wait_for(running, 15)
    assert report.faults["offline"] >= 2 and report.connects >= 4
    assert report.calls["BootNotification"] == report.connects
    assert report.refused == report.failed_connects == 0
    assert rows(db_url, "SELECT count(*) FROM evse_state WHERE source = 'ocpp'") == [(3,)]
    assert rows(db_url, "SELECT count(*) FROM dead_letters") == [(0,)]


@synchronous
async def test_meter_values_and_transactions_are_accepted_for_points_the_station_has(
        ocpp_settings: Settings, ocpp_city: City, db_url: str) -> None:
    sample = [{"timestamp": utc_now().isoformat(), "sampled_value": [
        {"value": 11000.0, "measurand": "Power.Active.Import"}]}]
    async with central(ocpp_settings, ocpp_city) as (_, url), \
            station(url, f"{ocpp_city.id}-ocpp-1", "2.0.1") as client:
        assert await client.call(call201.MeterValues(evse_id=2, meter_value=sample)) is not None
        assert await client.call(call201.TransactionEvent(
            event_type="Started", timestamp=utc_now().isoformat(), trigger_reason="CablePluggedIn",
            seq_no=0, transaction_info={"transaction_id": "tx-1"},
            evse={"id": 1, "connector_id": 1})) is not None
        with pytest.raises(PropertyConstraintViolationError):
            await client.call(call201.MeterValues(evse_id=5, meter_value=sample),
                              suppress=False)
        with pytest.raises(PropertyConstraintViolationError):
            await client.call(call201.TransactionEvent(
                event_type="Started", timestamp=utc_now().isoformat(),
                trigger_reason="CablePluggedIn", seq_no=1,
                transaction_info={"transaction_id": "tx-2"}, evse={"id": 4}), suppress=False)
    assert rows(db_url, "SELECT count(*) FROM dead_letters") == [(2,)]
    assert rows(db_url, "SELECT count(*) FROM evse_status") == [(0,)]  # no status was sent


@synchronous
async def test_a_station_that_connects_again_replaces_its_older_link(
        ocpp_settings: Settings, ocpp_city: City) -> None:
    station_id = f"{ocpp_city.id}-ocpp-2"
    async with central(ocpp_settings, ocpp_city) as (service, url), \
            connect(f"{url}/{station_id}", additional_headers=basic(station_id, PASSWORD),
                    subprotocols=[OCPP16]) as old:
        await waited(lambda: station_id in service.links, 5)
        async with station(url, station_id, "2.0.1") as new:
            await asyncio.wait_for(old.wait_closed(), 5)
            assert old.close_code == 1000
            assert await boot(new, "2.0.1") is not None
            assert service.links[station_id].subprotocol == OCPP201


@synchronous
async def test_a_changed_credentials_file_is_read_again(ocpp_settings: Settings,
                                                        ocpp_city: City) -> None:
    station_id = f"{ocpp_city.id}-ocpp-1"
    path = ocpp_settings.OCPP_CREDENTIALS_FILE
    assert path is not None
    async with central(ocpp_settings, ocpp_city) as (_, url):
        async with station(url, station_id, "1.6") as client:
            assert await boot(client, "1.6") is not None
        path.write_text(f"{station_id}:{hash_password('a-new-password-of-32-chars', n=1024)}\n")
        with pytest.raises(InvalidStatus) as refused:
            async with station(url, station_id, "1.6"):
                pass
        assert refused.value.response.status_code == 401
        async with station(url, station_id, "1.6", password="a-new-password-of-32-chars") as c:
            assert await boot(c, "1.6") is not None
        path.write_text("garbage\n")  # unreadable: every station refused until it is fixed
        with pytest.raises(InvalidStatus):
            async with station(url, station_id, "1.6", password="a-new-password-of-32-chars"):
                pass


@synchronous
async def test_over_tls_security_profile_2(ocpp_settings: Settings, ocpp_city: City,
                                           tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    settings = ocpp_settings.model_copy(update={"OCPP_TLS_CERT_FILE": cert,
                                                "OCPP_TLS_KEY_FILE": key})
    trust = ssl.create_default_context(cafile=str(cert))
    station_id = f"{ocpp_city.id}-ocpp-1"
    async with central(settings, ocpp_city) as (_, url):
        secure = url.replace("ws://", "wss://")
        async with connect(f"{secure}/{station_id}", ssl=trust, subprotocols=[OCPP201],
                           additional_headers=basic(station_id, PASSWORD)) as link:
            client = ChargePoint201(station_id, link)
            reader = asyncio.create_task(client.start())
            assert (await boot(client, "2.0.1")).status == "Accepted"
            reader.cancel()
        with pytest.raises(InvalidStatus) as refused:  # TLS does not replace the password
            async with connect(f"{secure}/{station_id}", ssl=trust, subprotocols=[OCPP201]):
                pass
        assert refused.value.response.status_code == 401
        with pytest.raises((OSError, InvalidHandshake)):  # no plain ws on the TLS port
            async with connect(f"{url}/{station_id}", subprotocols=[OCPP201],
                               additional_headers=basic(station_id, PASSWORD), open_timeout=5):
                pass
        # The simulated stations over wss, trusting that certificate.
        from simulators.chargers import run_chargers

        stop = asyncio.Event()
        running = asyncio.create_task(run_chargers(
            ocpp_city, stop, url=secure, clock=ocpp_settings.clock, faults=False,
            passwords={station.id: PASSWORD for station in ocpp_city.chargers}, ca_file=cert))
        await waited(lambda: rows(
            ocpp_settings.DATABASE_URL, "SELECT count(*) FROM evse_state") == [(3,)], 10)
        stop.set()
        report = await asyncio.wait_for(running, 15)
        assert report.connects == 2 and report.failed_connects == report.refused == 0


@synchronous
async def test_a_station_without_a_link_has_its_points_unknown(
        ocpp_settings: Settings, ocpp_city: City, db_url: str) -> None:
    """Stale is not free: a station that never came or lost its link has its points UNKNOWN
    after OCPP_STALE_AFTER_S (since it was last heard of); once back its statuses count."""
    settings = ocpp_settings.model_copy(update={"OCPP_STALE_AFTER_S": 1.0})
    first, second = evse_id(ocpp_city.id, 1, 1), evse_id(ocpp_city.id, 2, 1)

    def states() -> dict[str, str]:
        return dict(rows(db_url, "SELECT evse_id, status FROM evse_state"))

    async with central(settings, ocpp_city) as (service, url):
        async with station(url, f"{ocpp_city.id}-ocpp-1", "1.6") as client:
            await status(client, "1.6", 1, "Charging")
            await waited(lambda: states().get(second) == "UNKNOWN", 5)  # ocpp-2 never came
            assert states()[first] == "CHARGING"  # linked: its own word stands
            assert sample(service, "parkleit_ocpp_stations_unknown") == 1
        lost = utc_now()
        await waited(lambda: states().get(first) == "UNKNOWN", 5)
        await waited(lambda: sample(service, "parkleit_ocpp_stations_unknown") == 2, 5)
        async with station(url, f"{ocpp_city.id}-ocpp-1", "1.6") as client:
            await status(client, "1.6", 1, "Available")
        assert states()[first] == "AVAILABLE"
    [(since,)] = rows(db_url, "SELECT time FROM evse_status WHERE evse_id = %s AND "
                      "status = 'UNKNOWN'", first)
    assert abs((since - lost).total_seconds()) < 0.5  # unknown since the link was lost
