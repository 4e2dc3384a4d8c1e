"""``parkleit simulate chargers``: the city's OCPP stations as real charge points.

Each station of the city with protocol ``ocpp`` is one client of the ``ocpp`` package
(alternately 1.6J and 2.0.1, by its place in the config) that connects to the central system
at ``{url}/{charge_point_id}`` with its HTTP Basic password, boots, sends its heartbeats at the
interval the central system gives, and reports each point's status as a simple session model
changes it:

- an EV arrives at a free point as the demand model's cars arrive at a space of the station's
  lot (its profile by hour of week, public holidays, season; ``demand.LotDemand``), times the
  share of those cars that are EVs (``EV_SHARE``): Preparing, then Charging for about an
  hour, sometimes SuspendedEV (full, the driver not back yet), Finishing, Available
  (OCPP 2.0.1 knows only Occupied for all of these); MeterValues with the power while charging;
- faults, where switched on: a station goes offline for a while (its link closed, it
  reconnects and boots again), a connector is Faulted until repaired, a station is stuck in
  Charging (the session ended but the station says nothing until much later).

The stations with protocol ``mqtt`` are one gateway publishing the OCPI status of each point
that serves no bay (the city simulator drives the others, by the cars on their bays) on
``parkleit/v1/{city}/chargers/{evse_id}/status`` (QoS 1, what ``ingest`` reads) as a simpler
model of the same sessions (the same arrivals) changes it: AVAILABLE, CHARGING for about an
hour, now and then OUTOFORDER for a while where faults are on; each point once at the start.

Simulated time runs ``speed`` times as fast as real time (session lengths, fault durations);
every message carries the clock's real time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import random
import ssl
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from core.channels import charger_status_topic
from core.city import ChargingStation, City
from core.clock import Clock
from core.hashfile import entries
from core.runtime import Backoff
from core.settings import Settings

from ._chargers import COMBUSTION_SHARE
from ._mqtt import mqtt_client
from .demand import LotDemand

__all__ = ["ChargerReport", "MqttGateway", "SimulatedStation", "read_passwords", "run_chargers"]

logger = logging.getLogger(__name__)

TICK_S = 1.0  # real seconds between two looks at the session model
METER_EVERY_S = 60.0  # simulated seconds between two MeterValues of a charging point
# Of the cars that take a charging point's space, the share that are EVs and charge (the
# city simulator's points: 1 - Chargers.combustion_share).
EV_SHARE = 1 - COMBUSTION_SHARE
FAULT_RATES_PER_HOUR = {"offline": 0.02, "faulted": 0.01, "stuck": 0.05}  # stuck: per session


class ChargerSimError(Exception):
    """Bad simulator input (a passwords file that cannot be read); one line."""


def read_passwords(path: Path) -> dict[str, str]:
    """``charge_point_id:password`` lines (blank lines and ``#`` comments allowed)."""
    passwords: dict[str, str] = {}
    for number, station, password in entries(path, what="passwords file",
                                             error=ChargerSimError):
        if not station or not password:
            raise ChargerSimError(f"{path}, line {number}: not 'charge_point_id:password'")
        passwords[station] = password
    return passwords


@dataclass
class ChargerReport:
    """What the simulated stations did."""

    calls: Counter[str] = field(default_factory=Counter)  # by action
    refused: int = 0  # calls answered with a CallError
    connects: int = 0
    failed_connects: int = 0
    links_lost: int = 0  # closed by the central system or the network
    faults: Counter[str] = field(default_factory=Counter)


@dataclass
class _Point:
    number: int
    status: str = "Available"  # the 1.6 status the model is in
    until: float = 0.0  # simulated seconds: when the current phase ends
    reported: str | None = None  # the last status sent (in the station's version)
    stuck: bool = False  # the station keeps saying Charging
    next_meter: float = 0.0


class _Offline(Exception):
    """The station goes offline (a fault) for ``seconds`` of simulated time."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"offline for {seconds:.0f} s")
        self.seconds = seconds


class SimulatedStation:
    """One charge point: a real OCPP client of its version, driven by the session model."""

    def __init__(self, station: ChargingStation, version: str, url: str, password: str | None,
                 *, demand: LotDemand, rng: random.Random, clock: Clock, speed: float,
                 faults: bool, report: ChargerReport,
                 tls: ssl.SSLContext | None = None) -> None:
        self.station, self.version, self.url = station, version, url.rstrip("/")
        self.demand = demand
        self.password, self.tls = password, tls
        self.rng, self.clock, self.speed, self.faults = rng, clock, speed, faults
        self.report = report
        self.points = [_Point(evse.number) for evse in station.evses]
        self.sim_s = 0.0  # simulated seconds since the start

    @property
    def subprotocol(self) -> str:
        return "ocpp1.6" if self.version == "1.6" else "ocpp2.0.1"

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, serve, reconnect after a failure or an offline fault, until ``stop``."""
        backoff = Backoff(1.0, 30.0)
        headers = {}
        if self.password is not None:
            token = base64.b64encode(f"{self.station.id}:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        while not stop.is_set():
            pause = 0.0
            try:
                async with connect(f"{self.url}/{self.station.id}",
                                   subprotocols=[Subprotocol(self.subprotocol)], ssl=self.tls,
                                   additional_headers=headers, open_timeout=10) as link:
                    self.report.connects += 1
                    backoff.reset()
                    await self._serve(link, stop)
            except _Offline as offline:
                self.report.faults["offline"] += 1
                logger.info("%s goes offline (fault) for %.0f simulated s", self.station.id,
                            offline.seconds)
                pause = offline.seconds / self.speed
                self._advance(offline.seconds)
            except InvalidStatus as refused:
                self.report.failed_connects += 1
                logger.warning("%s refused by the central system: HTTP %d", self.station.id,
                               refused.response.status_code)
                pause = backoff.next()
            except ConnectionClosed as closed:
                self.report.links_lost += 1
                logger.info("%s: link to %s lost (%s); connecting again", self.station.id,
                            self.url, closed.rcvd or "no close frame")
                pause = backoff.next()
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                self.report.failed_connects += 1
                logger.info("%s: no link to %s (%s)", self.station.id, self.url,
                            type(exc).__name__)
                pause = backoff.next()
            if pause and not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)

    async def _serve(self, link: ClientConnection, stop: asyncio.Event) -> None:
        client: Any = (ChargePoint16 if self.version == "1.6" else ChargePoint201)(
            self.station.id, link)
        client.logger = _QUIET
        reader = asyncio.create_task(client.start(), name=f"ocpp-{self.station.id}")
        try:
            interval = await self._boot(client)
            for point in self.points:
                point.reported = None  # after a (re)boot every point reports again
                await self._report(client, point)
            loop = asyncio.get_running_loop()
            next_heartbeat = loop.time() + interval
            while not stop.is_set() and not reader.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), TICK_S)
                self._advance(TICK_S * self.speed)
                if self.faults and self._chance(FAULT_RATES_PER_HOUR["offline"], TICK_S):
                    raise _Offline(self.rng.uniform(300, 1800))
                for point in self.points:
                    await self._step(client, point)
                if loop.time() >= next_heartbeat:  # protocol time: real seconds
                    await self._call(client, "Heartbeat")
                    next_heartbeat = loop.time() + interval
            error = reader.exception() if reader.done() and not reader.cancelled() else None
            if error is not None:
                raise error  # the link broke: reconnect
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await reader

    def _chance(self, per_hour: float, real_s: float) -> bool:
        return self.rng.random() < per_hour * real_s * self.speed / 3600

    def _advance(self, seconds: float) -> None:
        self.sim_s += seconds

    async def _boot(self, client: Any) -> float:
        if self.version == "1.6":
            answer = await self._call(client, "BootNotification", call16.BootNotification(
                charge_point_model="Sim-AC22", charge_point_vendor="parkleit"))
        else:
            answer = await self._call(client, "BootNotification", call201.BootNotification(
                charging_station={"model": "Sim-AC22", "vendor_name": "parkleit"},
                reason="PowerUp"))
        # Heartbeats at the central system's interval (real seconds, whatever the speed).
        return float(getattr(answer, "interval", 300) or 300)

    async def _step(self, client: Any, point: _Point) -> None:
        """Move one point's session model on, and report what changed."""
        arrivals = self.demand.per_space_hour(self.station.lot, self.clock.now()) * EV_SHARE
        faults = FAULT_RATES_PER_HOUR if self.faults else dict.fromkeys(FAULT_RATES_PER_HOUR, 0.0)
        now = self.sim_s
        if point.status == "Available":
            if self._chance(faults["faulted"], TICK_S):
                self.report.faults["faulted"] += 1
                point.status, point.until = "Faulted", now + self.rng.uniform(1200, 7200)
            elif self._chance(arrivals, TICK_S):
                point.status, point.until = "Preparing", now + self.rng.uniform(30, 120)
        elif now >= point.until:
            if point.status == "Preparing":
                point.status = "Charging"
                point.until = now + min(6 * 3600, self.rng.lognormvariate(8.1, 0.5))
            elif point.status == "Charging":
                if point.stuck:
                    point.stuck = False
                    point.status, point.until = "Finishing", now + 60
                elif self.rng.random() < faults["stuck"]:
                    # The session is over, but the station keeps saying Charging for hours.
                    self.report.faults["stuck"] += 1
                    point.stuck, point.until = True, now + self.rng.uniform(2 * 3600, 6 * 3600)
                elif self.rng.random() < 0.4:
                    point.status, point.until = "SuspendedEV", now + self.rng.uniform(600, 3600)
                else:
                    point.status, point.until = "Finishing", now + self.rng.uniform(60, 300)
            elif point.status == "SuspendedEV":
                point.status, point.until = "Finishing", now + self.rng.uniform(60, 300)
            elif point.status in ("Finishing", "Faulted"):
                point.status = "Available"
        await self._report(client, point)
        if point.status == "Charging" and not point.stuck and now >= point.next_meter:
            point.next_meter = now + METER_EVERY_S
            await self._meter(client, point, self.rng.uniform(6000, 22000))

    async def _report(self, client: Any, point: _Point) -> None:
        status = point.status if self.version == "1.6" else _STATUS_201[point.status]
        if status == point.reported:
            return
        point.reported = status
        stamp = _rfc3339(self.clock.now())
        if self.version == "1.6":
            await self._call(client, "StatusNotification", call16.StatusNotification(
                connector_id=point.number, status=status, timestamp=stamp,
                error_code="OtherError" if status == "Faulted" else "NoError"))
        else:
            await self._call(client, "StatusNotification", call201.StatusNotification(
                timestamp=stamp, connector_status=status, evse_id=point.number,
                connector_id=1))

    async def _meter(self, client: Any, point: _Point, watts: float) -> None:
        sample = {"timestamp": _rfc3339(self.clock.now()), "sampled_value": [
            {"value": str(round(watts)) if self.version == "1.6" else round(watts),
             "measurand": "Power.Active.Import"}]}
        if self.version == "1.6":
            await self._call(client, "MeterValues", call16.MeterValues(
                connector_id=point.number, meter_value=[sample]))
        else:
            await self._call(client, "MeterValues", call201.MeterValues(
                evse_id=point.number, meter_value=[sample]))

    async def _call(self, client: Any, action: str, payload: Any = None) -> Any:
        if payload is None:
            payload = call16.Heartbeat() if self.version == "1.6" else call201.Heartbeat()
        self.report.calls[action] += 1
        answer = await client.call(payload)
        if answer is None:  # the package turns a CallError into None
            self.report.refused += 1
            logger.warning("%s: the central system refused %s", self.station.id, action)
        return answer


