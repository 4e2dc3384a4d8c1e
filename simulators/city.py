"""``parkleit simulate city``: every lot, bay and counter of a city over MQTT, as sensors send it.

The demand model (``simulators.demand``) says what happens in the car parks minute by minute;
this module turns it into the messages the city's sensors would send:

- native bay sensors: ``parkleit/v1/{city}/bays/{bay_id}`` ``{"occupied", "ts", "seq"}`` on
  each change, plus a heartbeat every ``heartbeat_min`` minutes that re-sends the state with
  ``battery_v`` (so ingest can tell a quiet lot from a dead one);
- garage counters: ``parkleit/v1/{city}/lots/{lot_id}/counter`` with cumulative ``entries`` and
  ``exits`` (from a random offset, wrapping at the lot's ``counter_modulus``) at the end of
  each minute with traffic and at least every 5 minutes;
- The Things Stack v3 uplinks (``v3/{app}/devices/{device_id}/up``) of Bosch-style parking
  sensors and ChirpStack v4 ``event/up`` (and now and then ``event/status``) of Nwave-style
  ones: raw frames only (port 1 status, port 2 heartbeat; byte 0 bit 0 = occupied), heard by
  one or two of 2-3 invented gateways.

Faults (``FaultConfig``) are seeded like everything else and never touch the ground truth,
which is what really happened: occupancy per lot per minute (``TruthRow``).

``CityFeed`` is the pure part: an iterator of ``SimMinute`` (messages in publishing order and
the truth at the end of the minute); the same city, start, seed, faults, heartbeat and duration
give byte-identical messages. ``run_city`` publishes a feed with QoS 1, paced so that simulated
time runs ``speed`` times faster than real time but never ahead of the wall clock.
"""

from __future__ import annotations

import base64
import heapq
import json
import logging
import math
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from core.city import Bay, City, Lot
from core.settings import Settings

from ._mqtt import RoutedPublisher, mqtt_client
from .demand import CitySimulation, Minute

__all__ = [
    "DEFAULT_RATES",
    "FAULT_NAMES",
    "TRUTH_HEADER",
    "CityFeed",
    "CityReport",
    "CitySimError",
    "FaultConfig",
    "Gateway",
    "SimMessage",
    "SimMinute",
    "TruthRow",
    "city_messages",
    "run_city",
    "truth_line",
]

logger = logging.getLogger(__name__)

MINUTE_MS = 60_000
COUNTER_KEEPALIVE_MS = 5 * MINUTE_MS
STATUS_EVERY_HEARTBEATS = 6  # DevStatusReq / battery report: hourly at the default heartbeat
BATTERY_FULL_V = 3.6
BATTERY_EMPTY_V = 2.4
MAX_OUTSTANDING = 5000
ACK_TIMEOUT_S = 60.0
STOP_RETRY_S = 2.0  # when stopped: how long messages that reached no subscriber are retried
TRUTH_HEADER = "time,lot_id,occupied,free,capacity"

FAULT_NAMES = ("drop", "duplicate", "late", "stuck", "flapping", "dead_battery",
               "counter_drift", "counter_reset", "counter_restart", "gateway_offline",
               "malformed")
# The rate each fault gets when switched on without one. Units differ by fault; see FaultConfig.
DEFAULT_RATES: dict[str, float] = {
    "drop": 0.01, "duplicate": 0.01, "late": 0.01, "stuck": 0.02, "flapping": 0.01,
    "dead_battery": 0.02, "counter_drift": 0.02, "counter_reset": 0.1, "counter_restart": 0.05,
    "gateway_offline": 1.0, "malformed": 0.005,
}
_SHARES = ("drop", "duplicate", "late", "dead_battery", "counter_drift", "malformed")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CitySimError(ValueError):
    """The city cannot be simulated as asked (one-line reason)."""


