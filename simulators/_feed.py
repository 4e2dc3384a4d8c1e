"""The city simulator's feed: what a city's sensors send, minute by minute, and the truth.

``CityFeed`` turns the demand model (``simulators.demand``) into messages, pure and seeded (the
same arguments give byte-identical messages): native bay sensors send
``parkleit/v1/{city}/bays/{bay_id}`` ``{"occupied", "ts", "seq"}`` on each change and a
heartbeat with ``battery_v`` every ``heartbeat_min`` minutes; LoRaWAN sensors send raw frames
(port 1 status, port 2 heartbeat; byte 0 bit 0 = occupied). The bay sensors' faults (stuck,
flapping, dead batteries) play from one agenda of timed events. ``TruthRow``: what really was.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from core.city import Bay, City

from ._chargers import Chargers
from ._counters import Counters
from ._faults import CitySimError, Delivery, FaultConfig, FaultDice
from ._formats import MINUTE_MS, SimMessage, dumps, iso_ms, iso_ns, iso_s, moment
from ._lorawan import LoRaDevice, LoRaNetwork
from .demand import CitySimulation

__all__ = ["TRUTH_HEADER", "CityFeed", "SimMinute", "TruthRow", "city_messages", "truth_line"]

STATUS_EVERY_HEARTBEATS = 6  # DevStatusReq / battery report: hourly at the default heartbeat
BATTERY_FULL_V = 3.6
BATTERY_EMPTY_V = 2.4
TRUTH_HEADER = "time,lot_id,occupied,free,capacity"


class TruthRow(NamedTuple):
    """What really was in a lot at ``time``."""

    time: datetime
    lot_id: str
    occupied: int
    free: int
    capacity: int


def truth_line(row: TruthRow) -> str:
    """One CSV line (no newline) under ``TRUTH_HEADER``."""
    return f"{iso_s(row.time)},{row.lot_id},{row.occupied},{row.free},{row.capacity}"


@dataclass(slots=True)
class SimMinute:
    """One simulated minute [time, end): the messages published in it (in order; a counter's
    end-of-minute reading at ``end`` included), every lot's true occupancy at ``end`` and the
    charging points' true changes in it (``simulators._chargers``, CSV lines)."""

    time: datetime
    end: datetime
    messages: list[SimMessage]
    truth: list[TruthRow]
    chargers: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Sensor:
    index: int
    bay: Bay
    lot_id: str
    network: str
    occupied: bool  # the truth
    shown: bool  # what the sensor last said (or would have said)
    shown_since: int
    seq: int  # native sequence number or LoRaWAN frame counter (of the last uplink)
    battery_v: float
    latitude: float
    longitude: float
    last_ms: int = 0
    heartbeats: int = 0
    dies_at: int | None = None  # battery flat from then on (dead_battery)
    stuck_until: int = 0
    flap_until: int = 0
    radio: LoRaDevice | None = None  # None: a native sensor


# Agenda event kinds (bay sensors), in the order they run when at the same millisecond.
_CHANGE, _HEARTBEAT, _STUCK, _UNSTICK, _FLAP, _TOGGLE, _UNFLAP = range(7)