_STATUS_201 = {"Available": "Available", "Preparing": "Occupied", "Charging": "Occupied",
               "SuspendedEV": "Occupied", "SuspendedEVSE": "Occupied",
               "Finishing": "Occupied", "Faulted": "Faulted"}


class MqttGateway:
    """The city's ``mqtt`` stations behind one gateway: each point's status (of the points
    that serve no bay) as the session model changes it, published with
    ``publish(topic, payload)`` (QoS 1 in ``run_chargers``)."""

    def __init__(self, city: City, publish: Callable[[str, bytes], None], *,
                 demand: LotDemand, rng: random.Random, clock: Clock, speed: float,
                 faults: bool, report: ChargerReport) -> None:
        self.city, self.publish, self.demand = city, publish, demand
        self.rng, self.clock, self.speed, self.faults = rng, clock, speed, faults
        self.report = report
        # evse id -> (OCPI status, simulated second it ends). The points that serve bays are
        # the city simulator's (simulators/_chargers.py: driven by the cars on their bays).
        self.points = {evse.evse_id: ("AVAILABLE", 0.0) for station in city.chargers
                       if station.protocol == "mqtt" for evse in station.evses if not evse.bays}
        self._lots = {evse.evse_id: station.lot for station in city.chargers
                      for evse in station.evses}
        self.sim_s = 0.0

    def _chance(self, per_hour: float) -> bool:
        return self.rng.random() < per_hour * TICK_S * self.speed / 3600

    def step(self) -> None:
        """One tick of every point's model; publish what changed (every point the first time)."""
        first = self.sim_s == 0.0
        self.sim_s += TICK_S * self.speed
        now = self.clock.now()
        for evse_id, (status, until) in list(self.points.items()):
            point = status, until
            if status == "AVAILABLE":
                if self.faults and self._chance(FAULT_RATES_PER_HOUR["faulted"]):
                    self.report.faults["faulted"] += 1
                    point = "OUTOFORDER", self.sim_s + self.rng.uniform(1200, 7200)
                elif self._chance(self.demand.per_space_hour(self._lots[evse_id], now)
                                  * EV_SHARE):
                    point = "CHARGING", self.sim_s + min(6 * 3600,
                                                         self.rng.lognormvariate(8.1, 0.5))
            elif self.sim_s >= until:
                point = "AVAILABLE", 0.0
            self.points[evse_id] = point
            if first or point[0] != status:
                self.report.calls["mqtt status"] += 1
                self.publish(charger_status_topic(self.city.id, evse_id), json.dumps(
                    {"status": point[0], "ts": _rfc3339(self.clock.now())}).encode())

    async def run(self, stop: asyncio.Event) -> None:
        """Step every ``TICK_S`` until ``stop``."""
        while not stop.is_set():
            self.step()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)