# -- faults ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Which faults to inject and how often. A rate of 0 switches a fault off (the default).

    Shares (0..1): ``drop``, ``duplicate``, ``late``, ``malformed`` of the messages;
    ``counter_drift`` of the entries a counter misses; ``dead_battery`` of the bay sensors
    whose battery runs flat (at least one when on). Per day of simulated time: ``stuck`` and
    ``flapping`` episodes per bay sensor, ``counter_reset`` (the device restarts from zero)
    and ``counter_restart`` (it restarts from another value, as a swapped or reconfigured
    controller does: entries and exits each anywhere below the modulus) per counter,
    ``gateway_offline`` outages per gateway (the first one within 1/rate days of the start).
    """

    drop: float = 0.0
    duplicate: float = 0.0
    late: float = 0.0
    stuck: float = 0.0
    flapping: float = 0.0
    dead_battery: float = 0.0
    counter_drift: float = 0.0
    counter_reset: float = 0.0
    counter_restart: float = 0.0
    gateway_offline: float = 0.0
    malformed: float = 0.0
    late_s: tuple[float, float] = (30.0, 300.0)  # delay of a late message
    duplicate_s: tuple[float, float] = (0.05, 2.0)  # a duplicate follows its original by
    stuck_h: tuple[float, float] = (2.0, 8.0)  # a stuck sensor stays frozen for
    flapping_min: tuple[float, float] = (2.0, 10.0)  # a flapping sensor flaps for
    flapping_every_s: tuple[float, float] = (2.0, 8.0)  # toggling every
    dead_battery_h: float | None = None  # 3.6 V to 2.4 V in; None: 80 % of the run (or 24 h)
    gateway_offline_min: float = 60.0

    def __post_init__(self) -> None:
        for name in FAULT_NAMES:
            rate = getattr(self, name)
            if not (isinstance(rate, int | float) and math.isfinite(rate) and rate >= 0):
                raise CitySimError(f"fault rate {name}={rate!r} must be a number >= 0")
            if name in _SHARES and rate > 1:
                raise CitySimError(f"fault rate {name}={rate} is a share and must be <= 1")
        for name in ("late_s", "duplicate_s", "stuck_h", "flapping_min", "flapping_every_s"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise CitySimError(f"fault setting {name}={(low, high)} must be 0 < low <= high")
        if self.dead_battery_h is not None and not self.dead_battery_h > 0:
            raise CitySimError("fault setting dead_battery_h must be > 0")
        if not self.gateway_offline_min > 0:
            raise CitySimError("fault setting gateway_offline_min must be > 0")

    @classmethod
    def parse(cls, names: str = "none", rates: Mapping[str, float] | None = None) -> FaultConfig:
        """``"drop,late"``, ``"all"`` or ``"none"`` at their default rates, then ``rates``
        (which also switch their faults on; a rate of 0 switches one off)."""
        chosen: dict[str, float] = {}
        text = names.strip().lower()
        if text == "all":
            chosen = dict(DEFAULT_RATES)
        elif text not in ("", "none"):
            for name in (part.strip() for part in text.split(",")):
                if name not in DEFAULT_RATES:
                    raise CitySimError(f"unknown fault {name!r} (known: {', '.join(FAULT_NAMES)})")
                chosen[name] = DEFAULT_RATES[name]
        for name, rate in (rates or {}).items():
            if name not in DEFAULT_RATES:
                raise CitySimError(f"unknown fault {name!r} (known: {', '.join(FAULT_NAMES)})")
            chosen[name] = rate
        get = chosen.get
        return cls(drop=get("drop", 0.0), duplicate=get("duplicate", 0.0),
                   late=get("late", 0.0), stuck=get("stuck", 0.0),
                   flapping=get("flapping", 0.0), dead_battery=get("dead_battery", 0.0),
                   counter_drift=get("counter_drift", 0.0),
                   counter_reset=get("counter_reset", 0.0),
                   counter_restart=get("counter_restart", 0.0),
                   gateway_offline=get("gateway_offline", 0.0),
                   malformed=get("malformed", 0.0))

    def enabled(self) -> list[str]:
        """The names of the faults that are on."""
        return [name for name in FAULT_NAMES if getattr(self, name) > 0]


# -- what the feed produces -----------------------------------------------------------------------

class SimMessage(NamedTuple):
    """One MQTT message: published at simulated ``time``; ``kind`` is native, counter, ttn,
    chirpstack or chirpstack_status; ``faults`` says what faults did to it: malformed, late,
    duplicate (the repeat; the original carries no mark)."""

    time: datetime
    topic: str
    payload: bytes
    kind: str
    faults: tuple[str, ...] = ()


class TruthRow(NamedTuple):
    """What really was in a lot at ``time``."""

    time: datetime
    lot_id: str
    occupied: int
    free: int
    capacity: int


def truth_line(row: TruthRow) -> str:
    """One CSV line (no newline) under ``TRUTH_HEADER``."""
    return f"{_iso_s(row.time)},{row.lot_id},{row.occupied},{row.free},{row.capacity}"


@dataclass(slots=True)
class SimMinute:
    """One simulated minute [time, end): the messages published in it (in order; a counter's
    end-of-minute reading at ``end`` included) and every lot's true occupancy at ``end``."""

    time: datetime
    end: datetime
    messages: list[SimMessage]
    truth: list[TruthRow]


@dataclass(frozen=True, slots=True)
class Gateway:
    """An invented LoRaWAN gateway of the city."""

    id: str
    eui: str
    latitude: float
    longitude: float
    altitude: int


# -- time formats ---------------------------------------------------------------------------------