class CityFeed:
    """The messages and ground truth of a city from ``start`` (rounded down to the minute).

    Iterate it for ``SimMinute``s: ``duration_s`` of simulated time (0 = without end), then one
    last batch flushes messages still held back (late ones) at the end time. ``truth_at_start``
    is the occupancy at the start; ``stats`` counts what each fault did; ``gateways`` and
    ``outages`` (gateway index, start, end) describe the radio network.
    """

    def __init__(self, city: City, start: datetime, *, seed: int = 1,
                 faults: FaultConfig | None = None, heartbeat_min: float = 10.0,
                 duration_s: float = 0.0) -> None:
        if start.tzinfo is None:
            raise CitySimError("start must be timezone-aware")
        if not heartbeat_min > 0:
            raise CitySimError("heartbeat interval must be > 0 minutes")
        if duration_s < 0:
            raise CitySimError("duration must be >= 0")
        self.city = city
        self.faults = faults or FaultConfig()
        self.heartbeat_ms = round(heartbeat_min * MINUTE_MS)
        self.start_ms = math.floor(start.timestamp() / 60) * MINUTE_MS
        self.end_ms = (self.start_ms + math.ceil(duration_s / 60) * MINUTE_MS
                       if duration_s else None)
        self.start = moment(self.start_ms)
        self.end = moment(self.end_ms) if self.end_ms is not None else None
        self.stats: Counter[str] = Counter()
        self._sim = CitySimulation(city, self.start, seed=seed)
        self._rng = random.Random(f"parkleit-city:{seed}:devices")  # radio, ids, noise
        self._dice = FaultDice(self.faults, seed)
        self._delivery = Delivery(self._dice, self.stats)
        self._agenda: list[tuple[int, int, int, int, int]] = []  # ms, order, kind, sensor, value
        self._order = 0
        self._now = self.start_ms
        self._done = False
        self._lora = LoRaNetwork(city, self._rng, self._dice, self.start_ms, self.stats)
        self.gateways = self._lora.gateways
        self.outages = self._lora.outages
        self.sensors = self._make_sensors()
        self._sensor_of = {sensor.bay.id: sensor for sensor in self.sensors}
        # The charging points on bays: their sessions follow the cars (simulators._chargers).
        # Their messages meet the same faults from dice of their own, so the sensors' messages
        # are the same with or without chargers in the city.
        self._charger_delivery = Delivery(FaultDice(self.faults, -seed), self.stats)
        self.chargers = Chargers(city, self.start_ms, self._charger_delivery, seed=seed)
        for sensor in self.sensors:
            if sensor.occupied and self.chargers.serves(sensor.bay.id):
                self.chargers.bay_changed(self.start_ms, sensor.bay.id, True)
        occupied = [model.occupied for model in self._sim.lots]
        self._counters = Counters(city, occupied, self.start_ms, rng=self._rng, dice=self._dice,
                                  delivery=self._delivery, stats=self.stats)
        self.counters = self._counters.devices
        self.truth_at_start = self._truth(self.start, occupied)

    # -- set-up -----------------------------------------------------------------------------

    def _make_sensors(self) -> list[_Sensor]:
        rng = self._rng
        occupied: set[str] = set()
        for model in self._sim.lots:
            free = {model.bays[i] for i in model.free_bays}
            occupied.update(bay for bay in model.bays if bay not in free)
        sensors: list[_Sensor] = []
        for lot, bay in self.city.bays():
            self._lora.check(bay)
            state = bay.id in occupied
            sensor = _Sensor(
                index=len(sensors), bay=bay, lot_id=lot.id, network=bay.network,
                occupied=state, shown=state, shown_since=self.start_ms - rng.randrange(
                    MINUTE_MS, 180 * MINUTE_MS), seq=rng.randrange(1, 20_000),
                battery_v=rng.uniform(3.45, 3.66),
                latitude=lot.latitude + rng.uniform(-0.0003, 0.0003),
                longitude=lot.longitude + rng.uniform(-0.0004, 0.0004))
            if bay.network != "native":
                sensor.radio = self._lora.device(bay, lot.id, sensor.latitude, sensor.longitude)
            sensors.append(sensor)
            # First heartbeat at a random phase, so they spread over the interval.
            self._schedule(self.start_ms + rng.randrange(self.heartbeat_ms), _HEARTBEAT, sensor)
        self._plan_sensor_faults(sensors)
        return sensors

    def _plan_sensor_faults(self, sensors: list[_Sensor]) -> None:
        faults = self.faults
        if faults.dead_battery and sensors:
            rng = self._dice.rng("dead_battery")
            dying = [s for s in sensors if rng.random() < faults.dead_battery]
            if not dying:
                dying = [rng.choice(sensors)]
            hours = faults.dead_battery_h
            if hours is None:
                hours = 0.8 * (self.end_ms - self.start_ms) / 3_600_000 if self.end_ms else 24.0
            span = max(hours * 3_600_000, MINUTE_MS)
            for sensor in dying:
                sensor.dies_at = self.start_ms + round(span * rng.uniform(0.75, 1.0))
                sensor.battery_v = BATTERY_FULL_V
            self.stats["dead_battery_sensors"] = len(dying)
        for name, kind in (("stuck", _STUCK), ("flapping", _FLAP)):
            if getattr(faults, name):
                for sensor in sensors:
                    self._schedule(self.start_ms + self._dice.gap(name), kind, sensor)

    @property
    def dead_battery_bays(self) -> list[str]:
        """The bays whose sensor's battery runs flat during the run (dead_battery fault)."""
        return [sensor.bay.id for sensor in self.sensors if sensor.dies_at is not None]

    def true_bays(self) -> dict[str, bool]:
        """Whether each bay really is occupied, at the end of the last simulated minute."""
        return {sensor.bay.id: sensor.occupied for sensor in self.sensors}

    # -- running ----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[SimMinute]:
        return self

    def __next__(self) -> SimMinute:
        if self._done:
            raise StopIteration
        if self.end_ms is not None and self._now >= self.end_ms:
            self._done = True
            # Flush what is still held back (late messages): delivered when the simulator stops.
            end = self._now
            rest = [message._replace(time=moment(end)) for message in self._drain(None)]
            if not rest:
                raise StopIteration
            return SimMinute(moment(end), moment(end), rest, [])
        return self._minute()

    def _minute(self) -> SimMinute:
        t0 = self._now
        t1 = t0 + MINUTE_MS
        minute = self._sim.step()
        self._lora.plan_outages(t1)
        for second, bay_id, occupied in minute.bay_changes:  # in time order
            ms = t0 + min(int(second * 1000), MINUTE_MS - 1)
            self._schedule(ms, _CHANGE, self._sensor_of[bay_id], int(occupied))
        while self._agenda and self._agenda[0][0] < t1:
            ms, _, kind, index, value = heapq.heappop(self._agenda)
            self.chargers.until(ms)
            self._sensor_event(ms, kind, self.sensors[index], value)
        self.chargers.until(t1)
        self._counters.minute(minute, t1)
        self._now = t1
        end = moment(t1)
        return SimMinute(moment(t0), end, self._drain(t1), self._truth(end, minute.occupied),
                         self.chargers.drain())

    def _drain(self, until: int | None) -> list[SimMessage]:
        """The sensors' and the charging points' messages due by ``until``, in time order."""
        return list(heapq.merge(self._delivery.drain(until), self._charger_delivery.drain(until),
                                key=lambda message: message.time))

    def _truth(self, when: datetime, occupied: list[int]) -> list[TruthRow]:
        return [TruthRow(when, lot.id, n, lot.capacity - n, lot.capacity)
                for lot, n in zip(self.city.lots, occupied, strict=True)]

    def _schedule(self, ms: int, kind: int, sensor: _Sensor, value: int = 0) -> None:
        self._order += 1
        heapq.heappush(self._agenda, (ms, self._order, kind, sensor.index, value))

    # -- bay sensors ------------------------------------------------------------------------

    def _sensor_event(self, ms: int, kind: int, sensor: _Sensor, value: int) -> None:
        faults, dice = self.faults, self._dice
        if kind == _CHANGE:
            sensor.occupied = bool(value)
            if self.chargers.serves(sensor.bay.id):
                self.chargers.bay_changed(ms, sensor.bay.id, sensor.occupied)
            if not (sensor.stuck_until or sensor.flap_until):
                self._report(sensor, ms, sensor.occupied, heartbeat=False)
        elif kind == _HEARTBEAT:
            self._report(sensor, ms, sensor.shown, heartbeat=True)
            jitter = self._rng.randrange(-3000, 3001)
            self._schedule(ms + self.heartbeat_ms + jitter, _HEARTBEAT, sensor)
        elif kind == _STUCK:
            length = round(dice.rng("stuck").uniform(*faults.stuck_h) * 3_600_000)
            if self._free_for_episode(sensor, ms):
                sensor.stuck_until = ms + length
                self.stats["stuck_episodes"] += 1
                self._schedule(ms + length, _UNSTICK, sensor)
            self._schedule(ms + length + dice.gap("stuck"), _STUCK, sensor)
        elif kind == _FLAP:
            length = round(dice.rng("flapping").uniform(*faults.flapping_min) * MINUTE_MS)
            if self._free_for_episode(sensor, ms):
                sensor.flap_until = ms + length
                self.stats["flapping_episodes"] += 1
                self._schedule(ms + self._flap_step(), _TOGGLE, sensor)
                self._schedule(ms + length, _UNFLAP, sensor)
            self._schedule(ms + length + dice.gap("flapping"), _FLAP, sensor)
        elif kind == _TOGGLE:
            if sensor.flap_until and ms < sensor.flap_until:
                self.stats["flapping_messages"] += 1
                self._report(sensor, ms, not sensor.shown, heartbeat=False)
                self._schedule(ms + self._flap_step(), _TOGGLE, sensor)
        elif kind in (_UNSTICK, _UNFLAP):
            if kind == _UNSTICK:
                sensor.stuck_until = 0
            else:
                sensor.flap_until = 0
            if not (sensor.stuck_until or sensor.flap_until) and sensor.shown != sensor.occupied:
                self._report(sensor, ms, sensor.occupied, heartbeat=False)

    def _free_for_episode(self, sensor: _Sensor, ms: int) -> bool:
        alive = sensor.dies_at is None or ms < sensor.dies_at
        return alive and not (sensor.stuck_until or sensor.flap_until)

    def _flap_step(self) -> int:
        return round(self._dice.rng("flapping").uniform(*self.faults.flapping_every_s) * 1000)

    def _voltage(self, sensor: _Sensor, ms: int) -> float:
        if sensor.dies_at is None:
            return round(sensor.battery_v + self._rng.uniform(-0.006, 0.006), 3)
        drained = min(max((ms - self.start_ms) / max(sensor.dies_at - self.start_ms, 1), 0.0),
                      1.0)
        volts = BATTERY_FULL_V - (BATTERY_FULL_V - BATTERY_EMPTY_V) * drained
        return round(max(volts + self._rng.uniform(-0.004, 0.004), BATTERY_EMPTY_V), 3)

    def _battery_level(self, sensor: _Sensor, ms: int) -> float:
        """The battery in percent, as LoRaWAN network servers report it."""
        share = (self._voltage(sensor, ms) - BATTERY_EMPTY_V) / (BATTERY_FULL_V - BATTERY_EMPTY_V)
        return round(min(max(share, 0.0), 1.0) * 100, 1)

    def _temperature(self, ms: int) -> int:
        hour = (ms / 3_600_000) % 24
        return round(9 + 6 * math.sin(2 * math.pi * (hour - 9) / 24) + self._rng.gauss(0, 1))

    def _report(self, sensor: _Sensor, ms: int, occupied: bool, *, heartbeat: bool) -> None:
        """The sensor sends its state (a status change, or a heartbeat)."""
        ms = max(ms, sensor.last_ms + 1)  # one reading per sensor and millisecond
        sensor.last_ms = ms
        previous_for = ms - sensor.shown_since
        if occupied != sensor.shown:
            sensor.shown, sensor.shown_since = occupied, ms
        if sensor.dies_at is not None and ms >= sensor.dies_at:
            self.stats["dead_battery_silenced"] += 1
            return
        sensor.seq += 1
        if heartbeat:
            sensor.heartbeats += 1
        if sensor.radio is not None:
            self._uplink(sensor, sensor.radio, ms, occupied, heartbeat, previous_for)
            return
        topic = f"parkleit/v1/{self.city.id}/bays/{sensor.bay.id}"
        body: dict[str, Any] = {"occupied": occupied, "ts": iso_ms(ms), "seq": sensor.seq}
        if heartbeat:
            body["battery_v"] = self._voltage(sensor, ms)
        self._delivery.emit(ms, topic, dumps(body), "native")

    def _uplink(self, sensor: _Sensor, radio: LoRaDevice, ms: int, occupied: bool,
                heartbeat: bool, previous_for: int) -> None:
        """A LoRaWAN sensor's frame, as its network server publishes it (if a gateway hears)."""
        heard = self._lora.heard(radio, ms)
        if not heard:
            self.stats["gateway_offline_lost"] += 1
            return
        battery_due = heartbeat and sensor.heartbeats % STATUS_EVERY_HEARTBEATS == 1
        port = 2 if heartbeat else 1
        emit = self._delivery.emit
        if sensor.network == "ttn":
            frame = bytes([int(occupied), self._temperature(ms) & 0xFF]) if heartbeat else (
                bytes([int(occupied)]))
            if battery_due:
                radio.battery_report = {
                    "f_cnt": sensor.seq, "value": self._battery_level(sensor, ms),
                    "received_at": iso_ns(ms - 1, self._rng.randrange(10**6))}
            emit(ms, *self._lora.ttn_uplink(radio, ms, sensor.seq, port, frame, heard), "ttn")
            return
        minutes = min(previous_for // MINUTE_MS, 127)
        frame = bytes([int(occupied) | (0 if heartbeat else minutes << 1)])
        emit(ms, *self._lora.chirpstack_up(radio, ms, sensor.seq, port, frame, heard),
             "chirpstack")
        if battery_due:
            later = ms + self._rng.randrange(2, 40)
            emit(later, *self._lora.chirpstack_status(
                radio, later, lambda: self._battery_level(sensor, later)), "chirpstack_status")


def city_messages(city: City, start: datetime, *, seed: int = 1,
                  faults: FaultConfig | None = None, heartbeat_min: float = 10.0,
                  duration_s: float) -> Iterator[SimMessage]:
    """Every message of a simulation, in publishing order (pure: no broker, no clock)."""
    feed = CityFeed(city, start, seed=seed, faults=faults, heartbeat_min=heartbeat_min,
                    duration_s=duration_s)
    for minute in feed:
        yield from minute.messages
