"""Payload decoders: MQTT topic + bytes in, typed readings out, or DecodeError with a reason.

Pure functions of (topic, payload, receive time, registry): no I/O, so they are fuzzed directly.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.charging import EvseReading, EvseStatus
from core.city import City

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "BayReading",
    "CounterReading",
    "DecodeError",
    "Decoder",
    "HealthReading",
    "Reading",
]

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_FUTURE = timedelta(minutes=5)
MAX_AGE = timedelta(days=30)
_COUNTER_MAX = 2**63 - 1
_FCNT_MAX = 2**32 - 1  # LoRaWAN frame counters are 32 bits
_FPORT_MAX = 255


class DecodeError(ValueError):
    """The message cannot be used; ``str(error)`` is the reason stored in dead_letters."""


@dataclass(frozen=True, slots=True)
class BayReading:
    """A bay sensor said the bay is (not) occupied at ``time``."""

    bay_id: str
    time: datetime
    occupied: bool
    seq: int | None
    source: str


@dataclass(frozen=True, slots=True)
class CounterReading:
    """A garage counter: cumulative entries/exits, or an occupied count, at ``time``."""

    lot_id: str
    time: datetime
    entries: int | None = None
    exits: int | None = None
    occupied: int | None = None


@dataclass(frozen=True, slots=True)
class HealthReading:
    """Battery and radio state of a sensor at ``time``."""

    sensor_id: str
    time: datetime
    battery_v: float | None = None
    battery_pct: float | None = None
    rssi: float | None = None
    snr: float | None = None
    gateway_id: str | None = None
    frame_count: int | None = None


Reading = BayReading | CounterReading | HealthReading


def _reject_constant(name: str) -> float:
    raise DecodeError(f"JSON constant {name} is not allowed")


def _json_object(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        value = json.loads(payload, parse_constant=_reject_constant)
    except DecodeError:
        raise
    except RecursionError:
        raise DecodeError("JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(f"not JSON: {str(exc)[:120]}") from None
    if not isinstance(value, dict):
        raise DecodeError(f"JSON must be an object, got {type(value).__name__}")
    return value


def _field(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = obj.get(key)
    if value is None:
        raise DecodeError(f"missing field {key!r}")
    if isinstance(value, bool) and kind is not bool:
        raise DecodeError(f"field {key!r} must be {_kind_name(kind)}, got bool")
    if not isinstance(value, kind):
        raise DecodeError(f"field {key!r} must be {_kind_name(kind)}, got {type(value).__name__}")
    return value


def _optional(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    return None if obj.get(key) is None else _field(obj, key, kind)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _number(obj: Mapping[str, Any], key: str, low: float, high: float) -> float | None:
    value = _optional(obj, key, (int, float))
    if value is None:
        return None
    try:
        number = float(value)
    except OverflowError:  # a JSON integer beyond the float range
        number = math.inf
    if not math.isfinite(number) or not low <= number <= high:
        raise DecodeError(f"field {key!r} out of range [{low}, {high}]: {str(value)[:32]}")
    return number


def _count(obj: Mapping[str, Any], key: str, *, required: bool,
           high: int = _COUNTER_MAX) -> int | None:
    value: int | None = _field(obj, key, int) if required else _optional(obj, key, int)
    if value is not None and not 0 <= value <= high:
        raise DecodeError(f"field {key!r} out of range [0, {high}]: {str(value)[:32]}")
    return value


class Decoder:
    """Turns one MQTT message into readings for a city's registry."""

    def __init__(self, city: City) -> None:
        self.city = city
        self.prefix = f"parkleit/v1/{city.id}/"
        self._bays = {bay.id for _, bay in city.bays()}
        self._lots = {lot.id: lot for lot in city.lots}
        self._devices = {bay.dev_eui: bay.id for _, bay in city.bays() if bay.dev_eui}
        self._evses = {evse.evse_id for _, evse in city.evses()}

    def subscriptions(self) -> list[str]:
        """Topic filters (without the shared-subscription prefix) this decoder understands."""
        filters = [f"{self.prefix}bays/+", f"{self.prefix}lots/+/counter",
                   f"{self.prefix}chargers/+/status"]
        filters += [f"v3/{app}/devices/+/up" for app in self.city.lorawan.ttn_applications]
        for app in self.city.lorawan.chirpstack_applications:
            filters += [f"application/{app}/device/+/event/up",
                        f"application/{app}/device/+/event/status"]
        return filters

    def decode(self, topic: str, payload: bytes, received: datetime) -> list[Reading]:
        """The readings in one message; raises DecodeError with the reason otherwise."""
        if topic.startswith(self.prefix):
            rest = topic[len(self.prefix):].split("/")
            if len(rest) == 2 and rest[0] == "bays":
                return self._native_bay(rest[1], payload, received)
            if len(rest) == 3 and rest[0] == "lots" and rest[2] == "counter":
                return [self._counter(rest[1], payload, received)]
        parts = topic.split("/")
        if len(parts) == 5 and parts[0] == "v3" and parts[2] == "devices" and parts[4] == "up":
            return self._ttn_uplink(parts[1], parts[3], payload, received)
        if (len(parts) == 6 and parts[0] == "application" and parts[2] == "device"
                and parts[4] == "event" and parts[5] in ("up", "status")):
            return self._chirpstack(parts[3], parts[5], payload, received)
        raise DecodeError("topic not understood")

    # -- native formats --------------------------------------------------------------------

    def _native_bay(self, bay_id: str, payload: bytes, received: datetime) -> list[Reading]:
        if bay_id not in self._bays:
            raise DecodeError(f"unknown bay {bay_id[:64]!r}")
        body = _json_object(payload)
        occupied = _field(body, "occupied", bool)
        moment = self._time(body, "ts", received)
        seq = _count(body, "seq", required=False)
        readings: list[Reading] = [BayReading(bay_id, moment, occupied, seq, "native")]
        battery_v = _number(body, "battery_v", 0.0, 10.0)
        if battery_v is not None:
            readings.append(HealthReading(bay_id, moment, battery_v=battery_v))
        return readings

    def charger_status(self, topic: str, payload: bytes,
                       received: datetime) -> EvseReading | None:
        """The reading of a charging point's status topic (``{"status": "<OCPI EVSE status>",
        "ts": RFC 3339}`` of a known point); None if ``topic`` is not one (``decode`` is for
        the sensors' topics); DecodeError with the reason if it cannot be used."""
        if not topic.startswith(self.prefix):
            return None
        rest = topic[len(self.prefix):].split("/")
        if len(rest) != 3 or rest[0] != "chargers" or rest[2] != "status":
            return None
        evse_id = rest[1]
        if evse_id not in self._evses:
            raise DecodeError(f"unknown EVSE {evse_id[:64]!r}")
        body = _json_object(payload)
        text = _field(body, "status", str)
        try:
            status = EvseStatus(text)
        except ValueError:
            raise DecodeError(f"field 'status' is not an OCPI EVSE status: "
                              f"{_clean_text(text)[:32]!r}") from None
        return EvseReading(evse_id, status, self._time(body, "ts", received), "mqtt")

    def _counter(self, lot_id: str, payload: bytes, received: datetime) -> CounterReading:
        lot = self._lots.get(lot_id)
        if lot is None:
            raise DecodeError(f"unknown lot {lot_id[:64]!r}")
        if lot.counting != "counter":
            raise DecodeError(f"lot {lot_id!r} is counted by bays, not by a counter")
        body = _json_object(payload)
        moment = self._time(body, "ts", received)
        if "entries" in body or "exits" in body:
            entries = _count(body, "entries", required=True)
            exits = _count(body, "exits", required=True)
            return CounterReading(lot_id, moment, entries=entries, exits=exits)
        if "occupied" in body:
            return CounterReading(lot_id, moment, occupied=_count(body, "occupied", required=True))
        raise DecodeError("counter message needs entries and exits, or occupied")

    # -- LoRaWAN network servers -----------------------------------------------------------

    def _ttn_uplink(self, topic_app: str, topic_device: str, payload: bytes,
                    received: datetime) -> list[Reading]:
        body = _json_object(payload)
        ids = _field(body, "end_device_ids", dict)
        # The topic names the device (v3/{application}@{tenant}/devices/{device_id}/up); a body
        # naming another one is refused, as ChirpStack's are: neither is to be believed.
        if _field(ids, "device_id", str) != topic_device:
            raise DecodeError("device_id in the payload differs from the topic")
        app_ids = _optional(ids, "application_ids", dict)
        if app_ids is not None and _field(app_ids, "application_id", str) != (
                topic_app.partition("@")[0]):
            raise DecodeError("application_id in the payload differs from the topic")
        dev_eui = _field(ids, "dev_eui", str).lower()
        bay_id = self._bay_for_device(dev_eui)
        uplink = _field(body, "uplink_message", dict)
        moment = self._time(body, "received_at", received)
        # The Things Stack omits zero values: no f_port is port 0 (MAC only), no f_cnt is 0.
        f_port = _count(uplink, "f_port", required=False, high=_FPORT_MAX) or 0
        frame = _count(uplink, "f_cnt", required=False, high=_FCNT_MAX) or 0
        decoded = _optional(uplink, "decoded_payload", dict)
        occupied = self._occupancy(decoded, _optional(uplink, "frm_payload", str), f_port)
        battery_v, battery_pct = _battery(decoded)
        health = HealthReading(
            bay_id, moment, battery_v=battery_v, battery_pct=battery_pct, frame_count=frame,
            **_best_gateway(
                _optional(uplink, "rx_metadata", list) or [], "gateway_ids", "rssi", "snr"),
        )
        battery = _optional(uplink, "last_battery_percentage", dict)
        if battery is not None:
            health = _with_battery_pct(health, _number(battery, "value", 0, 100))
        readings: list[Reading] = [health]
        if occupied is not None:
            readings.insert(0, BayReading(bay_id, moment, occupied, frame, "ttn"))
        return readings

    def _chirpstack(self, topic_eui: str, event: str, payload: bytes,
                    received: datetime) -> list[Reading]:
        body = _json_object(payload)
        info = _field(body, "deviceInfo", dict)
        dev_eui = _field(info, "devEui", str).lower()
        if dev_eui != topic_eui.lower():
            raise DecodeError("devEui in the payload differs from the topic")
        bay_id = self._bay_for_device(dev_eui)
        moment = self._time(body, "time", received)
        if event == "status":
            return [HealthReading(bay_id, moment,
                                  battery_pct=_number(body, "batteryLevel", 0, 100))]
        f_port = _count(body, "fPort", required=False, high=_FPORT_MAX) or 0
        frame = _count(body, "fCnt", required=False, high=_FCNT_MAX) or 0
        decoded = _optional(body, "object", dict)
        occupied = self._occupancy(decoded, _optional(body, "data", str), f_port)
        battery_v, battery_pct = _battery(decoded)
        health = HealthReading(
            bay_id, moment, battery_v=battery_v, battery_pct=battery_pct, frame_count=frame,
            **_best_gateway(_optional(body, "rxInfo", list) or [], "gatewayId", "rssi", "snr"),
        )
        readings: list[Reading] = [health]
        if occupied is not None:
            readings.insert(0, BayReading(bay_id, moment, occupied, frame, "chirpstack"))
        return readings

    def _bay_for_device(self, dev_eui: str) -> str:
        bay_id = self._devices.get(dev_eui)
        if bay_id is None:
            raise DecodeError(f"unknown device {dev_eui[:32]!r}")
        return bay_id

    @staticmethod
    def _occupancy(decoded: Mapping[str, Any] | None, raw: str | None, f_port: int) -> bool | None:
        """Occupancy from the network server's decoded object, else the raw frame.

        Raw frames follow the common parking-sensor layout (Bosch PLS, Nwave): on ports 1
        (status) and 2 (heartbeat) byte 0 bit 0 is occupied; on port 3 (start-up) byte 16 is.
        Other ports (0 = MAC commands only, 4+ = device info, usage, debug) carry no occupancy.
        """
        if decoded is not None and "occupied" in decoded:
            value = decoded["occupied"]
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise DecodeError("decoded occupied must be true/false or 0/1")
        if raw is None:
            if decoded is None:
                raise DecodeError("uplink has neither a decoded payload nor raw bytes")
            return None
        try:
            frame = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise DecodeError("raw payload is not base64") from None
        if f_port in (1, 2):
            if not frame:
                raise DecodeError(f"empty frame on port {f_port}")
            return bool(frame[0] & 0x01)
        if f_port == 3 and len(frame) > 16:
            return bool(frame[16] & 0x01)
        return None

    def _time(self, body: Mapping[str, Any], key: str, received: datetime) -> datetime:
        text = _field(body, key, str)
        try:
            # RFC 3339 allows a lower-case "t" and "z"; fromisoformat only the upper-case ones.
            moment = datetime.fromisoformat(text.upper())
        except ValueError:
            raise DecodeError(f"field {key!r} is not an RFC 3339 time") from None
        if moment.tzinfo is None:
            raise DecodeError(f"field {key!r} has no UTC offset")
        if moment > received + MAX_FUTURE:
            raise DecodeError(f"field {key!r} is in the future")
        if moment < received - MAX_AGE:
            raise DecodeError(f"field {key!r} is older than {MAX_AGE.days} days")
        return moment