def _moment(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _iso_s(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_ms(ms: int) -> str:
    return f"{_moment(ms):%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def _iso_ns(ms: int, sub_ms_ns: int) -> str:
    """RFC 3339 with nanoseconds, as network servers write it; ``sub_ms_ns`` < 1_000_000."""
    return f"{_moment(ms):%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}{sub_ms_ns:06d}Z"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _ulid(ms: int, rng: random.Random) -> str:
    """A ULID as The Things Stack puts in correlation ids (48-bit ms time + 80 random bits)."""
    value = (ms << 80) | rng.getrandbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _airtime_s(spreading_factor: int, payload_bytes: int) -> float:
    """LoRa time on air (125 kHz, CR 4/5, explicit header, 8 preamble symbols, CRC on)."""
    symbol = float(1 << spreading_factor) / 125_000
    low_rate = 1 if spreading_factor >= 11 else 0
    phy = 13 + payload_bytes  # MHDR + FHDR + FPort + MIC
    numerator = 8 * phy - 4 * spreading_factor + 28 + 16
    symbols = 8 + max(math.ceil(numerator / (4 * (spreading_factor - 2 * low_rate))) * 5, 0)
    return (8 + 4.25) * symbol + symbols * symbol


_EU868 = (868_100_000, 868_300_000, 868_500_000, 867_100_000, 867_300_000, 867_500_000,
          867_700_000, 867_900_000)


# -- the simulated devices ------------------------------------------------------------------------

@dataclass(slots=True)
class _Link:
    gateway: int
    rssi: float
    snr: float


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
    links: list[_Link] = field(default_factory=list)
    spreading_factor: int = 7
    dev_addr: str = ""
    session_key: str = ""
    battery_report: dict[str, Any] | None = None  # TTN last_battery_percentage


@dataclass(slots=True)
class _CounterDevice:
    lot: Lot
    index: int  # into City.lots
    entries: int
    exits: int
    last_sent: int
    next_reset: int | None = None
    next_restart: int | None = None


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
        self.start = _moment(self.start_ms)
        self.end = _moment(self.end_ms) if self.end_ms is not None else None
        self.stats: Counter[str] = Counter()
        self._ttn = _ttn_application(city)
        self._chirpstack = _chirpstack_application(city)
        name = f"parkleit-city:{city.id}"
        self._chirpstack_ids = (str(uuid.uuid5(uuid.NAMESPACE_URL, name + ":tenant")),
                                str(uuid.uuid5(uuid.NAMESPACE_URL, name + ":device-profile")))
        self._sim = CitySimulation(city, self.start, seed=seed)
        # Independent streams: switching one fault on does not reshuffle the others' choices.
        self._rng = random.Random(f"parkleit-city:{seed}:devices")  # radio, ids, noise
        self._fault_rng = {fault: random.Random(f"parkleit-city:{seed}:{fault}")
                           for fault in FAULT_NAMES}
        self._agenda: list[tuple[int, int, int, int, int]] = []  # ms, order, kind, sensor, value
        self._outbox: list[tuple[int, int, SimMessage]] = []  # send ms, order, message
        self._order = 0
        self._now = self.start_ms
        self._done = False
        self.gateways = self._invent_gateways()
        self.outages: list[tuple[int, datetime, datetime]] = []
        self._next_outage = [self._first_outage() for _ in self.gateways]
        self._open_outages: list[list[tuple[int, int]]] = [[] for _ in self.gateways]
        self.sensors = self._make_sensors()
        self._sensor_of = {sensor.bay.id: sensor for sensor in self.sensors}
        self.counters = self._make_counters()
        self.truth_at_start = self._truth(self.start, [m.occupied for m in self._sim.lots])

    # -- set-up -----------------------------------------------------------------------------

    def _invent_gateways(self) -> list[Gateway]:
        lora_lots = [lot for lot in self.city.lots
                     if any(bay.network != "native" for bay in lot.all_bays())]
        lots = lora_lots or list(self.city.lots)
        lat = sum(lot.latitude for lot in lots) / len(lots)
        lon = sum(lot.longitude for lot in lots) / len(lots)
        rng = self._rng
        count = rng.choice((2, 3))
        turn = rng.uniform(0, 2 * math.pi)
        gateways = []
        for n in range(count):
            angle = turn + 2 * math.pi * n / count
            distance = rng.uniform(250, 700)
            gateways.append(Gateway(
                id=f"{self.city.id}-gw-{n + 1}",
                eui=f"b827ebfffe{rng.getrandbits(24):06x}",
                latitude=round(lat + distance * math.cos(angle) / 110_540, 5),
                longitude=round(lon + distance * math.sin(angle)
                                / (111_320 * math.cos(math.radians(lat))), 5),
                altitude=rng.randrange(150, 200)))
        return gateways

    def _make_sensors(self) -> list[_Sensor]:
        rng = self._rng
        occupied: set[str] = set()
        for model in self._sim.lots:
            free = {model.bays[i] for i in model.free_bays}
            occupied.update(bay for bay in model.bays if bay not in free)
        sensors: list[_Sensor] = []
        for lot, bay in self.city.bays():
            if bay.network == "ttn" and self._ttn is None:
                raise CitySimError(f"bay {bay.id} is on TTN but the city config has no "
                                   "lorawan.ttn_applications")
            if bay.network == "chirpstack" and self._chirpstack is None:
                raise CitySimError(f"bay {bay.id} is on ChirpStack but the city config has no "
                                   "lorawan.chirpstack_applications")
            state = bay.id in occupied
            sensor = _Sensor(
                index=len(sensors), bay=bay, lot_id=lot.id, network=bay.network,
                occupied=state, shown=state, shown_since=self.start_ms - rng.randrange(
                    MINUTE_MS, 180 * MINUTE_MS), seq=rng.randrange(1, 20_000),
                battery_v=rng.uniform(3.45, 3.66),
                latitude=lot.latitude + rng.uniform(-0.0003, 0.0003),
                longitude=lot.longitude + rng.uniform(-0.0004, 0.0004))
            if bay.network != "native":
                self._radio(sensor)
            sensors.append(sensor)
            # First heartbeat at a random phase, so they spread over the interval.
            self._schedule(self.start_ms + rng.randrange(self.heartbeat_ms), _HEARTBEAT, sensor)
        self._plan_sensor_faults(sensors)
        return sensors

    def _radio(self, sensor: _Sensor) -> None:
        rng = self._rng
        ranked = sorted((self._distance(sensor, gw), n) for n, gw in enumerate(self.gateways))
        heard = ranked[:2] if rng.random() < 0.5 else ranked[:1]
        for distance, n in heard:
            rssi = -35 - 27 * math.log10(max(distance, 20.0)) + rng.gauss(0, 3)
            rssi = min(max(rssi, -124.0), -60.0)
            snr = min(max((rssi + 118) / 2.5 + rng.gauss(0, 1.5), -18.0), 12.0)
            sensor.links.append(_Link(n, rssi, snr))
        best = max(link.rssi for link in sensor.links)
        sensor.spreading_factor = 7 if best > -100 else 8 if best > -108 else (
            9 if best > -115 else 10)
        sensor.dev_addr = f"260b{rng.getrandbits(16):04x}".upper()
        sensor.session_key = _b64(rng.getrandbits(128).to_bytes(16, "big"))

    def _distance(self, sensor: _Sensor, gateway: Gateway) -> float:
        lat = math.radians(gateway.latitude)
        dx = (sensor.longitude - gateway.longitude) * 111_320 * math.cos(lat)
        dy = (sensor.latitude - gateway.latitude) * 110_540
        return math.hypot(dx, dy)

    def _plan_sensor_faults(self, sensors: list[_Sensor]) -> None:
        faults = self.faults
        if faults.dead_battery and sensors:
            rng = self._fault_rng["dead_battery"]
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
            rate = getattr(faults, name)
            if rate:
                for sensor in sensors:
                    self._schedule(self.start_ms + self._gap(name, rate), kind, sensor)

    def _make_counters(self) -> list[_CounterDevice]:
        rng = self._rng
        counters = []
        for index, (lot, model) in enumerate(zip(self.city.lots, self._sim.lots, strict=True)):
            if lot.counting != "counter":
                continue
            # A random reading, but one that does not wrap before ingest has seen it once.
            room = lot.counter_modulus - 2 * lot.capacity - 1
            offset = rng.randrange(room) if room > 0 else 0
            counter = _CounterDevice(lot, index, offset + model.occupied, offset,
                                     self.start_ms - rng.randrange(COUNTER_KEEPALIVE_MS))
            if self.faults.counter_reset:
                counter.next_reset = self.start_ms + self._gap("counter_reset",
                                                               self.faults.counter_reset)
            if self.faults.counter_restart:
                counter.next_restart = self.start_ms + self._gap("counter_restart",
                                                                 self.faults.counter_restart)
            counters.append(counter)
        return counters

    def _gap(self, name: str, per_day: float) -> int:
        """Milliseconds to the next episode of a fault that happens ``per_day`` times a day."""
        return max(1, round(self._fault_rng[name].expovariate(per_day) * 86_400_000))

    def _first_outage(self) -> tuple[int, int] | None:
        rate = self.faults.gateway_offline
        if not rate:
            return None
        begin = self.start_ms + round(self._fault_rng["gateway_offline"].uniform(0, 1 / rate)
                                      * 86_400_000)
        return begin, begin + round(self.faults.gateway_offline_min * MINUTE_MS)

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
            rest = [message._replace(time=_moment(end)) for message in self._drain(None)]
            if not rest:
                raise StopIteration
            return SimMinute(_moment(end), _moment(end), rest, [])
        return self._minute()

    def _minute(self) -> SimMinute:
        t0 = self._now
        t1 = t0 + MINUTE_MS
        minute = self._sim.step()
        self._plan_outages(t1)
        for second, bay_id, occupied in minute.bay_changes:  # in time order
            ms = t0 + min(int(second * 1000), MINUTE_MS - 1)
            self._schedule(ms, _CHANGE, self._sensor_of[bay_id], int(occupied))
        while self._agenda and self._agenda[0][0] < t1:
            ms, _, kind, index, value = heapq.heappop(self._agenda)
            self._sensor_event(ms, kind, self.sensors[index], value)
        for counter in self.counters:
            self._counter_minute(counter, minute, t1)
        self._now = t1
        end = _moment(t1)
        return SimMinute(_moment(t0), end, list(self._drain(t1)),
                         self._truth(end, minute.occupied))

    def _truth(self, moment: datetime, occupied: list[int]) -> list[TruthRow]:
        return [TruthRow(moment, lot.id, n, lot.capacity - n, lot.capacity)
                for lot, n in zip(self.city.lots, occupied, strict=True)]

    def _schedule(self, ms: int, kind: int, sensor: _Sensor, value: int = 0) -> None:
        self._order += 1
        heapq.heappush(self._agenda, (ms, self._order, kind, sensor.index, value))

    def _drain(self, until: int | None) -> Iterator[SimMessage]:
        while self._outbox and (until is None or self._outbox[0][0] <= until):
            yield heapq.heappop(self._outbox)[2]

    # -- bay sensors ------------------------------------------------------------------------

    def _sensor_event(self, ms: int, kind: int, sensor: _Sensor, value: int) -> None:
        faults = self.faults
        if kind == _CHANGE:
            sensor.occupied = bool(value)
            if not (sensor.stuck_until or sensor.flap_until):
                self._report(sensor, ms, sensor.occupied, heartbeat=False)
        elif kind == _HEARTBEAT:
            self._report(sensor, ms, sensor.shown, heartbeat=True)
            jitter = self._rng.randrange(-3000, 3001)
            self._schedule(ms + self.heartbeat_ms + jitter, _HEARTBEAT, sensor)
        elif kind == _STUCK:
            low, high = faults.stuck_h
            length = round(self._fault_rng["stuck"].uniform(low, high) * 3_600_000)
            if self._free_for_episode(sensor, ms):
                sensor.stuck_until = ms + length
                self.stats["stuck_episodes"] += 1
                self._schedule(ms + length, _UNSTICK, sensor)
            self._schedule(ms + length + self._gap("stuck", faults.stuck), _STUCK, sensor)
        elif kind == _FLAP:
            rng = self._fault_rng["flapping"]
            low, high = faults.flapping_min
            length = round(rng.uniform(low, high) * MINUTE_MS)
            if self._free_for_episode(sensor, ms):
                sensor.flap_until = ms + length
                self.stats["flapping_episodes"] += 1
                self._schedule(ms + self._flap_step(), _TOGGLE, sensor)
                self._schedule(ms + length, _UNFLAP, sensor)
            self._schedule(ms + length + self._gap("flapping", faults.flapping), _FLAP, sensor)
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
        low, high = self.faults.flapping_every_s
        return round(self._fault_rng["flapping"].uniform(low, high) * 1000)

    def _voltage(self, sensor: _Sensor, ms: int) -> float:
        if sensor.dies_at is None:
            return round(sensor.battery_v + self._rng.uniform(-0.006, 0.006), 3)
        drained = min(max((ms - self.start_ms) / max(sensor.dies_at - self.start_ms, 1), 0.0),
                      1.0)
        volts = BATTERY_FULL_V - (BATTERY_FULL_V - BATTERY_EMPTY_V) * drained
        return round(max(volts + self._rng.uniform(-0.004, 0.004), BATTERY_EMPTY_V), 3)

    @staticmethod
    def _percent(volts: float) -> float:
        share = (volts - BATTERY_EMPTY_V) / (BATTERY_FULL_V - BATTERY_EMPTY_V)
        return round(min(max(share, 0.0), 1.0) * 100, 1)

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
        if sensor.network == "native":
            topic = f"parkleit/v1/{self.city.id}/bays/{sensor.bay.id}"
            body: dict[str, Any] = {"occupied": occupied, "ts": _iso_ms(ms), "seq": sensor.seq}
            if heartbeat:
                body["battery_v"] = self._voltage(sensor, ms)
            self._emit(ms, topic, _dumps(body), "native")
            return
        heard = [link for link in sensor.links if not self._offline(link.gateway, ms)]
        if not heard:
            self.stats["gateway_offline_lost"] += 1
            return
        battery_due = heartbeat and sensor.heartbeats % STATUS_EVERY_HEARTBEATS == 1
        if sensor.network == "ttn":
            frame = bytes([int(occupied), self._temperature(ms) & 0xFF]) if heartbeat else (
                bytes([int(occupied)]))
            if battery_due:
                sensor.battery_report = {
                    "f_cnt": sensor.seq, "value": self._percent(self._voltage(sensor, ms)),
                    "received_at": _iso_ns(ms - 1, self._rng.randrange(10**6))}
            self._emit(ms, *self._ttn_uplink(sensor, ms, 2 if heartbeat else 1, frame, heard),
                       "ttn")
        else:
            minutes = min(previous_for // MINUTE_MS, 127)
            frame = bytes([int(occupied) | (0 if heartbeat else minutes << 1)])
            self._emit(ms, *self._chirpstack_up(sensor, ms, 2 if heartbeat else 1, frame, heard),
                       "chirpstack")
            if battery_due:
                later = ms + self._rng.randrange(2, 40)
                self._emit(later, *self._chirpstack_status(sensor, later), "chirpstack_status")

    def _temperature(self, ms: int) -> int:
        hour = (ms / 3_600_000) % 24
        return round(9 + 6 * math.sin(2 * math.pi * (hour - 9) / 24) + self._rng.gauss(0, 1))

    def _plan_outages(self, until: int) -> None:
        """Open the gateway outages that begin before ``until``."""
        for n, upcoming in enumerate(self._next_outage):
            while upcoming is not None and upcoming[0] < until:
                self._open_outages[n] = [*self._open_outages[n][-1:], upcoming]
                self.outages.append((n, _moment(upcoming[0]), _moment(upcoming[1])))
                self.stats["gateway_outages"] += 1
                begin = upcoming[1] + self._gap("gateway_offline", self.faults.gateway_offline)
                upcoming = (begin, begin + round(self.faults.gateway_offline_min * MINUTE_MS))
            self._next_outage[n] = upcoming

    def _offline(self, gateway: int, ms: int) -> bool:
        return any(begin <= ms < end for begin, end in self._open_outages[gateway])

    def _ttn_uplink(self, sensor: _Sensor, ms: int, port: int, frame: bytes,
                    heard: list[_Link]) -> tuple[str, bytes]:
        assert self._ttn is not None and sensor.bay.dev_eui is not None
        rng = self._rng
        app, tenant = self._ttn
        eui = sensor.bay.dev_eui
        device_id = f"eui-{eui}"
        sf = sensor.spreading_factor
        channel = rng.randrange(len(_EU868))
        gateway_ms = ms - rng.randrange(60, 250)  # received by the gateways, then the servers
        rx = []
        for link in heard:
            gateway = self.gateways[link.gateway]
            rssi = round(link.rssi + rng.gauss(0, 2))
            rx.append({
                "gateway_ids": {"gateway_id": gateway.id, "eui": gateway.eui.upper()},
                "time": _iso_ns(gateway_ms, rng.randrange(10**6)),
                "timestamp": (gateway_ms * 1000 + link.gateway * 977_123_457) % 2**32,
                "rssi": rssi,
                "channel_rssi": rssi,
                "snr": round(link.snr + rng.gauss(0, 1.0) * 4) / 4,
                "location": {"latitude": gateway.latitude, "longitude": gateway.longitude,
                             "altitude": gateway.altitude, "source": "SOURCE_REGISTRY"},
                "uplink_token": _b64(rng.getrandbits(352).to_bytes(44, "big")),
                "channel_index": channel,
                "received_at": _iso_ns(gateway_ms + rng.randrange(5, 30), rng.randrange(10**6)),
            })
        uplink: dict[str, Any] = {
            "session_key_id": sensor.session_key,
            "f_port": port,
            "f_cnt": sensor.seq,
            "frm_payload": _b64(frame),
            "rx_metadata": rx,
            "settings": {
                "data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": sf,
                                       "coding_rate": "4/5"}},
                "frequency": str(_EU868[channel]),
                "timestamp": rx[0]["timestamp"],
                "time": rx[0]["time"],
            },
            "received_at": _iso_ns(ms - rng.randrange(5, 40), rng.randrange(10**6)),
            "consumed_airtime": f"{_airtime_s(sf, len(frame)):.6f}s",
            "version_ids": {"brand_id": "bosch", "model_id": "parking-lot-sensor",
                            "hardware_version": "1.0", "firmware_version": "0.36.0",
                            "band_id": "EU_863_870"},
            "network_ids": {"net_id": "000013", "ns_id": "EC656E0000000181",
                            "tenant_id": tenant, "cluster_id": "eu1",
                            "cluster_address": "eu1.cloud.thethings.network"},
        }
        if sensor.battery_report is not None:
            uplink["last_battery_percentage"] = sensor.battery_report
        body = {
            "end_device_ids": {
                "device_id": device_id,
                "application_ids": {"application_id": app},
                "dev_eui": eui.upper(),
                "join_eui": "70B3D57ED0000000",
                "dev_addr": sensor.dev_addr,
            },
            "correlation_ids": [f"{prefix}:{_ulid(ms, rng)}" for prefix in (
                "as:up", "gs:conn", "gs:up:host", "gs:uplink", "ns:uplink",
                "rpc:/ttn.lorawan.v3.GsNs/HandleUplink", "rpc:/ttn.lorawan.v3.NsAs/HandleUplink")],
            "received_at": _iso_ns(ms - 1, rng.randrange(10**6)),
            "uplink_message": uplink,
        }
        # The topic names the application as the config (and the MQTT username) does.
        topic = f"v3/{self.city.lorawan.ttn_applications[0]}/devices/{device_id}/up"
        return topic, _dumps(body)

    def _device_info(self, sensor: _Sensor) -> dict[str, Any]:
        assert self._chirpstack is not None and sensor.bay.dev_eui is not None
        return {
            "tenantId": self._chirpstack_ids[0],
            "tenantName": self.city.city.name,
            "applicationId": self._chirpstack,
            "applicationName": "parking",
            "deviceProfileId": self._chirpstack_ids[1],
            "deviceProfileName": "Nwave parking sensor",
            "deviceName": sensor.bay.id,
            "devEui": sensor.bay.dev_eui,
            "tags": {"lot": sensor.lot_id, "kind": sensor.bay.kind},
        }

    def _chirpstack_up(self, sensor: _Sensor, ms: int, port: int, frame: bytes,
                       heard: list[_Link]) -> tuple[str, bytes]:
        assert self._chirpstack is not None and sensor.bay.dev_eui is not None
        rng = self._rng
        sf = sensor.spreading_factor
        gateway_ms = ms - rng.randrange(40, 200)  # radio time; the event follows deduplication
        body: dict[str, Any] = {
            "deduplicationId": _uuid4(rng),
            "time": _iso_ns(ms - 1, rng.randrange(10**6)),
            "deviceInfo": self._device_info(sensor),
            "devAddr": sensor.dev_addr.lower(),
            "adr": True,
            "dr": 12 - sf,
            "fCnt": sensor.seq,
            "fPort": port,
        }
        if port == 1:
            body["confirmed"] = True  # Nwave sends status changes confirmed
        body["data"] = _b64(frame)
        body["rxInfo"] = [{
            "gatewayId": self.gateways[link.gateway].eui,
            "uplinkId": rng.getrandbits(32),
            "nsTime": _iso_ns(gateway_ms + rng.randrange(5, 30), rng.randrange(10**6)),
            "rssi": round(link.rssi + rng.gauss(0, 2)),
            "snr": round(link.snr + rng.gauss(0, 1.0), 1),
            "channel": rng.randrange(len(_EU868)),
            "location": {"latitude": self.gateways[link.gateway].latitude,
                         "longitude": self.gateways[link.gateway].longitude},
            "context": _b64(rng.getrandbits(32).to_bytes(4, "big")),
            "metadata": {"region_config_id": "eu868", "region_common_name": "EU868"},
            "crcStatus": "CRC_OK",
        } for link in heard]
        body["txInfo"] = {
            "frequency": _EU868[rng.randrange(len(_EU868))],
            "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": sf,
                                    "codeRate": "CR_4_5"}},
        }
        body["regionConfigId"] = "eu868"
        topic = f"application/{self._chirpstack}/device/{sensor.bay.dev_eui}/event/up"
        return topic, _dumps(body)

    def _chirpstack_status(self, sensor: _Sensor, ms: int) -> tuple[str, bytes]:
        assert self._chirpstack is not None and sensor.bay.dev_eui is not None
        rng = self._rng
        body = {
            "deduplicationId": _uuid4(rng),
            "time": _iso_ns(ms - 1, rng.randrange(10**6)),
            "deviceInfo": self._device_info(sensor),
            "margin": rng.randrange(2, 20),
            "batteryLevel": self._percent(self._voltage(sensor, ms)),
        }
        topic = f"application/{self._chirpstack}/device/{sensor.bay.dev_eui}/event/status"
        return topic, _dumps(body)

    # -- counters ---------------------------------------------------------------------------

    def _counter_minute(self, counter: _CounterDevice, minute: Minute, t1: int) -> None:
        faults = self.faults
        if counter.next_reset is not None and counter.next_reset < t1:
            counter.entries = counter.exits = 0
            counter.next_reset = t1 + self._gap("counter_reset", faults.counter_reset)
            self.stats["counter_resets"] += 1
        if counter.next_restart is not None and counter.next_restart < t1:
            rng, modulus = self._fault_rng["counter_restart"], counter.lot.counter_modulus
            counter.entries, counter.exits = rng.randrange(modulus), rng.randrange(modulus)
            counter.next_restart = t1 + self._gap("counter_restart", faults.counter_restart)
            self.stats["counter_restarts"] += 1
        entries = minute.entries[counter.index]
        exits = minute.exits[counter.index]
        if faults.counter_drift and entries:
            rng = self._fault_rng["counter_drift"]
            missed = sum(rng.random() < faults.counter_drift for _ in range(entries))
            entries -= missed
            self.stats["counter_missed_entries"] += missed
        counter.entries += entries
        counter.exits += exits
        if entries or exits or t1 - counter.last_sent >= COUNTER_KEEPALIVE_MS:
            counter.last_sent = t1
            modulus = counter.lot.counter_modulus
            body = {"entries": counter.entries % modulus, "exits": counter.exits % modulus,
                    "ts": _iso_ms(t1)}
            self._emit(t1, f"parkleit/v1/{self.city.id}/lots/{counter.lot.id}/counter",
                       _dumps(body), "counter")

    # -- delivery faults --------------------------------------------------------------------

    def _emit(self, ms: int, topic: str, payload: bytes, kind: str) -> None:
        faults, rngs = self.faults, self._fault_rng
        self.stats[f"generated_{kind}"] += 1
        marks: tuple[str, ...] = ()
        if faults.malformed and rngs["malformed"].random() < faults.malformed:
            payload = _corrupt(payload, kind, rngs["malformed"])
            marks = ("malformed",)
            self.stats["malformed"] += 1
        if faults.drop and rngs["drop"].random() < faults.drop:
            self.stats["dropped"] += 1
            return
        send = ms
        if faults.late and rngs["late"].random() < faults.late:
            send += round(rngs["late"].uniform(*faults.late_s) * 1000)
            marks = (*marks, "late")
            self.stats["late"] += 1
        self._post(send, SimMessage(_moment(send), topic, payload, kind, marks))
        if faults.duplicate and rngs["duplicate"].random() < faults.duplicate:
            again = send + round(rngs["duplicate"].uniform(*faults.duplicate_s) * 1000)
            self._post(again, SimMessage(_moment(again), topic, payload, kind,
                                         (*marks, "duplicate")))
            self.stats["duplicated"] += 1

    def _post(self, ms: int, message: SimMessage) -> None:
        self._order += 1
        heapq.heappush(self._outbox, (ms, self._order, message))