def version_of(index: int) -> str:
    """The OCPP version of the ``index``-th OCPP station of a city: a mix of both."""
    return "2.0.1" if index % 2 == 0 else "1.6"


async def run_chargers(city: City, stop: asyncio.Event, *, url: str,
                       passwords: dict[str, str], clock: Clock, speed: float = 1.0,
                       faults: bool = True, seed: int = 1, ca_file: Path | None = None,
                       mqtt_settings: Settings | None = None) -> ChargerReport:
    """Run every OCPP station of ``city`` against the central system at ``url`` until
    ``stop`` (over wss, trusting the system's CAs or only ``ca_file``), and with
    ``mqtt_settings`` its MQTT stations as one gateway publishing to that broker; what they
    did."""
    report = ChargerReport()
    tls = ssl.create_default_context(cafile=str(ca_file)) if (
        ca_file is not None and url.startswith("wss:")) else None
    stations = [station for station in city.chargers if station.protocol == "ocpp"]
    missing = [station.id for station in stations if station.id not in passwords]
    if missing:
        logger.warning("no password for %s: the central system will refuse them",
                       ", ".join(missing))
    demand = LotDemand(city)
    simulated = [SimulatedStation(station, version_of(index), url, passwords.get(station.id),
                                  demand=demand, rng=random.Random(f"{seed}-{station.id}"),
                                  clock=clock, speed=speed, faults=faults, report=report,
                                  tls=tls)
                 for index, station in enumerate(stations)]
    logger.info("%d OCPP stations of %s (%d on 1.6, %d on 2.0.1) connect to %s",
                len(simulated), city.id, sum(s.version == "1.6" for s in simulated),
                sum(s.version == "2.0.1" for s in simulated), url)
    tasks = [asyncio.create_task(station.run(stop), name=f"station-{station.station.id}")
             for station in simulated]
    client = None
    if mqtt_settings is not None and any(s.protocol == "mqtt" for s in city.chargers):
        client = mqtt_client(mqtt_settings, f"parkleit-sim-chargers-{city.id}-{os.getpid()}")
        publisher = client

        def publish(topic: str, payload: bytes) -> None:
            publisher.publish(topic, payload, qos=1)

        gateway = MqttGateway(city, publish, demand=demand, rng=random.Random(f"{seed}-mqtt"),
                              clock=clock, speed=speed, faults=faults, report=report)
        logger.info("%d MQTT charging points of %s publish their status", len(gateway.points),
                    city.id)
        tasks.append(asyncio.create_task(gateway.run(stop), name="mqtt-gateway"))
    try:
        if tasks:
            await asyncio.gather(*tasks)
        else:
            await stop.wait()
    finally:
        if client is not None:
            client.disconnect()
            client.loop_stop()
    return report


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_QUIET = logging.getLogger("simulators.chargers.frames")
_QUIET.setLevel(logging.WARNING)