def _best_gateway(rx: list[Any], id_key: str, rssi_key: str, snr_key: str) -> dict[str, Any]:
    """RSSI, SNR and id of the gateway that heard the uplink best."""
    best: dict[str, Any] = {}
    for entry in rx:
        if not isinstance(entry, dict):
            raise DecodeError("gateway metadata entries must be objects")
        rssi = _number(entry, rssi_key, -200, 50)
        if rssi is None or (best and best["rssi"] >= rssi):
            continue
        gateway = entry.get(id_key)
        if isinstance(gateway, dict):
            gateway = gateway.get("gateway_id")
        best = {"rssi": rssi, "snr": _number(entry, snr_key, -50, 50),
                "gateway_id": _clean_text(gateway[:64]) if isinstance(gateway, str) else None}
    return best


def _clean_text(text: str) -> str:
    """Text the database can store: no NUL, no lone surrogates (JSON allows ``"\\ud800"``)."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _battery(decoded: Mapping[str, Any] | None) -> tuple[float | None, float | None]:
    """Battery voltage and percentage from a decoded payload, where the codec gives them."""
    if decoded is None:
        return None, None
    return _number(decoded, "battery_v", 0, 10), _number(decoded, "battery_pct", 0, 100)


def _with_battery_pct(health: HealthReading, pct: float | None) -> HealthReading:
    if pct is None or health.battery_pct is not None:
        return health
    return HealthReading(health.sensor_id, health.time, health.battery_v, pct, health.rssi,
                         health.snr, health.gateway_id, health.frame_count)