def _ttn_application(city: City) -> tuple[str, str] | None:
    apps = city.lorawan.ttn_applications
    if not apps:
        return None
    app, _, tenant = apps[0].partition("@")
    return app, tenant or "ttn"


def _chirpstack_application(city: City) -> str | None:
    apps = city.lorawan.chirpstack_applications
    return apps[0] if apps else None


_WRONG_TYPES: dict[str, tuple[tuple[str, ...], ...]] = {
    # Paths to a field and what to put there instead; every one is refused by ingest.
    "native": (("occupied",), ("ts",), ("seq",)),
    "counter": (("entries",), ("exits",), ("ts",)),
    "ttn": (("uplink_message", "f_port"), ("uplink_message", "frm_payload"),
            ("end_device_ids", "dev_eui"), ("received_at",)),
    "chirpstack": (("fPort",), ("data",), ("time",), ("deviceInfo", "devEui")),
    "chirpstack_status": (("time",), ("batteryLevel",), ("deviceInfo",)),
}


def _corrupt(payload: bytes, kind: str, rng: random.Random) -> bytes:
    """A broken copy of ``payload``: truncated JSON, a field of the wrong type, or garbage."""
    how = rng.choice(("truncated", "wrong_type", "garbage"))
    if how == "truncated":
        return payload[:rng.randrange(1, len(payload))]
    if how == "garbage":
        # A raw frame or line noise where JSON belongs: never valid UTF-8 from the first byte.
        return bytes([rng.randrange(0x80, 0xC0), rng.randrange(1, 256)]) + bytes(
            rng.randrange(256) for _ in range(rng.randrange(0, 24)))
    body = json.loads(payload)
    path = rng.choice(_WRONG_TYPES[kind])
    node = body
    for key in path[:-1]:
        node = node[key]
    value = node[path[-1]]
    node[path[-1]] = (str(value) if isinstance(value, bool | int | float) else
                      "%%%" if path[-1] in ("frm_payload", "data") else
                      [value] if isinstance(value, dict) else rng.randrange(10**9))
    return _dumps(body)


