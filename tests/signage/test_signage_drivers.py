"""The ``http`` and ``mqtt`` sign drivers against simulated signs over real sockets (HTTP on
localhost, MQTT through the test broker): content shown, refusals with their reason, a silent
sign that holds up nobody else, a sign that comes back, and the sign's own fallback."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import pytest
from _helpers import synchronous, waited

from core.city import City, Sign, SignLine
from core.settings import Settings
from parkleit.embedded import ServiceStack
from signage import Arrow, LineContent, SignContent, SignDriver, SignError
from signage._drivers import DRIVER_FACTORIES, Drivers
from signage._http_driver import HttpDriver
from signage._mqtt_driver import MqttDriver
from signage._ntcip_driver import NtcipDriver
from simulators._json_sign import JsonSignModel
from simulators.signs import run_signs
from simulators.signs_http import HttpSignSimulator
from simulators.signs_mqtt import MqttSignSimulator

Kind = Literal["http", "mqtt"]
WIDTH = 20  # the default line_width, which the simulated signs have too
LINES: tuple[tuple[str, Arrow], ...] = (
    ("Altmarkt", "straight"), ("P+R Bahnhof", "left"), ("Zentrum", "right"))


def _sign(kind: str, address: str, sign_id: str = "vms-1", safe_state: str = "--") -> Sign:
    return Sign.model_validate({
        "id": sign_id, "name": sign_id, "driver": kind, "address": address,
        "latitude": 51.05, "longitude": 12.14, "display": {"safe_state": safe_state},
        "lines": [SignLine(lots=("lot",), label=label, arrow=arrow) for label, arrow in LINES]})


def _content(*texts: str, sign_id: str = "vms-1") -> SignContent:
    return SignContent(sign_id, tuple(LineContent(label, arrow, text)
                                      for (label, arrow), text in zip(LINES, texts, strict=False)))


def _line(arrow: str, label: str, text: str = "") -> str:
    """A line as the simulated sign shows it: arrow, label, the text flush right."""
    return f"{arrow} {label}{text.rjust(WIDTH - len(label))}".rstrip()


CONTENT = _content("123", "besetzt", "")
SHOWN = (_line("↑", "Altmarkt", "123"), _line("←", "P+R Bahnhof", "besetzt"),
         _line("→", "Zentrum"))
FALLBACK = (_line("↑", "Altmarkt", "--"), _line("←", "P+R Bahnhof", "--"),
            _line("→", "Zentrum", "--"))


class Harness:
    """Simulated signs of one kind and drivers for them; leaving ``async with`` closes the
    drivers and stops every sign."""

    def __init__(self, kind: Kind, settings: Settings | None, prefix: str) -> None:
        self.kind = kind
        self.settings = settings
        self.prefix = prefix
        self._stops: dict[str, Callable[[], Awaitable[None]]] = {}
        self._drivers: list[SignDriver] = []

    async def __aenter__(self) -> Harness:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for driver in self._drivers:
            await driver.close()
        await self.close()

    def driver(self, **options: Any) -> SignDriver:
        driver: SignDriver = (HttpDriver(**options) if self.kind == "http"
                              else MqttDriver(self.settings, **options))
        self._drivers.append(driver)
        return driver

    async def serve(self, model: JsonSignModel, address: str | None = None) -> str:
        """Start a sign for ``model``: its address (``address`` again for a restart)."""
        if self.kind == "http":
            port = int(address.rsplit(":", 1)[1].split("/")[0]) if address else 0
            server = HttpSignSimulator(port=port)
            server.add("/sign", model)
            await server.start()
            address, stop = server.address("/sign"), server.stop
        else:
            assert self.settings is not None
            sign = MqttSignSimulator(
                model, address or f"parkleit/v1/{self.prefix}/signs/{model.name}", self.settings)
            await sign.start()
            address, stop = sign.address, sign.stop
        self._stops[address] = stop
        return address

    async def stop(self, address: str) -> None:
        await self._stops.pop(address)()

    async def close(self) -> None:
        for address in list(self._stops):
            await self.stop(address)


@pytest.fixture(params=["http", "mqtt"])
def harness(request: pytest.FixtureRequest, city: City) -> Harness:
    settings = None
    if request.param == "mqtt":
        services: ServiceStack = request.getfixturevalue("services")
        settings = Settings(MQTT_URL=services.mqtt_url, MQTT_PROTOCOL=services.mqtt_protocol)
    return Harness(request.param, settings, city.id)


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@synchronous
async def test_push_shows_the_content_as_the_contract_says(harness: Harness) -> None:
    model = JsonSignModel("vms-1", line_count=3)
    sign = _sign(harness.kind, await harness.serve(model))
    driver = harness.driver(timeout_s=2.0)
    async with harness:
        ack = await driver.push(sign, CONTENT)
        assert model.shown() == SHOWN
        assert SHOWN[0] == "↑ Altmarkt         123"
        first = model.last_content
        assert first is not None
        assert ack.detail == (f"seq {first['seq']}: ↑ Altmarkt 123 | ← P+R Bahnhof besetzt"
                              " | → Zentrum")
        assert first == {
            "sign_id": "vms-1", "seq": first["seq"], "duration_s": 300,
            "fallback_text": "--",
            "lines": [{"label": "Altmarkt", "arrow": "straight", "text": "123"},
                      {"label": "P+R Bahnhof", "arrow": "left", "text": "besetzt"},
                      {"label": "Zentrum", "arrow": "right", "text": ""}]}
        assert first["seq"] >= time.time() * 1000 - 60_000  # from the clock, in ms
        await driver.push(sign, _content("7", "besetzt", "fast voll"))
        assert model.shown() == (_line("↑", "Altmarkt", "7"), SHOWN[1],
                                 _line("→", "Zentrum", "fast voll"))
        assert model.last_content is not None
        assert model.last_content["seq"] > first["seq"]
        await driver.close()
        await driver.close()  # idempotent (and the harness closes it once more)


@synchronous
async def test_refusals_carry_the_sign_s_reason(harness: Harness) -> None:
    model = JsonSignModel("vms-1", line_count=3)
    sign = _sign(harness.kind, await harness.serve(model))
    driver = harness.driver(timeout_s=2.0)
    status = {"http": "HTTP 422: ", "mqtt": ""}[harness.kind]
    async with harness:
        await driver.push(sign, CONTENT)
        with pytest.raises(SignError, match=(
                f"^sign vms-1 refused the content: {status}2 lines, the sign has 3$")):
            await driver.push(sign, _content("1", "2"))
        with pytest.raises(SignError, match=(
                f"^sign vms-1 refused the content: {status}line 2 needs 23 characters, "
                "the sign has 20$")):
            await driver.push(sign, _content("1", "geschlossen", "3"))
        model.local_mode = True
        local = {"http": "HTTP 409: ", "mqtt": ""}[harness.kind]
        with pytest.raises(SignError, match=f"refused the content: {local}the sign is in "
                                            "local control$"):
            await driver.push(sign, _content("1", "2", "3"))
        assert model.shown() == SHOWN  # a refusal changes nothing on the sign
        model.local_mode = False
        await driver.push(sign, _content("1", "2", "3"))
        assert model.shown()[0] == _line("↑", "Altmarkt", "1")


@synchronous
async def test_a_silent_sign_times_out_and_holds_up_no_other(harness: Harness) -> None:
    slow, fast = JsonSignModel("vms-slow"), JsonSignModel("vms-fast")
    slow_sign = _sign(harness.kind, await harness.serve(slow), sign_id="vms-slow")
    fast_sign = _sign(harness.kind, await harness.serve(fast), sign_id="vms-fast")
    driver = harness.driver(timeout_s=0.6)
    async with harness:
        await driver.push(fast_sign, _content("1", "2", "3", sign_id="vms-fast"))
        slow.paused = True  # a hung controller: takes the request, answers nothing

        async def timed(sign: Sign) -> float:
            start = time.monotonic()
            try:
                await driver.push(sign, _content("5", "6", "7", sign_id=sign.id))
            except SignError as exc:
                answer = "answer" if harness.kind == "http" else "acknowledgement"
                assert str(exc) == f"sign {sign.id}: no {answer} within 0.6 s"
                return -(time.monotonic() - start)
            return time.monotonic() - start

        slow_s, fast_s = await asyncio.gather(timed(slow_sign), timed(fast_sign))
        assert -1.0 < slow_s < -0.55  # gave up at the timeout, not before
        assert 0 < fast_s < 0.4  # served while the other one was waiting
        assert fast.shown()[0] == _line("↑", "Altmarkt", "5")
        assert slow.shown() == ()


@synchronous
async def test_a_sign_that_comes_back(harness: Harness) -> None:
    model = JsonSignModel("vms-1")
    address = await harness.serve(model)
    sign = _sign(harness.kind, address)
    driver = harness.driver(timeout_s=0.5)
    gone = {"http": "cannot connect", "mqtt": r"no acknowledgement within 0\.5 s"}[harness.kind]
    async with harness:
        await driver.push(sign, CONTENT)
        model.paused = True
        with pytest.raises(SignError, match=r"within 0\.5 s"):
            await driver.push(sign, CONTENT)
        model.paused = False
        await driver.push(sign, _content("9", "8", "7"))
        assert model.shown()[0] == _line("↑", "Altmarkt", "9")
        # The controller goes down (its connections with it) and restarts blank.
        await harness.stop(address)
        with pytest.raises(SignError, match=gone):
            await driver.push(sign, CONTENT)
        restarted = JsonSignModel("vms-1")
        await harness.serve(restarted, address)
        assert restarted.shown() == ()
        await driver.push(sign, CONTENT)
        assert restarted.shown() == SHOWN


@synchronous
async def test_keep_alive_then_fallback_after_the_duration(harness: Harness) -> None:
    model = JsonSignModel("vms-1")
    sign = _sign(harness.kind, await harness.serve(model))
    driver = harness.driver(timeout_s=0.5, duration_s=1)
    async with harness:
        keep_alive_until = time.monotonic() + 1.5  # longer than the duration
        while True:
            await driver.push(sign, CONTENT)
            last_push = time.monotonic()
            assert (model.shown(), model.source) == (SHOWN, "central")
            if last_push > keep_alive_until:
                break
            await asyncio.sleep(0.3)
        # The central goes quiet: the sign falls back by itself.
        await waited(lambda: model.shown() != SHOWN, 2.0)
        assert 0.9 < time.monotonic() - last_push < 1.4
        assert (model.shown(), model.source) == (FALLBACK, "fallback")


def test_sign_model_rules() -> None:
    now = [100.0]
    model = JsonSignModel("vms-1", line_count=1, chars_per_line=12, clock=lambda: now[0])

    def take(**fields: Any) -> tuple[int, dict[str, Any]]:
        message = {"sign_id": "vms-1", "seq": 5, "duration_s": 60, "fallback_text": "",
                   "lines": [{"label": "Zentrum", "arrow": "none", "text": "12"}], **fields}
        return model.take(json.dumps(message).encode())

    assert take() == (200, {"seq": 5, "ok": True, "shown": ["  Zentrum   12"]})
    assert take(seq=4, lines=[]) == (
        422, {"seq": 4, "ok": False, "reason": "0 lines, the sign has 1"})
    assert take(seq=4) == (409, {"seq": 4, "ok": False,
                                 "reason": "seq 4 is older than 5, shown already"})
    assert take(seq=5)[0] == 200  # a redelivery of the same content is taken again
    assert take(sign_id="vms-2")[1]["reason"] == "content for sign 'vms-2', this is 'vms-1'"
    assert take(seq="6")[0] == take(duration_s=0)[0] == take(lines=[{"label": "x"}])[0] == 400
    assert model.take(b"{") == (400, {"seq": None, "ok": False,
                                      "reason": "the content is not JSON"})
    now[0] += 59.9
    assert model.shown() == ("  Zentrum   12",)
    now[0] += 0.1  # the duration is over: label and arrow with the (empty) fallback text
    assert (model.shown(), model.source) == (("  Zentrum",), "fallback")


@synchronous
async def test_mqtt_driver_without_a_broker_fails_in_time() -> None:
    settings = Settings(MQTT_URL=f"mqtt://127.0.0.1:{_free_port()}")
    driver = MqttDriver(settings, timeout_s=0.5)
    start = time.monotonic()
    try:
        with pytest.raises(SignError, match=(
                r"^sign vms-1: no connection to the MQTT broker within 0\.5 s$")):
            await driver.push(_sign("mqtt", "parkleit/v1/nowhere/signs/vms-1"), CONTENT)
        assert time.monotonic() - start < 0.9
        with pytest.raises(SignError, match="not a topic base"):
            await driver.push(_sign("mqtt", "parkleit/v1/+/signs/vms-1"), CONTENT)
    finally:
        await driver.close()


def test_http_driver_reports_the_controller_s_status_and_bad_addresses(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # Entry points quieten httpx (an earlier test may have run one in this process).
    caplog.set_level(logging.DEBUG, logger="httpx")

    async def scenario() -> None:
        server = HttpSignSimulator()
        server.add("/sign", JsonSignModel("vms-1"))
        await server.start()
        driver = HttpDriver(timeout_s=1.0)
        try:
            with pytest.raises(SignError, match=(
                    r"^sign vms-1 refused the content: HTTP 404: no sign at /other$")):
                await driver.push(_sign("http", server.address("/other")), CONTENT)
            with pytest.raises(SignError, match="must be an http:// or https:// URL"):
                await driver.push(_sign("http", "ftp://127.0.0.1/sign"), CONTENT)
            # Credentials in the address go out as basic auth, and into no URL or log.
            with_credentials = server.address("/sign").replace("//", "//central:s3cret@")
            await driver.push(_sign("http", with_credentials), CONTENT)
        finally:
            await driver.close()
            await server.stop()
    asyncio.run(scenario())
    assert "POST http://127.0.0.1" in caplog.text
    assert "s3cret" not in caplog.text


def test_city_signs_of_every_kind_are_served_and_reached_through_the_registry(
        city: City, services: ServiceStack) -> None:
    assert set(DRIVER_FACTORIES) == {"ntcip1203", "http", "mqtt"}
    settings = Settings(MQTT_URL=services.mqtt_url, MQTT_PROTOCOL=services.mqtt_protocol)
    addresses = {"ntcip1203": f"udp://127.0.0.1:{_free_port(socket.SOCK_DGRAM)}",
                 "http": f"http://127.0.0.1:{_free_port()}/signs/north",
                 "mqtt": f"parkleit/v1/{city.id}/signs/{city.id}-vms-mqtt"}
    signs = [_sign(kind, address, sign_id=f"{city.id}-vms-{kind}").model_dump()
             for kind, address in addresses.items()]
    for sign in signs:
        sign["lines"][0]["lots"] = [city.lots[0].id]
        sign["lines"] = sign["lines"][:1]
    city = City.model_validate({**city.model_dump(), "signs": signs})
    secret = secrets.token_hex(4)

    async def scenario() -> None:
        stop = asyncio.Event()
        serving = asyncio.create_task(run_signs(city, stop, settings=settings))
        drivers = Drivers({"ntcip1203": lambda: NtcipDriver(timeout_s=0.5),
                           "http": lambda: HttpDriver(timeout_s=0.5),
                           "mqtt": lambda: MqttDriver(settings, timeout_s=0.5,
                                                      client_id=f"central-{secret}")})
        try:
            for sign in city.signs:
                content = SignContent(sign.id, (LineContent("Altmarkt", "straight", "42"),))
                deadline = time.monotonic() + 5.0
                while True:  # the simulators start in the background
                    try:
                        ack = await drivers.driver_for(sign).push(sign, content)
                        break
                    except SignError:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.1)
                assert ("crc" if sign.driver == "ntcip1203" else "Altmarkt 42") in ack.detail
        finally:
            await drivers.close()
            stop.set()
            await asyncio.wait_for(serving, 5.0)
    asyncio.run(scenario())
