"""Payload decoders and lot-state rules: pure functions, no database, no broker.

Every inbound format with realistic messages (the field lists of notes/PROTOCOLS.md §4, the
Bosch PLS codec examples of the TTN device repository), every reason a message is refused, and
the counter and status rules as tables of cases.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from _citytoml import CHIRPSTACK_EUI, TTN_EUI, evse_id, write_city
from _payloads import (
    bay_topic,
    chirpstack_status,
    chirpstack_topic,
    chirpstack_up,
    counter_topic,
    dumps,
    iso,
    native_bay,
    ttn_topic,
    ttn_uplink,
)

from core.channels import charger_status_topic
from core.charging import EvseReading, EvseStatus
from core.city import City, Lot, OpeningHours, load_city
from core.status import lot_status
from ingest import (
    BayReading,
    CounterReading,
    CounterState,
    DecodeError,
    Decoder,
    HealthReading,
    apply_counter,
    counter_delta,
)
from ingest._state import (
    counter_change,
    jump_flagged,
    jump_reason,
    lane_limit,
    lot_quality,
)

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday, 13:00 in the city's time zone
TS = T0 - timedelta(seconds=2)  # when the sensor measured; the message arrives at T0
TS_NS = TS.replace(microsecond=123456)  # what "…:58.123456789Z" is read as (µs precision)


@pytest.fixture
def decoder(city: City) -> Decoder:
    return Decoder(city)


def decode(decoder: Decoder, topic: str, body: Any) -> list[Any]:
    payload = body if isinstance(body, bytes) else dumps(body)
    return decoder.decode(topic, payload, T0)


def test_subscriptions_cover_every_inbound_format(decoder: Decoder, city: City) -> None:
    c = city.id
    assert decoder.subscriptions() == [
        f"parkleit/v1/{c}/bays/+", f"parkleit/v1/{c}/lots/+/counter",
        f"parkleit/v1/{c}/chargers/+/status",
        f"v3/{c}-app@ttn/devices/+/up",
        f"application/{c}-cs/device/+/event/up", f"application/{c}-cs/device/+/event/status",
    ]


# -- charging points ------------------------------------------------------------------------------


@pytest.fixture
def ev_city(tmp_path: Path) -> City:
    return load_city(str(write_city(tmp_path, "tev", chargers=True)))


@pytest.mark.parametrize("status", list(EvseStatus))
def test_charger_status_of_every_ocpi_status(ev_city: City, status: EvseStatus) -> None:
    evse = evse_id(ev_city.id, 1, 1)
    reading = Decoder(ev_city).charger_status(charger_status_topic(ev_city.id, evse),
                                              dumps({"status": status.value, "ts": iso(TS)}), T0)
    assert reading == EvseReading(evse, status, TS, "mqtt")


CHARGER_REFUSALS = [
    ("unknown EVSE", "DE*TST*E404*1", {"status": "AVAILABLE"}, "unknown EVSE 'DE*TST*E404*1'"),
    ("bad status", None, {"status": "FREE"}, "field 'status' is not an OCPI EVSE status: 'FREE'"),
    ("lower-case status", None, {"status": "available"}, "is not an OCPI EVSE status"),
    ("status not text", None, {"status": 1}, "field 'status' must be str, got int"),
    ("no status", None, {}, "missing field 'status'"),
    ("no time", None, {"status": "AVAILABLE", "ts": None}, "missing field 'ts'"),
    ("time without offset", None, {"status": "AVAILABLE", "ts": "2026-11-24T11:59:58"},
     "field 'ts' has no UTC offset"),
    ("not JSON", None, b"AVAILABLE", "not JSON"),
    ("JSON not an object", None, b'["AVAILABLE"]', "JSON must be an object, got list"),
]


@pytest.mark.parametrize(("evse", "body", "reason"), [case[1:] for case in CHARGER_REFUSALS],
                         ids=[case[0] for case in CHARGER_REFUSALS])
def test_charger_status_refusals(ev_city: City, evse: str | None, body: Any,
                                 reason: str) -> None:
    if isinstance(body, dict):
        body = dumps({"ts": iso(TS), **body} if "ts" not in body else
                     {key: value for key, value in body.items() if value is not None})
    topic = charger_status_topic(ev_city.id, evse or evse_id(ev_city.id, 1, 1))
    with pytest.raises(DecodeError) as info:
        Decoder(ev_city).charger_status(topic, body, T0)
    assert reason in str(info.value)


def test_only_charger_status_topics_are_charger_readings(ev_city: City) -> None:
    """Our own retained state is no input, nor is another city's status; the sensors' decoder
    does not take charger topics."""
    decoder, body = Decoder(ev_city), dumps({"status": "AVAILABLE", "ts": iso(TS)})
    evse = evse_id(ev_city.id, 1, 1)
    for topic in (f"parkleit/v1/{ev_city.id}/chargers/{evse}/state",
                  f"parkleit/v1/other/chargers/{evse}/status",
                  f"parkleit/v1/{ev_city.id}/chargers/{evse}/status/x",
                  f"parkleit/v1/{ev_city.id}/bays/{ev_city.id}-st-001"):
        assert decoder.charger_status(topic, body, T0) is None
    with pytest.raises(DecodeError, match="topic not understood"):
        decoder.decode(charger_status_topic(ev_city.id, evse), body, T0)


# -- native bay sensors --------------------------------------------------------------------------

def test_native_bay_with_every_field(decoder: Decoder, city: City) -> None:
    body = native_bay(TS, True, seq=4711, battery_v=3.05)
    bay = f"{city.id}-st-002"
    assert decode(decoder, bay_topic(city.id, "st-002"), body) == [
        BayReading(bay, TS, True, 4711, "native"),
        HealthReading(bay, TS, battery_v=3.05),
    ]


@pytest.mark.parametrize(("ts", "expected"), [
    ("2026-11-24T11:59:58Z", TS),
    ("2026-11-24T11:59:58+00:00", TS),
    ("2026-11-24T12:59:58+01:00", TS),  # local time with offset: the same instant
    ("2026-11-24T11:59:58.123456789Z", TS_NS),  # nanoseconds are cut to microseconds
    ("2026-11-24t11:59:58z", TS),  # RFC 3339 allows lower-case T and Z
])
def test_native_bay_minimal_and_time_forms(decoder: Decoder, city: City, ts: str,
                                           expected: datetime) -> None:
    readings = decode(decoder, bay_topic(city.id), {"occupied": False, "ts": ts})
    assert readings == [BayReading(f"{city.id}-st-001", expected, False, None, "native")]


def test_native_bay_ignores_unknown_fields_and_null_optionals(decoder: Decoder,
                                                              city: City) -> None:
    body = native_bay(TS, True, seq=None, battery_v=None, firmware="1.2.3", rssi=-80)
    assert decode(decoder, bay_topic(city.id), body) == [
        BayReading(f"{city.id}-st-001", TS, True, None, "native")]


# -- garage counters -----------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "expected"), [
    ({"entries": 1520, "exits": 1493}, {"entries": 1520, "exits": 1493}),
    ({"entries": 0, "exits": 0}, {"entries": 0, "exits": 0}),
    ({"entries": 2**63 - 1, "exits": 5}, {"entries": 2**63 - 1, "exits": 5}),
    ({"occupied": 87}, {"occupied": 87}),
    ({"occupied": 0}, {"occupied": 0}),
    # Both forms at once: the cumulative counters win (they carry more information).
    ({"entries": 10, "exits": 4, "occupied": 99}, {"entries": 10, "exits": 4}),
])
def test_counter_forms(decoder: Decoder, city: City, body: dict[str, int],
                       expected: dict[str, int]) -> None:
    readings = decode(decoder, counter_topic(city.id), {**body, "ts": iso(TS)})
    assert readings == [CounterReading(f"{city.id}-garage", TS, **expected)]


def test_counter_occupied_above_capacity_is_decoded_as_sent(decoder: Decoder,
                                                             city: City) -> None:
    # Clamping to [0, capacity] is the lot-state rule's job (see apply_counter below).
    readings = decode(decoder, counter_topic(city.id, "small"), {"occupied": 50, "ts": iso(TS)})
    assert readings == [CounterReading(f"{city.id}-small", TS, occupied=50)]


# -- The Things Stack v3 -------------------------------------------------------------------------

def test_ttn_uplink_with_decoded_payload(decoder: Decoder, city: City) -> None:
    # Bosch PLS codec output for port 1 (TTN device repository, tps110-0292-codec.yaml).
    body = ttn_uplink(city.id, TS_NS, decoded={"type": "parking status", "occupied": True},
                      frame=b"\x01")
    bay = f"{city.id}-ttn-1"
    assert decode(decoder, ttn_topic(city.id), body) == [
        BayReading(bay, TS_NS, True, 1234, "ttn"),
        # The best of the two gateways; battery from the network server's DevStatusAns.
        HealthReading(bay, TS_NS, battery_pct=87.4, rssi=-97.0, snr=7.25,
                      gateway_id="zeitz-rathaus", frame_count=1234),
    ]


def test_ttn_decoded_payload_wins_over_raw_bytes(decoder: Decoder, city: City) -> None:
    body = ttn_uplink(city.id, TS, frame=b"\x00",
                      decoded={"type": "parking status", "occupied": True})
    assert decode(decoder, ttn_topic(city.id), body)[0].occupied is True


@pytest.mark.parametrize(("f_port", "frame", "occupied"), [
    (1, b"\x01", True),  # parking status
    (1, b"\x00", False),
    (1, b"\x03", True),  # only bit 0 counts (Nwave: bits 7..1 are the previous duration)
    (1, b"\xfe", False),
    (2, b"\x01\xff", True),  # heartbeat: occupied, temperature -1 °C
    (2, b"\x00\x15", False),
    # Start-up: debug codes 804 and 885, firmware 0.29.2, reset cause, byte 16 = occupied.
    (3, bytes([0x24, 3, 0, 0, 0x75, 3, 0, 0, 0, 0, 0, 0, 0, 29, 2, 3, 1]), True),
    (3, bytes([0x24, 3, 0, 0, 0x75, 3, 0, 0, 0, 0, 0, 0, 0, 29, 2, 3, 0]), False),
    (3, bytes(16), None),  # a start-up frame too short to carry the state
    (4, bytes([0x00, 0x24, 0x01, 0x05]), None),  # device information: health only
    (5, bytes(12), None),  # device usage
    (6, bytes(8), None),  # debug
])
def test_ttn_raw_frames(decoder: Decoder, city: City, f_port: int, frame: bytes,
                        occupied: bool | None) -> None:
    body = ttn_uplink(city.id, TS, f_port=f_port, f_cnt=77, frame=frame)
    readings = decode(decoder, ttn_topic(city.id), body)
    bay = f"{city.id}-ttn-1"
    health = HealthReading(bay, TS, battery_pct=87.4, rssi=-97.0, snr=7.25,
                           gateway_id="zeitz-rathaus", frame_count=77)
    expected: list[Any] = [] if occupied is None else [BayReading(bay, TS, occupied, 77, "ttn")]
    assert readings == [*expected, health]


def test_ttn_device_info_frame_with_decoded_payload_is_health_only(decoder: Decoder,
                                                                    city: City) -> None:
    body = ttn_uplink(city.id, TS, f_port=4, frame=bytes([0x00, 0x24, 0x01, 0x05]),
                      decoded={"type": "device information", "firmwareVersion": "0.36.0"})
    readings = decode(decoder, ttn_topic(city.id), body)
    assert [type(r) for r in readings] == [HealthReading]


def test_ttn_omitted_zero_values(decoder: Decoder, city: City) -> None:
    # The Things Stack leaves out zero values: the first frame after a join has no f_cnt.
    body = ttn_uplink(city.id, TS, f_cnt=None)
    readings = decode(decoder, ttn_topic(city.id), body)
    assert readings[0] == BayReading(f"{city.id}-ttn-1", TS, True, 0, "ttn")
    assert readings[1].frame_count == 0
    # No f_port is port 0: MAC commands only, no application payload to read occupancy from.
    body = ttn_uplink(city.id, TS, f_port=None)
    assert [type(r) for r in decode(decoder, ttn_topic(city.id), body)] == [HealthReading]


def test_ttn_minimal_uplink_and_battery_from_the_codec(decoder: Decoder, city: City) -> None:
    body = {"end_device_ids": {"device_id": "pls-0001", "dev_eui": TTN_EUI},
            "received_at": iso(TS),
            "uplink_message": {"f_port": 1, "f_cnt": 9,
                               "decoded_payload": {"occupied": 0, "battery_pct": 64},
                               "last_battery_percentage": {"value": 10}}}
    bay = f"{city.id}-ttn-1"
    assert decode(decoder, ttn_topic(city.id), body) == [
        BayReading(bay, TS, False, 9, "ttn"),
        HealthReading(bay, TS, battery_pct=64.0, frame_count=9),  # the codec's own value wins
    ]


# -- ChirpStack v4 -------------------------------------------------------------------------------

def test_chirpstack_up_with_object(decoder: Decoder, city: City) -> None:
    body = chirpstack_up(TS_NS, obj={"occupied": False, "type": "parking status"},
                         frame=b"\x00")
    bay = f"{city.id}-cs-1"
    assert decode(decoder, chirpstack_topic(city.id), body) == [
        BayReading(bay, TS_NS, False, 57, "chirpstack"),
        HealthReading(bay, TS_NS, rssi=-88.0, snr=9.5, gateway_id="0016c001f153a14c",
                      frame_count=57),
    ]


@pytest.mark.parametrize(("f_port", "frame", "occupied"), [
    (1, b"\x01", True), (1, b"\x00", False), (2, b"\x01\x15", True),
    (3, bytes(16) + b"\x01", True), (4, b"\x01\x02", None),
])
def test_chirpstack_up_without_object(decoder: Decoder, city: City, f_port: int, frame: bytes,
                                      occupied: bool | None) -> None:
    body = chirpstack_up(TS, f_port=f_port, frame=frame)
    readings = decode(decoder, chirpstack_topic(city.id), body)
    bays = [r for r in readings if isinstance(r, BayReading)]
    assert [b.occupied for b in bays] == ([] if occupied is None else [occupied])
    assert isinstance(readings[-1], HealthReading) and readings[-1].frame_count == 57


@pytest.mark.parametrize(("topic_eui", "payload_eui"), [
    (CHIRPSTACK_EUI, CHIRPSTACK_EUI),
    (CHIRPSTACK_EUI.upper(), CHIRPSTACK_EUI),
    (CHIRPSTACK_EUI, CHIRPSTACK_EUI.upper()),
    (CHIRPSTACK_EUI.upper(), CHIRPSTACK_EUI.upper()),
])
def test_chirpstack_dev_eui_case_does_not_matter(decoder: Decoder, city: City, topic_eui: str,
                                                 payload_eui: str) -> None:
    body = chirpstack_up(TS, dev_eui=payload_eui)
    readings = decode(decoder, chirpstack_topic(city.id, dev_eui=topic_eui), body)
    assert readings[0] == BayReading(f"{city.id}-cs-1", TS, True, 57, "chirpstack")


def test_chirpstack_omitted_f_cnt(decoder: Decoder, city: City) -> None:
    # The ChirpStack docs' own example has no fCnt: a zero is left out of the JSON.
    readings = decode(decoder, chirpstack_topic(city.id), chirpstack_up(TS, f_cnt=None))
    assert readings[0].seq == 0 and readings[1].frame_count == 0


@pytest.mark.parametrize(("battery", "expected"), [(75.5, 75.5), (0, 0.0), (100, 100.0),
                                                   (None, None)])
def test_chirpstack_status_event(decoder: Decoder, city: City, battery: float | None,
                                 expected: float | None) -> None:
    body = chirpstack_status(TS, battery)
    readings = decode(decoder, chirpstack_topic(city.id, "status", CHIRPSTACK_EUI.upper()), body)
    assert readings == [HealthReading(f"{city.id}-cs-1", TS, battery_pct=expected)]


# -- refusals ------------------------------------------------------------------------------------

def _ttn_with(city_id: str, **uplink: Any) -> dict[str, Any]:
    body = ttn_uplink(city_id, TS)
    body["uplink_message"].update(uplink)
    return body


Case = Callable[[str], tuple[str, Any]]

REFUSALS: list[tuple[str, Case, str]] = [
    # what is wrong, (city id -> (topic, payload)), the reason (a part of it)
    ("unknown bay", lambda c: (f"parkleit/v1/{c}/bays/{c}-st-999", native_bay(TS)),
     "unknown bay"),
    ("unknown lot", lambda c: (counter_topic(c, "nope"), {"occupied": 1, "ts": iso(TS)}),
     "unknown lot"),
    ("unknown TTN device",
     lambda c: (ttn_topic(c), {**ttn_uplink(c, TS),
                               "end_device_ids": {"device_id": "pls-0001",
                                                  "dev_eui": "0004A30B001C0530"}}),
     "unknown device"),
    ("unknown ChirpStack device",
     lambda c: (chirpstack_topic(c, dev_eui="0004a30b001c0530"),
                chirpstack_up(TS, dev_eui="0004a30b001c0530")), "unknown device"),
    ("wrong city", lambda c: (f"parkleit/v1/x{c}/bays/{c}-st-001", native_bay(TS)),
     "topic not understood"),
    ("counter lot on a bay topic", lambda c: (f"parkleit/v1/{c}/bays/{c}-garage", native_bay(TS)),
     "unknown bay"),
    ("bay-counted lot on a counter topic",
     lambda c: (counter_topic(c, "street"), {"occupied": 2, "ts": iso(TS)}),
     "counted by bays, not by a counter"),
    ("missing ts", lambda c: (bay_topic(c), {"occupied": True}), "missing field 'ts'"),
    ("null ts", lambda c: (bay_topic(c), {"occupied": True, "ts": None}), "missing field 'ts'"),
    ("ts not a string", lambda c: (bay_topic(c), {"occupied": True, "ts": 1795000000}),
     "field 'ts' must be str"),
    ("naive ts", lambda c: (bay_topic(c), {"occupied": True, "ts": "2026-11-24T11:59:58"}),
     "has no UTC offset"),
    ("date only", lambda c: (bay_topic(c), {"occupied": True, "ts": "2026-11-24"}),
     "has no UTC offset"),
    ("ts not a time", lambda c: (bay_topic(c), {"occupied": True, "ts": "yesterday"}),
     "not an RFC 3339 time"),
    ("impossible date", lambda c: (bay_topic(c), {"occupied": True,
                                                  "ts": "2026-02-30T10:00:00Z"}),
     "not an RFC 3339 time"),
    ("ts in the future", lambda c: (bay_topic(c), native_bay(T0 + timedelta(minutes=6))),
     "is in the future"),
    ("ts too old", lambda c: (bay_topic(c), native_bay(T0 - timedelta(days=31))),
     "older than 30 days"),
    ("TTN received_at in the future",
     lambda c: (ttn_topic(c), ttn_uplink(c, T0 + timedelta(hours=1))), "is in the future"),
    ("occupied as a number", lambda c: (bay_topic(c), {"occupied": 1, "ts": iso(TS)}),
     "field 'occupied' must be bool"),
    ("occupied as a string", lambda c: (bay_topic(c), {"occupied": "true", "ts": iso(TS)}),
     "field 'occupied' must be bool"),
    ("occupied missing", lambda c: (bay_topic(c), {"ts": iso(TS)}), "missing field 'occupied'"),
    ("seq negative", lambda c: (bay_topic(c), native_bay(TS, seq=-1)), "field 'seq' out of range"),
    ("seq as bool", lambda c: (bay_topic(c), native_bay(TS, seq=True)),
     "field 'seq' must be int, got bool"),
    ("battery out of range", lambda c: (bay_topic(c), native_bay(TS, battery_v=230.0)),
     "field 'battery_v' out of range"),
    ("battery as a huge integer", lambda c: (bay_topic(c), native_bay(TS, battery_v=10**400)),
     "field 'battery_v' out of range"),
    ("negative entries", lambda c: (counter_topic(c), {"entries": -1, "exits": 0,
                                                       "ts": iso(TS)}),
     "field 'entries' out of range"),
    ("negative occupied count", lambda c: (counter_topic(c), {"occupied": -3, "ts": iso(TS)}),
     "field 'occupied' out of range"),
    ("counter above 2**63 - 1", lambda c: (counter_topic(c), {"entries": 2**63, "exits": 0,
                                                              "ts": iso(TS)}),
     "field 'entries' out of range"),
    ("entries without exits", lambda c: (counter_topic(c), {"entries": 5, "ts": iso(TS)}),
     "missing field 'exits'"),
    ("counter as a float", lambda c: (counter_topic(c), {"occupied": 5.0, "ts": iso(TS)}),
     "field 'occupied' must be int"),
    ("counter without numbers", lambda c: (counter_topic(c), {"ts": iso(TS)}),
     "needs entries and exits, or occupied"),
    ("NaN", lambda c: (counter_topic(c), b'{"occupied": NaN, "ts": "2026-11-24T11:59:58Z"}'),
     "JSON constant NaN is not allowed"),
    ("Infinity", lambda c: (bay_topic(c), b'{"occupied": true, "ts": "2026-11-24T11:59:58Z", '
                                          b'"battery_v": Infinity}'),
     "JSON constant Infinity is not allowed"),
    ("-Infinity", lambda c: (counter_topic(c), b'{"entries": -Infinity}'),
     "JSON constant -Infinity is not allowed"),
    ("float overflowing to infinity",
     lambda c: (bay_topic(c), b'{"occupied": true, "ts": "2026-11-24T11:59:58Z", '
                              b'"battery_v": 1e999}'),
     "field 'battery_v' out of range"),
    ("not JSON", lambda c: (bay_topic(c), b"occupied=1"), "not JSON"),
    ("binary", lambda c: (bay_topic(c), b"\x00\xff\xfe\x81"), "not JSON"),
    ("empty payload", lambda c: (bay_topic(c), b""), "not JSON"),
    ("JSON array", lambda c: (bay_topic(c), b'[{"occupied": true}]'),
     "JSON must be an object, got list"),
    ("JSON string", lambda c: (bay_topic(c), b'"occupied"'), "JSON must be an object, got str"),
    ("JSON null", lambda c: (counter_topic(c), b"null"), "JSON must be an object, got NoneType"),
    ("too large", lambda c: (bay_topic(c), dumps(native_bay(TS)) + b" " * 65536),
     "exceeds 65536"),
    ("nested too deeply", lambda c: (bay_topic(c), b"[" * 50_000 + b"]" * 10_000),
     "nested too deeply"),
    ("integer of 5000 digits", lambda c: (bay_topic(c), b'{"seq": ' + b"9" * 5000 + b"}"),
     "not JSON"),
    ("devEui differs from the topic",
     lambda c: (chirpstack_topic(c), chirpstack_up(TS, dev_eui=TTN_EUI)),
     "devEui in the payload differs from the topic"),
    ("TTN device_id differs from the topic",
     lambda c: (ttn_topic(c, "pls-0002"), ttn_uplink(c, TS)),
     "device_id in the payload differs from the topic"),
    ("TTN application differs from the topic",
     lambda c: (ttn_topic(c).replace(f"{c}-app@", "other-app@"), ttn_uplink(c, TS)),
     "application_id in the payload differs from the topic"),
    ("ChirpStack without deviceInfo",
     lambda c: (chirpstack_topic(c), {"time": iso(TS), "data": "AQ=="}),
     "missing field 'deviceInfo'"),
    ("bad base64 (TTN)", lambda c: (ttn_topic(c), _ttn_with(c, frm_payload="AQ=?")),
     "raw payload is not base64"),
    ("base64 without padding", lambda c: (ttn_topic(c), _ttn_with(c, frm_payload="AQ")),
     "raw payload is not base64"),
    ("non-ASCII base64", lambda c: (ttn_topic(c), _ttn_with(c, frm_payload="ÄQ==")),
     "raw payload is not base64"),
    ("bad base64 (ChirpStack)",
     lambda c: (chirpstack_topic(c), {**chirpstack_up(TS), "data": "***"}),
     "raw payload is not base64"),
    ("empty frame on the status port",
     lambda c: (ttn_topic(c), _ttn_with(c, frm_payload="")), "empty frame on port 1"),
    ("uplink with nothing to read",
     lambda c: (chirpstack_topic(c), chirpstack_up(TS, frame=None)),
     "neither a decoded payload nor raw bytes"),
    ("decoded occupied not boolean",
     lambda c: (ttn_topic(c), _ttn_with(c, decoded_payload={"occupied": "yes"})),
     "decoded occupied must be true/false or 0/1"),
    ("decoded occupied 2",
     lambda c: (chirpstack_topic(c), chirpstack_up(TS, obj={"occupied": 2})),
     "decoded occupied must be true/false or 0/1"),
    ("TTN without uplink_message",
     lambda c: (ttn_topic(c), {k: v for k, v in ttn_uplink(c, TS).items()
                               if k != "uplink_message"}),
     "missing field 'uplink_message'"),
    ("TTN without dev_eui",
     lambda c: (ttn_topic(c), {**ttn_uplink(c, TS), "end_device_ids": {"device_id": "pls-0001"}}),
     "missing field 'dev_eui'"),
    ("TTN f_cnt beyond 32 bits", lambda c: (ttn_topic(c), _ttn_with(c, f_cnt=2**32)),
     "field 'f_cnt' out of range"),
    ("TTN f_cnt negative", lambda c: (ttn_topic(c), _ttn_with(c, f_cnt=-1)),
     "field 'f_cnt' out of range"),
    ("ChirpStack fPort beyond a byte",
     lambda c: (chirpstack_topic(c), chirpstack_up(TS, f_port=256)), "field 'fPort' out of range"),
    ("gateway metadata not an object",
     lambda c: (ttn_topic(c), _ttn_with(c, rx_metadata=["zeitz-rathaus"])),
     "gateway metadata entries must be objects"),
    ("rssi out of range",
     lambda c: (chirpstack_topic(c), {**chirpstack_up(TS), "rxInfo": [{"rssi": 10**400}]}),
     "field 'rssi' out of range"),
    ("battery level above 100",
     lambda c: (chirpstack_topic(c, "status"), chirpstack_status(TS, 255)),
     "field 'batteryLevel' out of range"),
    ("unknown topic", lambda c: ("parkleit/v1/other/thing", native_bay(TS)),
     "topic not understood"),
    ("bay topic one level too deep",
     lambda c: (bay_topic(c) + "/extra", native_bay(TS)), "topic not understood"),
    ("counter topic without /counter",
     lambda c: (f"parkleit/v1/{c}/lots/{c}-garage", {"occupied": 1, "ts": iso(TS)}),
     "topic not understood"),
    ("lot status topic (our own output)",
     lambda c: (f"parkleit/v1/{c}/lots/{c}-garage/status", {"free": 1}),
     "topic not understood"),
    ("TTN join event", lambda c: (f"v3/{c}-app@ttn/devices/pls-0001/join", ttn_uplink(c, TS)),
     "topic not understood"),
    ("ChirpStack join event",
     lambda c: (chirpstack_topic(c, "join"), chirpstack_up(TS)), "topic not understood"),
    ("empty topic", lambda c: ("", native_bay(TS)), "topic not understood"),
]


@pytest.mark.parametrize(("case", "reason"), [(case, reason) for _, case, reason in REFUSALS],
                         ids=[name for name, _, _ in REFUSALS])
def test_refusals(decoder: Decoder, city: City, case: Case, reason: str) -> None:
    topic, body = case(city.id)
    with pytest.raises(DecodeError) as info:
        decode(decoder, topic, body)
    assert reason in str(info.value)
    assert len(str(info.value)) <= 200  # a reason, not an echo of the payload


def test_refusal_reasons_quote_unknown_ids_briefly(decoder: Decoder, city: City) -> None:
    topic = f"parkleit/v1/{city.id}/bays/" + "x" * 5000
    with pytest.raises(DecodeError, match=r"^unknown bay 'x{64}'$"):
        decode(decoder, topic, native_bay(TS))


def test_timestamp_window_edges(decoder: Decoder, city: City) -> None:
    topic = bay_topic(city.id)
    for moment in (T0 + timedelta(minutes=5), T0 - timedelta(days=30)):
        assert decode(decoder, topic, native_bay(moment))[0].time == moment
    for moment in (T0 + timedelta(minutes=5, microseconds=1),
                   T0 - timedelta(days=30, microseconds=1)):
        with pytest.raises(DecodeError):
            decode(decoder, topic, native_bay(moment))


def test_payload_size_limit_is_inclusive(decoder: Decoder, city: City) -> None:
    body = dumps(native_bay(TS))
    exactly = body + b" " * (65536 - len(body))
    assert len(decode(decoder, bay_topic(city.id), exactly)) == 1
    with pytest.raises(DecodeError, match="exceeds"):
        decode(decoder, bay_topic(city.id), exactly + b" ")


def test_utf16_and_escaped_json_are_read(decoder: Decoder, city: City) -> None:
    # json.loads detects UTF-16/32; \u escapes in keys are ordinary JSON.
    utf16 = json.dumps(native_bay(TS)).encode("utf-16")
    assert len(decode(decoder, bay_topic(city.id), utf16)) == 1
    escaped = b'{"\\u006fccupied": true, "ts": "2026-11-24T11:59:58Z"}'
    assert decode(decoder, bay_topic(city.id), escaped)[0].occupied is True


def test_gateway_id_is_made_storable(decoder: Decoder, city: City) -> None:
    body = chirpstack_up(TS)
    body["rxInfo"] = [{"gatewayId": "gw\u0000\ud800" + "y" * 100, "rssi": -70, "snr": 1}]
    health = decode(decoder, chirpstack_topic(city.id), body)[-1]
    assert health.gateway_id == "gw?" + "y" * 60  # cut to 64, then NUL dropped
    health.gateway_id.encode("utf-8")


# -- counter arithmetic --------------------------------------------------------------------------

@pytest.mark.parametrize(("previous", "current", "modulus", "delta"), [
    (10, 15, 1000, 5),  # ordinary increase
    (10, 10, 1000, 0),  # nothing happened
    (0, 999, 1000, 999),
    (990, 5, 1000, 15),  # wrapped: 990 → 999 → 0 → 5
    (999, 0, 1000, 1),
    (750, 249, 1000, 499),  # the widest wrap still recognised
    (749, 5, 1000, 5),  # not near the top: a reset, counting since zero
    (990, 250, 1000, 250),  # not near zero: a reset
    (500, 0, 1000, 0),  # reset to zero
    (65530, 10, 65536, 16),  # 16-bit counter wrap
    (2**32 - 1, 3, 2**32, 4),
])
def test_counter_delta(previous: int, current: int, modulus: int, delta: int) -> None:
    assert counter_delta(previous, current, modulus) == delta


def _lot(**changes: Any) -> Lot:
    base: dict[str, Any] = {"id": "p1", "name": "Parkhaus", "kind": "garage",
                            "counting": "counter", "capacity": 100, "latitude": 51.0,
                            "longitude": 12.0, "counter_modulus": 1000}
    return Lot(**{**base, **changes})


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


EMPTY = CounterState(None, None, None, None)


def _state(occupied: int, entries: int | None, exits: int | None, seconds: float,
           **flags: bool) -> CounterState:
    return CounterState(occupied, entries, exits, _at(seconds), **flags)


def _reading(seconds: float, **values: int) -> CounterReading:
    return CounterReading("p1", _at(seconds), **values)

APPLY_CASES: list[tuple[str, CounterState, CounterReading, CounterState | None]] = [
    ("first reading: counters installed at zero give the occupancy",
     EMPTY, _reading(0, entries=50, exits=20), _state(30, 50, 20, 0)),
    ("first counters after an occupied reading keep that occupancy",
     _state(40, None, None, 0), _reading(60, entries=900, exits=880), _state(40, 900, 880, 60)),
    ("ordinary increase",
     _state(30, 50, 20, 0), _reading(60, entries=60, exits=25), _state(35, 60, 25, 60)),
    ("entries wrap at the modulus",
     _state(30, 990, 960, 0), _reading(60, entries=5, exits=970), _state(35, 5, 970, 60)),
    ("exits wrap at the modulus",
     _state(30, 970, 995, 0), _reading(60, entries=980, exits=3), _state(32, 980, 3, 60)),
    ("both counters down: the device restarted from zero",
     _state(30, 500, 470, 0), _reading(60, entries=2, exits=1), _state(31, 2, 1, 60)),
    ("one counter down far from the top: a reset of that counter",
     _state(30, 500, 470, 0), _reading(60, entries=10, exits=480), _state(30, 10, 480, 60)),
    ("occupied form sets the count and keeps the counters",
     _state(30, 500, 470, 0), _reading(60, occupied=7), _state(7, 500, 470, 60)),
    ("occupied form on an empty state", EMPTY, _reading(0, occupied=0), _state(0, None, None, 0)),
    ("occupied above capacity is clamped",
     EMPTY, _reading(0, occupied=150), _state(100, None, None, 0, clamped=True)),
    ("first counters above capacity are clamped",
     EMPTY, _reading(0, entries=500, exits=0), _state(100, 500, 0, 0, clamped=True)),
    ("more exits than entries clamps at zero",
     _state(5, 100, 95, 0), _reading(60, entries=100, exits=120),
     _state(0, 100, 120, 60, clamped=True)),
    ("first counters with more exits than entries",
     EMPTY, _reading(0, entries=3, exits=10), _state(0, 3, 10, 0, clamped=True)),
    ("a restart from another value is re-baselined and the count kept",
     _state(30, 500, 470, 0), _reading(60, entries=200, exits=950),
     _state(30, 200, 950, 60, jumped=True)),
    ("a clamped count stays clamped over a jump",
     _state(100, 500, 300, 0, clamped=True), _reading(60, entries=4, exits=900),
     _state(100, 4, 900, 60, clamped=True, jumped=True)),
    ("after a long gap, an hour's traffic is counted",
     _state(30, 500, 470, 0), _reading(3600, entries=900, exits=850), _state(50, 900, 850, 3600)),
    ("an occupied reading after a jump ends it",
     _state(30, 200, 950, 0, jumped=True), _reading(60, occupied=31), _state(31, 200, 950, 60)),
    ("an older reading is superseded",
     _state(30, 50, 20, 10), _reading(5, entries=40, exits=20), None),
    ("a reading of the same time is superseded (redelivery)",
     _state(30, 50, 20, 10), _reading(10, entries=60, exits=20), None),
    ("an older occupied reading is superseded",
     _state(30, 50, 20, 10), _reading(9, occupied=1), None),
]



@pytest.mark.parametrize(("state", "reading", "expected"),
                         [case[1:] for case in APPLY_CASES],
                         ids=[case[0] for case in APPLY_CASES])
def test_apply_counter(state: CounterState, reading: CounterReading,
                       expected: CounterState | None) -> None:
    assert apply_counter(state, reading, _lot()) == expected


def test_apply_counter_sequence_matches_the_writer_story() -> None:
    # The garage of test_writer.py: wrap, then reset, with modulus 1000.
    lot, state = _lot(), EMPTY
    steps = [(990, 960, 30), (995, 961, 34), (5, 970, 35), (2, 1, 36)]
    for n, (entries, exits, occupied) in enumerate(steps):
        new = apply_counter(state, CounterReading("p1", _at(n), entries=entries, exits=exits),
                            lot)
        assert new is not None and new.occupied == occupied
        state = new


def test_lane_limit_grows_with_time_and_lanes() -> None:
    lot = _lot()
    assert lane_limit(lot, timedelta(0)) == 10  # the slack alone
    assert lane_limit(lot, timedelta(seconds=1)) == 11
    assert lane_limit(lot, timedelta(minutes=1)) == 25  # 900 an hour: 15 a minute
    assert lane_limit(lot, timedelta(minutes=5)) == 85
    assert lane_limit(lot, timedelta(hours=1)) == 910
    assert lane_limit(_lot(lanes=3), timedelta(minutes=1)) == 55
    assert lane_limit(lot, timedelta(seconds=-5)) == 10  # clocks out of step: no negatives


MINUTE = timedelta(minutes=1)

# what, (entries, exits) before, after, time between, lot changes, (in, out) or None
CHANGE_CASES: list[tuple[str, tuple[int, int], tuple[int, int], timedelta, dict[str, Any],
                         tuple[int, int] | None]] = [
    ("ordinary traffic", (500, 470), (512, 480), MINUTE, {}, (12, 10)),
    ("nothing happened", (500, 470), (500, 470), MINUTE, {}, (0, 0)),
    ("as many as one lane passes in a minute, with the slack", (500, 470), (525, 495), MINUTE,
     {}, (25, 25)),
    ("one more than that", (500, 470), (526, 480), MINUTE, {}, None),
    ("two lanes pass twice as many", (500, 470), (540, 500), MINUTE, {"lanes": 2}, (40, 30)),
    ("entries wrap at the modulus", (990, 960), (5, 970), MINUTE, {}, (15, 10)),
    ("both wrap", (995, 990), (3, 998), MINUTE, {}, (8, 8)),
    ("restart from zero: both count since then", (500, 470), (4, 2), MINUTE, {}, (4, 2)),
    ("restart from zero an hour ago: an hour's traffic since", (500, 470), (300, 280),
     timedelta(hours=1), {}, (300, 280)),
    ("restart from zero, counting more than could pass", (500, 470), (40, 30), MINUTE, {},
     None),
    ("restart from another value, both higher", (500, 470), (9000, 8990), MINUTE,
     {"counter_modulus": 65536}, None),
    ("restart from another value, both lower", (500, 470), (300, 280), MINUTE, {}, None),
    ("restart from another value, one up one down", (500, 470), (700, 100), MINUTE, {}, None),
    ("a wrap that skips thousands", (60000, 59990), (100, 59995), MINUTE,
     {"counter_modulus": 65536}, None),
    ("a day offline: a day's traffic", (500, 470), (5500, 5460), timedelta(days=1),
     {"counter_modulus": 65536}, (5000, 4990)),
    ("a day offline, but more cars in than the lot holds", (500, 470), (5500, 4460),
     timedelta(days=1), {"counter_modulus": 65536}, None),
    ("net change of exactly the capacity", (500, 470), (600, 470), timedelta(minutes=10), {},
     (100, 0)),
    ("net change of one more than the capacity", (500, 470), (601, 470),
     timedelta(minutes=10), {}, None),
]


@pytest.mark.parametrize(("before", "after", "elapsed", "changes", "expected"),
                         [case[1:] for case in CHANGE_CASES],
                         ids=[case[0] for case in CHANGE_CASES])
def test_counter_change(before: tuple[int, int], after: tuple[int, int], elapsed: timedelta,
                        changes: dict[str, Any], expected: tuple[int, int] | None) -> None:
    assert counter_change(_lot(**changes), before, after, elapsed) == expected


def test_counts_on_from_the_new_baseline_after_a_jump() -> None:
    lot, state = _lot(), EMPTY
    # counted, counted, a swapped controller (another offset), counted on from there
    steps = [(500, 470, 30, False), (510, 472, 38, False), (120, 810, 38, True),
             (124, 811, 41, False)]
    for n, (entries, exits, occupied, jumped) in enumerate(steps):
        new = apply_counter(state, CounterReading("p1", _at(60 * n), entries=entries,
                                                  exits=exits), lot)
        assert new is not None and (new.occupied, new.jumped) == (occupied, jumped), n
        if jumped:
            reason = jump_reason(state, CounterReading("p1", _at(60 * n), entries=entries,
                                                       exits=exits), lot)
            assert reason == ("counter_jump: entries 510 -> 120, exits 472 -> 810 in 60 s "
                              "(at most 25 each way and a net change of 100); re-baselined, "
                              "occupied 38 kept")
        state = new


def test_counter_jump_flag_and_quality() -> None:
    lot = _lot()
    assert lot_quality(lot, stale=False, jumped=True) == (0.7, ["counter_jump"])
    assert lot_quality(lot, stale=False, clamped=True, jumped=True) == (
        0.4, ["clamped", "counter_jump"])
    assert lot_quality(lot, stale=True, jumped=True) == (0.0, ["stale"])
    assert jump_flagged(T0, T0) and jump_flagged(T0, T0 + timedelta(hours=23, minutes=59))
    assert not jump_flagged(T0, T0 + timedelta(hours=24))
    assert not jump_flagged(None, T0)


# -- lot status ----------------------------------------------------------------------------------

TUESDAY_LATE = datetime(2026, 11, 24, 22, 30, tzinfo=UTC)  # 23:30 local
SATURDAY_NOON = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)  # 12:00 local

STATUS_CASES: list[tuple[str, dict[str, Any], int | None, datetime | None, datetime, str]] = [
    # what, lot changes, free, updated, now, status
    ("plenty free", {}, 50, T0, T0, "open"),
    ("one below almost full", {}, 11, T0, T0, "open"),
    ("almost full at 90 %", {}, 10, T0, T0, "almost_full"),
    ("one space left", {}, 1, T0, T0, "almost_full"),
    ("no space left", {}, 0, T0, T0, "full"),
    ("over-full", {}, -3, T0, T0, "full"),
    ("full_at below 100 %", {"full_at": 0.95, "almost_full": 0.8}, 5, T0, T0, "full"),
    ("custom almost_full", {"almost_full": 0.5}, 50, T0, T0, "almost_full"),
    ("never heard of", {}, None, None, T0, "unknown"),
    ("no time of the count", {}, 20, None, T0, "unknown"),
    ("stale", {}, 20, T0 - timedelta(seconds=901), T0, "unknown"),
    ("exactly at the staleness limit", {}, 20, T0 - timedelta(seconds=900), T0, "open"),
    ("custom staleness", {"stale_after_s": 60}, 20, T0 - timedelta(seconds=61), T0, "unknown"),
    ("capacity 0", {"capacity": 0}, 0, T0, T0, "full"),
    ("capacity 0 and stale", {"capacity": 0}, 0, T0 - timedelta(hours=1), T0, "unknown"),
    ("closed at night", {"opening_hours": "Mo-Fr 06:00-22:00"}, 50,
     TUESDAY_LATE, TUESDAY_LATE, "closed"),
    ("closed on Saturday", {"opening_hours": "Mo-Fr 06:00-22:00"}, 50,
     SATURDAY_NOON, SATURDAY_NOON, "closed"),
    ("closed beats unknown", {"opening_hours": "Mo-Fr 06:00-22:00"}, None, None,
     SATURDAY_NOON, "closed"),
    ("open by the rules", {"opening_hours": "Mo-Fr 06:00-22:00; Sa 08:00-20:00"}, 50,
     SATURDAY_NOON, SATURDAY_NOON, "open"),
    ("overnight opening hours", {"opening_hours": "Mo-Su 22:00-06:00"}, 50,
     TUESDAY_LATE, TUESDAY_LATE, "open"),
    ("overnight hours, at noon", {"opening_hours": "Mo-Su 22:00-06:00"}, 50, T0, T0, "closed"),
]


@pytest.mark.parametrize(("changes", "free", "updated", "now", "status"),
                         [case[1:] for case in STATUS_CASES],
                         ids=[case[0] for case in STATUS_CASES])
def test_lot_status(city: City, changes: dict[str, Any], free: int | None,
                    updated: datetime | None, now: datetime, status: str) -> None:
    lot = _lot(**changes)
    assert lot_status(lot, OpeningHours(lot.opening_hours), free, updated, now,
                      city.tz) == status


def test_lot_status_judges_time_not_offsets(city: City) -> None:
    lot = _lot()
    updated = (T0 - timedelta(seconds=100)).astimezone(timezone(timedelta(hours=-7)))
    assert lot_status(lot, OpeningHours("24/7"), 50, updated, T0, city.tz) == "open"