def city_messages(city: City, start: datetime, *, seed: int = 1,
                  faults: FaultConfig | None = None, heartbeat_min: float = 10.0,
                  duration_s: float) -> Iterator[SimMessage]:
    """Every message of a simulation, in publishing order (pure: no broker, no clock)."""
    feed = CityFeed(city, start, seed=seed, faults=faults, heartbeat_min=heartbeat_min,
                    duration_s=duration_s)
    for minute in feed:
        yield from minute.messages


# -- publishing -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CityReport:
    """What ``run_city`` did. ``faults`` counts fault effects (messages or episodes);
    ``unacknowledged`` of the published messages the broker never took; ``republished`` how
    often a message was published again because it had reached no subscriber (ingest
    re-subscribing after a broker restart), ``unrouted`` those given up so."""

    start: datetime
    end: datetime  # simulated time reached
    published: int
    by_kind: dict[str, int]
    faults: dict[str, int]
    truth_rows: int
    elapsed_s: float
    unacknowledged: int = 0
    stopped: bool = False  # by stop_event (SIGINT/SIGTERM) before the end
    republished: int = 0
    unrouted: int = 0

    def per_hour(self) -> float:
        """Messages per simulated hour."""
        hours = (self.end - self.start).total_seconds() / 3600
        return self.published / hours if hours > 0 else 0.0


class Pacer:
    """Waits until a simulated moment may be published: simulated time runs ``speed`` times
    faster than real time from the first call (0 = as fast as possible), and never ahead of
    the wall clock. ``clock`` (epoch seconds) and ``sleep`` (returns True to stop) are
    replaceable for tests."""

    def __init__(self, speed: float, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], bool] | None = None) -> None:
        self.speed = speed
        self.clock = clock
        self._stop = threading.Event()
        self.sleep = sleep or self._stop.wait
        self._anchor: tuple[float, float] | None = None  # (simulated s, clock s)

    def wait_until(self, moment: datetime) -> bool:
        """Sleep until ``moment`` is due; False if asked to stop meanwhile."""
        target = moment.timestamp()
        if self._anchor is None:
            self._anchor = (target, self.clock())
        while True:
            now = self.clock()
            delay = target - now  # never ahead of the wall clock
            if self.speed > 0:
                delay = max(delay, self._anchor[1] + (target - self._anchor[0]) / self.speed - now)
            if delay <= 0.0005:
                return True
            if self.sleep(min(delay, 1.0)):
                return False


def run_city(settings: Settings, city: City, *, start: datetime, speed: float,
             duration_s: float, seed: int, faults: FaultConfig, truth_path: Path | None,
             stop_event: threading.Event | None = None, heartbeat_min: float = 10.0,
             pacer: Pacer | None = None,
             publish: Callable[[SimMessage], None] | None = None) -> CityReport:
    """Publish a city simulation (QoS 1) until ``duration_s`` of simulated time (0 = until
    ``stop_event``), writing the ground truth CSV to ``truth_path`` as it goes.

    ``publish`` replaces the MQTT client (tests); ``pacer`` the wall clock. A message whose
    PUBACK says it reached no subscriber is published again (``RoutedPublisher``): Mosquitto
    2.0 forgets shared subscriptions in a restart, until ingest has subscribed again.
    """
    if speed < 0:
        raise CitySimError("speed must be >= 0")
    if start.tzinfo is None:
        raise CitySimError("start must be timezone-aware")
    now = settings.clock.now()
    if start > now + timedelta(seconds=1):
        raise CitySimError("start is in the future: simulated time may not run ahead of the "
                           "wall clock (ingest refuses readings from the future)")
    if start < now - timedelta(days=29):
        logger.warning("start is more than 29 days ago: ingest refuses readings older than "
                       "30 days")
    feed = CityFeed(city, start, seed=seed, faults=faults, heartbeat_min=heartbeat_min,
                    duration_s=duration_s)
    stop = stop_event or threading.Event()
    began = time.monotonic()
    by_kind: Counter[str] = Counter()
    published = truth_rows = 0
    router: RoutedPublisher | None = None
    client = None
    if publish is None:
        client = mqtt_client(settings, f"parkleit-city-{city.id}-{seed}-{random.getrandbits(24):x}")
        routed = router = RoutedPublisher(client)

        def to_broker(message: SimMessage) -> None:
            routed.publish(message.topic, message.payload)

        def nap(seconds: float) -> bool:
            routed.settle()  # retries fall due while the pacer waits for the next message
            return stop.wait(min(seconds, 0.25))

        send: Callable[[SimMessage], None] = to_broker
        pacer = pacer or Pacer(speed, clock=settings.clock.timestamp, sleep=nap)
    else:
        send = publish
        pacer = pacer or Pacer(speed, clock=settings.clock.timestamp, sleep=stop.wait)

    truth: TextIO | None = None
    reached = feed.start
    stopped = False
    logger.info("simulating %s from %s at speed %g (%s; faults: %s)", city.id,
                _iso_s(feed.start), speed,
                f"{duration_s:g} s of simulated time" if duration_s else "until stopped",
                ", ".join(faults.enabled()) or "none")
    try:
        if truth_path is not None:
            truth = truth_path.open("w", encoding="utf-8", newline="")
            truth.write(TRUTH_HEADER + "\n")
            truth.writelines(truth_line(row) + "\n" for row in feed.truth_at_start)
            truth_rows += len(feed.truth_at_start)
            truth.flush()
        for minute in feed:
            for message in minute.messages:
                if stop.is_set() or not pacer.wait_until(message.time):
                    stopped = True
                    break
                send(message)
                published += 1
                by_kind[message.kind] += 1
                if router is not None:
                    router.settle()
                    if router.outstanding > MAX_OUTSTANDING:
                        router.wait(MAX_OUTSTANDING, ACK_TIMEOUT_S)
            if stopped or (minute.truth and not pacer.wait_until(minute.end)):
                stopped = True
                break
            reached = minute.end
            if truth is not None and minute.truth:
                truth.writelines(truth_line(row) + "\n" for row in minute.truth)
                truth_rows += len(minute.truth)
                truth.flush()
            if stop.is_set():
                stopped = True
                break
        # Stopped: every PUBACK still, but what reached no subscriber only briefly.
        if router is not None and not (
                router.wait(0, ACK_TIMEOUT_S, retry=not stopped)
                and router.wait(0, STOP_RETRY_S if stopped else ACK_TIMEOUT_S)):
            logger.warning("the broker acknowledged %d of %d messages within %.0f s",
                           published - router.unacknowledged, published, ACK_TIMEOUT_S)
    finally:
        if truth is not None:
            truth.close()
        if client is not None:
            client.disconnect()
            client.loop_stop()
    unacknowledged = republished = unrouted = 0
    if router is not None:
        router.give_up()
        unacknowledged, republished, unrouted = (router.unacknowledged, router.republished,
                                                 router.unrouted)
        if router.refused:
            logger.warning("the broker refused %d messages", router.refused)
        if republished:
            logger.info("published %d times again what had reached no subscriber (ingest "
                        "not subscribed yet, e.g. after a broker restart)", republished)
        if unrouted:
            logger.warning("%d messages reached no subscriber and were given up", unrouted)
    fault_counts = {key: value for key, value in sorted(feed.stats.items())
                    if not key.startswith("generated_")}
    return CityReport(feed.start, reached, published, dict(sorted(by_kind.items())),
                      fault_counts, truth_rows, time.monotonic() - began, unacknowledged,
                      stopped, republished, unrouted)

