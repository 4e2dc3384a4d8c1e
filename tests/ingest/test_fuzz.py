"""Property-based fuzzing of every decoder entry, and of the writer with hostile batches.

The property: ``Decoder.decode`` returns a list of storable readings or raises DecodeError —
nothing else escapes, whatever arrives on a topic. Hostile payloads are arbitrary bytes, huge
and deeply nested documents, NaN/Infinity literals, odd timestamps, huge integers, NUL and lone
surrogates, and real-format messages (_payloads.py) with fields mutated, deleted or added.
The writer then takes whole hostile batches: it raises nothing and every refused message has
its dead letter.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from _citytoml import CHIRPSTACK_EUI, TTN_EUI, write_city
from _payloads import (
    bay_topic,
    chirpstack_status,
    chirpstack_topic,
    chirpstack_up,
    counter_topic,
    iso,
    native_bay,
    ttn_topic,
    ttn_uplink,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.city import City, load_city
from core.registry import sync_registry
from ingest import (
    BayReading,
    CounterReading,
    DecodeError,
    Decoder,
    HealthReading,
    Message,
    Writer,
    prepare_connection,
)
from ingest._decode import MAX_AGE, MAX_FUTURE, MAX_PAYLOAD_BYTES

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TS = T0 - timedelta(seconds=2)
BIGINT_MAX = 2**63 - 1

FUZZ = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def fuzz_city(tmp_path_factory: pytest.TempPathFactory) -> City:
    return load_city(str(write_city(tmp_path_factory.mktemp("fuzz"), "tfuzz")))


@pytest.fixture(scope="module")
def decoder(fuzz_city: City) -> Decoder:
    return Decoder(fuzz_city)


# -- hostile values ------------------------------------------------------------------------------

class Raw:
    """JSON text spliced into a document as it is (what json.dumps cannot or will not write)."""

    def __init__(self, text: bytes) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:40]!r}{'…' if len(self.text) > 40 else ''})"


RAW_NUMBERS = [
    b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"-0", b"1.0", b"1E2", b"-0.0",
    b"9" * 4301,  # beyond Python's integer-string limit
    b"1" + b"0" * 400,  # beyond the float range
    b"-" + b"9" * 4000,
]

RAW_FRAGMENTS = [
    *RAW_NUMBERS,
    b"[" * 20_000 + b"]" * 20_000,  # nested too deeply, inside the size limit
    b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    b"[" * 100_000,  # over the size limit, unterminated
    b'"\\ud800"', b'"\\udfff\\ud800"', b'"\\u0000"', b'"a\\u0000b"', b'""',
    b"\"\xff\xfe\"",  # invalid UTF-8 inside a string
    b"tru", b"nul", b"'single'", b"0x10", b"01", b"+1", b".5",
]

EDGE_INTS = [0, -1, 1, 2, 3, 4, 255, 256, 2**31, 2**32 - 1, 2**32, BIGINT_MAX, 2**63, 2**64,
             10**30, -(2**63), 10**400, -(10**400)]

EDGE_STRINGS = [
    "", " ", "\x00", "\ud800", "\udfff", "a\x00b", "🅿", "\u202e", "ÄQ==", "AQ==", "AQ", "====",
    "AA==" * 20_000, "not base64!", TTN_EUI, TTN_EUI.upper(), CHIRPSTACK_EUI,
    "0004a30b001c0530", "true", "null", "NaN", "x" * 5000,
]

_OFFSETS = [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-14)),
            timezone(timedelta(hours=5, minutes=30)),
            timezone(timedelta(hours=23, minutes=59, seconds=59, microseconds=999999))]

timestamps = st.one_of(
    # Around the accepted window (30 days back .. 5 minutes ahead), both sides of each edge.
    st.timedeltas(min_value=-MAX_AGE - timedelta(days=2),
                  max_value=MAX_FUTURE + timedelta(hours=1)).map(lambda d: iso(T0 + d)),
    st.timedeltas(min_value=-timedelta(hours=1), max_value=timedelta(hours=1)).flatmap(
        lambda d: st.sampled_from(_OFFSETS).map(lambda tz: (T0 + d).astimezone(tz).isoformat())),
    # Far past and far future, with extreme offsets, and naive.
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                 timezones=st.sampled_from(_OFFSETS)).map(datetime.isoformat),
    st.datetimes().map(datetime.isoformat),
    st.from_regex(r"\A\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,12})?)?"
                  r"([Zz]|[+-]\d{2}(:?\d{2}(:\d{2})?)?)?\Z"),
    st.sampled_from([
        "2026-11-24T11:59:58+24:00", "2026-13-01T00:00:00Z", "2026-11-24T24:00:00Z",
        "0000-01-01T00:00:00Z", "10000-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00", "２０２６-11-24T11:59:58Z", "2026-11-24T11:59:58.Z",
        "2026-11-24T11:59:58\x00Z", "2026-W48-2T11:59:58Z", "20261124T115958Z",
        "+002026-11-24T11:59:58Z", "2026-11-24T11:59:58ZZ", "T", "Z", "",
    ]),
    st.text(max_size=40),
)

scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.sampled_from(EDGE_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.sampled_from(EDGE_STRINGS),
    timestamps,
    st.sampled_from(RAW_FRAGMENTS).map(Raw),
)

hostile_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=10), children, max_size=4)),
    max_leaves=8,
)


def _serialise(document: Any, draw: Callable[[st.SearchStrategy[Any]], Any]) -> bytes:
    """JSON bytes of ``document``, with any Raw fragments spliced in."""
    fragments: list[bytes] = []

    def mark(node: Any) -> Any:
        if isinstance(node, Raw):
            fragments.append(node.text)
            return f"@@RAW{len(fragments) - 1}@@"
        if isinstance(node, dict):
            return {key: mark(value) for key, value in node.items()}
        if isinstance(node, list):
            return [mark(value) for value in node]
        return node

    marked = mark(document)
    style = draw(st.sampled_from(["ascii", "utf8", "utf16", "compact"]))
    if style == "ascii":
        text = json.dumps(marked).encode()
    elif style == "compact":
        text = json.dumps(marked, separators=(",", ":")).encode()
    elif style == "utf8":  # lone surrogates become invalid UTF-8
        text = json.dumps(marked, ensure_ascii=False).encode("utf-8", "surrogatepass")
    else:
        text = json.dumps(marked, ensure_ascii=False).encode("utf-16", "surrogatepass")
    for index, fragment in enumerate(fragments):
        marker = f'"@@RAW{index}@@"'
        if style == "utf16":
            text = text.replace(marker.encode("utf-16-le"), fragment.decode(
                "latin-1").encode("utf-16-le"))
        else:
            text = text.replace(marker.encode(), fragment)
    return text


# -- real-format templates and their mutations ---------------------------------------------------

def templates(city_id: str) -> dict[str, list[dict[str, Any]]]:
    """Valid bodies per topic kind, each one that decode accepts unchanged."""
    return {
        "bay": [native_bay(TS, True, seq=17, battery_v=3.1), native_bay(TS, False)],
        "counter": [{"entries": 1520, "exits": 1493, "ts": iso(TS)},
                    {"occupied": 42, "ts": iso(TS)}],
        "ttn": [ttn_uplink(city_id, TS, decoded={"type": "parking status", "occupied": True}),
                ttn_uplink(city_id, TS, f_port=3, frame=bytes(16) + b"\x01"),
                ttn_uplink(city_id, TS, f_port=4, f_cnt=None, frame=b"\x00\x24\x01\x05")],
        "cs_up": [chirpstack_up(TS, obj={"occupied": False}), chirpstack_up(TS, f_cnt=None)],
        "cs_status": [chirpstack_status(TS), chirpstack_status(TS, None)],
    }


def topics(city_id: str) -> dict[str, st.SearchStrategy[str]]:
    c = city_id
    euis = st.sampled_from([CHIRPSTACK_EUI, CHIRPSTACK_EUI.upper(), TTN_EUI, "0004a30b001c0530",
                            ""]) | st.text(max_size=20).filter(lambda s: "/" not in s)
    return {
        "bay": st.sampled_from([bay_topic(c), bay_topic(c, "st-004"), bay_topic(c, "ttn-1"),
                                bay_topic(c, "st-999"), f"parkleit/v1/{c}/bays/"]),
        "counter": st.sampled_from([counter_topic(c), counter_topic(c, "small"),
                                    counter_topic(c, "street"), counter_topic(c, "nope")]),
        "ttn": st.sampled_from([ttn_topic(c), "v3/other@ttn/devices/x/up",
                                "v3//devices//up"]),
        "cs_up": euis.map(lambda eui: chirpstack_topic(c, "up", eui)),
        "cs_status": euis.map(lambda eui: chirpstack_topic(c, "status", eui)),
        "unknown": st.one_of(
            st.text(max_size=80),
            st.text(max_size=40).map(lambda rest: f"parkleit/v1/{c}/{rest}"),
            st.sampled_from([f"parkleit/v1/{c}/lots/{c}-garage/status",
                             f"parkleit/v1/{c}/bays/{c}-st-001/x", f"v3/{c}-app@ttn/devices/x/join",
                             chirpstack_topic(c, "join"), f"parkleit/v1/x{c}/bays/{c}-st-001",
                             "application/a/device/b/event/up/x", "#", "$SYS/broker/uptime"])),
    }


KINDS = ["bay", "counter", "ttn", "cs_up", "cs_status", "unknown"]

# The keys the decoders read: most mutations aim at these, the rest anywhere in the document.
READ_KEYS = frozenset({
    "occupied", "ts", "seq", "battery_v", "entries", "exits",  # native
    "end_device_ids", "dev_eui", "uplink_message", "received_at", "f_port", "f_cnt",
    "decoded_payload", "frm_payload", "rx_metadata", "gateway_ids", "gateway_id",
    "last_battery_percentage", "value",  # The Things Stack
    "deviceInfo", "devEui", "time", "fPort", "fCnt", "object", "data", "rxInfo", "gatewayId",
    "batteryLevel",  # ChirpStack
    "rssi", "snr", "battery_pct",
})


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _like(value: Any) -> st.SearchStrategy[Any]:
    """Hostile values of the same JSON type as ``value``: they pass the type checks and so
    reach the range checks, the parsers and the database."""
    if isinstance(value, bool):
        return st.booleans() | st.sampled_from([0, 1, 2, "true", None])
    if isinstance(value, int):
        return (st.sampled_from(EDGE_INTS) | st.sampled_from(EDGE_INTS) | st.integers()
                | st.sampled_from(RAW_NUMBERS).map(Raw))
    if isinstance(value, float):
        return (st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(EDGE_INTS)
                | st.sampled_from(EDGE_INTS) | st.sampled_from(RAW_NUMBERS).map(Raw))
    if isinstance(value, str):
        return timestamps | st.sampled_from(EDGE_STRINGS) | st.text(max_size=30)
    return hostile_values


@st.composite
def mutated(draw: Callable[[st.SearchStrategy[Any]], Any], template: dict[str, Any]) -> Any:
    """``template`` with one to three fields replaced, deleted or added."""
    document: Any = copy.deepcopy(template)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(document)
        read = [p for p in paths if p and p[-1] in READ_KEYS]
        path = draw(st.sampled_from(read if read and draw(st.integers(0, 3)) else paths))
        action = draw(st.sampled_from(["like", "like", "like", "replace", "delete", "add"]))
        if not path:
            if action == "replace":
                document = draw(hostile_values)
            continue
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        target = parent[path[-1]]
        if action == "add" and isinstance(target, dict):
            target[draw(st.sampled_from(sorted(READ_KEYS)) | st.text(max_size=12))] = draw(
                hostile_values)
        elif action == "delete":
            del parent[path[-1]]
        elif action == "like":
            parent[path[-1]] = draw(_like(target))
        else:
            parent[path[-1]] = draw(hostile_values)
    return document


def payloads(city_id: str, kind: str) -> st.SearchStrategy[bytes]:
    """Hostile payloads, most of them near-valid messages of ``kind`` (or of another kind)."""
    table = templates(city_id)
    own = table.get(kind) or [t for ts in table.values() for t in ts]
    every = [t for ts in table.values() for t in ts]

    @st.composite
    def from_templates(draw: Callable[[st.SearchStrategy[Any]], Any],
                       pool: list[dict[str, Any]]) -> bytes:
        document = draw(mutated(draw(st.sampled_from(pool))))
        return _serialise(document, draw)

    @st.composite
    def arbitrary_json(draw: Callable[[st.SearchStrategy[Any]], Any]) -> bytes:
        return _serialise(draw(hostile_values), draw)

    huge = st.one_of(
        # Padding after a valid message, or a long run of one byte.
        st.integers(MAX_PAYLOAD_BYTES - 64, MAX_PAYLOAD_BYTES + 100_000).map(
            lambda n: json.dumps(own[0]).encode().ljust(n)),
        st.tuples(st.sampled_from(b"[{\"0 \x00\xff"), st.integers(1, 200_000)).map(
            lambda t: bytes([t[0]]) * t[1]),
    )
    # Weighted: most payloads are near-valid messages of this kind, which reach deepest.
    return st.integers(0, 11).flatmap(lambda n: (
        from_templates(own) if n < 7 else
        from_templates(every) if n == 7 else
        arbitrary_json() if n == 8 else
        st.binary(max_size=300) if n == 9 else
        st.sampled_from(RAW_FRAGMENTS) if n == 10 else huge))


# -- the property --------------------------------------------------------------------------------

def check_decode(decoder: Decoder, topic: str, payload: bytes,
                 received: datetime = T0) -> list[Any] | None:
    """Decode; any exception but DecodeError propagates. Accepted readings must be storable."""
    try:
        readings = decoder.decode(topic, payload, received)
    except DecodeError as exc:
        assert str(exc) and len(str(exc)) < 1000, repr(exc)
        return None
    assert isinstance(readings, list) and readings
    bays = {bay.id for _, bay in decoder.city.bays()}
    lots = {lot.id: lot for lot in decoder.city.lots}
    for reading in readings:
        assert reading.time.utcoffset() is not None
        assert received - MAX_AGE <= reading.time <= received + MAX_FUTURE
        if isinstance(reading, BayReading):
            assert reading.bay_id in bays and isinstance(reading.occupied, bool)
            assert reading.seq is None or 0 <= reading.seq <= BIGINT_MAX
            assert reading.source in ("native", "ttn", "chirpstack")
        elif isinstance(reading, CounterReading):
            assert lots[reading.lot_id].counting == "counter"
            values = (reading.entries, reading.exits, reading.occupied)
            assert (values[2] is None) != (values[0] is None and values[1] is None)
            assert all(v is None or (type(v) is int and 0 <= v <= BIGINT_MAX) for v in values)
        else:
            assert isinstance(reading, HealthReading) and reading.sensor_id in bays
            for number in (reading.battery_v, reading.battery_pct, reading.rssi, reading.snr):
                assert number is None or (type(number) is float and math.isfinite(number))
            assert reading.frame_count is None or 0 <= reading.frame_count <= BIGINT_MAX
            if reading.gateway_id is not None:
                assert "\x00" not in reading.gateway_id and len(reading.gateway_id) <= 64
                reading.gateway_id.encode("utf-8")  # no lone surrogates
    return readings


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(data=st.data())
def test_decode_returns_readings_or_decode_error(decoder: Decoder, kind: str,
                                                 data: st.DataObject) -> None:
    city_id = decoder.city.id
    topic = data.draw(topics(city_id)[kind], label="topic")
    payload = data.draw(payloads(city_id, kind), label="payload")
    check_decode(decoder, topic, payload)


@FUZZ
@given(topic=st.text(max_size=200), payload=st.binary(max_size=2000))
def test_arbitrary_topic_and_bytes(decoder: Decoder, topic: str, payload: bytes) -> None:
    check_decode(decoder, topic, payload)


@settings(FUZZ, max_examples=150)
@given(data=st.data(), received=st.datetimes(min_value=datetime(1970, 1, 1),
                                             max_value=datetime(2200, 1, 1),
                                             timezones=st.just(UTC)))
def test_any_receive_time(decoder: Decoder, data: st.DataObject, received: datetime) -> None:
    # Whatever the receiving clock says, timestamps are judged without an exception.
    kind = data.draw(st.sampled_from(KINDS[:-1]))
    check_decode(decoder, data.draw(topics(decoder.city.id)[kind]),
                 data.draw(payloads(decoder.city.id, kind)), received)


@settings(FUZZ, max_examples=200)
@given(occupied=st.booleans(), age=st.timedeltas(min_value=-MAX_FUTURE, max_value=MAX_AGE),
       seq=st.none() | st.integers(0, BIGINT_MAX), f_cnt=st.none() | st.integers(0, 2**32 - 1),
       frame=st.binary(min_size=1, max_size=51), f_port=st.integers(1, 223))
def test_valid_messages_always_decode(decoder: Decoder, occupied: bool, age: timedelta,
                                      seq: int | None, f_cnt: int | None, frame: bytes,
                                      f_port: int) -> None:
    c, moment = decoder.city.id, T0 - age
    native = check_decode(decoder, bay_topic(c), json.dumps(
        native_bay(moment, occupied, seq=seq)).encode())
    assert native is not None and native[0].occupied is occupied and native[0].seq == seq
    ttn = check_decode(decoder, ttn_topic(c), json.dumps(ttn_uplink(
        c, moment, f_port=f_port, f_cnt=f_cnt, frame=frame)).encode())
    assert ttn is not None and ttn[-1].frame_count == (f_cnt or 0)
    if f_port in (1, 2):
        assert ttn[0].occupied is bool(frame[0] & 1)
    cs = check_decode(decoder, chirpstack_topic(c), json.dumps(chirpstack_up(
        moment, f_port=f_port, f_cnt=f_cnt, frame=frame)).encode())
    assert cs is not None and [type(r) for r in cs] == [type(r) for r in ttn]


def test_named_hostile_payloads(decoder: Decoder) -> None:
    """The classic attacks, on every topic kind, explicitly (not left to chance)."""
    c = decoder.city.id
    bodies = [
        b"[" * 100_000, b"{" * 100_000, b'{"a":' * 13_000, b"[" * 60_000 + b"]" * 5_000,
        b"\x00" * 70_000, b" " * (MAX_PAYLOAD_BYTES + 1), b"NaN", b"-Infinity",
        b'{"occupied": true, "ts": NaN}', b'{"entries": 1e999, "exits": 0, "ts": "x"}',
        b'{"seq": ' + b"9" * 4300 + b"}", b'{"battery_v": 1' + b"0" * 400 + b"}",
        b"\xef\xbb\xbf{}", b"\xff\xfe\x00\x00", b"", b"null", b"[]", b'"\\ud800"',
    ]
    for topic in (bay_topic(c), counter_topic(c), ttn_topic(c), chirpstack_topic(c),
                  chirpstack_topic(c, "status"), "x"):
        for body in bodies:
            with pytest.raises(DecodeError):
                decoder.decode(topic, body, T0)


# -- the writer with hostile batches (real PostgreSQL) -------------------------------------------

def messages(city_id: str) -> st.SearchStrategy[Message]:
    """Hostile and valid messages on every topic kind, plus topics with NUL and over 1 KiB.

    Topics come from MQTT, which requires well-formed UTF-8, so they hold no lone surrogates.
    """
    kinds = topics(city_id)

    @st.composite
    def message(draw: Callable[[st.SearchStrategy[Any]], Any]) -> Message:
        kind = draw(st.sampled_from(KINDS))
        topic = draw(kinds[kind] | st.sampled_from([f"{'a/' * 600}x", "bad\x00topic"]))
        return Message(topic, draw(payloads(city_id, kind)), T0)

    return message()


def _dead_letter(conn: psycopg.Connection[Any], message: Message) -> tuple[Any, ...] | None:
    topic = message.topic[:1024].replace("\x00", "\ufffd")
    return conn.execute(
        "SELECT reason, payload_size FROM dead_letters WHERE topic = %s AND digest = %s",
        (topic, hashlib.sha256(message.payload).digest())).fetchone()


def check_batch(conn: psycopg.Connection[Any], writer: Writer, batch: list[Message]) -> None:
    result = writer.write(conn, batch, T0 + timedelta(minutes=1))  # raises nothing
    refused = 0
    for message in batch:
        try:
            readings = writer.decoder.decode(message.topic, message.payload, message.received)
        except DecodeError as exc:
            refused += 1
            row = _dead_letter(conn, message)
            assert row is not None, f"no dead letter for {message.topic[:80]!r}"
            assert row == (str(exc)[:500].replace("\x00", "\ufffd"), len(message.payload))
            continue
        for reading in readings:
            if isinstance(reading, BayReading):
                assert conn.execute("SELECT 1 FROM bay_events WHERE bay_id = %s AND time = %s",
                                    (reading.bay_id, reading.time)).fetchone()
            elif isinstance(reading, HealthReading):
                assert conn.execute(
                    "SELECT 1 FROM sensor_health WHERE sensor_id = %s AND time = %s",
                    (reading.sensor_id, reading.time)).fetchone()
    assert result.dead_letters == refused and sum(result.dead_reasons.values()) == refused
    for occupied, free, capacity, status in conn.execute(
            "SELECT occupied, free, capacity, status FROM lot_state"):
        assert status in ("open", "almost_full", "full", "closed", "unknown")
        if occupied is not None:
            assert 0 <= occupied <= capacity and free == capacity - occupied


@pytest.fixture
def writer(conn: psycopg.Connection[Any], city: City) -> Writer:
    sync_registry(conn, city)
    prepare_connection(conn)
    return Writer(city)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_hostile_batches_leave_dead_letters(conn: psycopg.Connection[Any], city: City,
                                            writer: Writer, data: st.DataObject) -> None:
    # The database persists across examples; dead letters are matched by topic and digest.
    batch = data.draw(st.lists(messages(city.id), min_size=1, max_size=20), label="batch")
    check_batch(conn, writer, batch)


def test_named_hostile_batch(conn: psycopg.Connection[Any], city: City,
                             writer: Writer) -> None:
    """A fixed batch of what once crashed a write or a decode, with valid messages between."""
    c = city.id

    def ttn_with(**uplink: Any) -> bytes:
        body = ttn_uplink(c, TS)
        body["uplink_message"].update(uplink)
        return json.dumps(body).encode()

    cs_gateway = chirpstack_up(TS - timedelta(seconds=1))
    cs_gateway["rxInfo"] = [{"gatewayId": "gw\ud800\x00", "rssi": -60}]
    batch = [
        Message(bay_topic(c), json.dumps(native_bay(TS, battery_v=10**400)).encode(), T0),
        Message(ttn_topic(c), ttn_with(f_cnt=2**63), T0),  # once went to a bigint column
        Message(ttn_topic(c), ttn_with(f_cnt=-7), T0),
        Message(chirpstack_topic(c), json.dumps(chirpstack_up(TS, f_cnt=2**64)).encode(), T0),
        Message(chirpstack_topic(c), json.dumps(cs_gateway).encode(), T0),  # lone surrogate
        Message(bay_topic(c), b"[" * 100_000, T0),
        Message(bay_topic(c), b"[" * 30_000, T0),
        Message(counter_topic(c), b'{"entries": NaN, "exits": 0, "ts": "2026-11-24T11:59:58Z"}',
                T0),
        Message(f"parkleit/v1/{c}/bays/{c}-st-001\x00", b"{}", T0),
        Message("a/" * 700, b"\x00\xff" * 40_000, T0),
        Message(bay_topic(c, "st-002"), json.dumps(native_bay(TS, seq=2**63 - 1)).encode(), T0),
        Message(counter_topic(c), json.dumps({"entries": 2**63 - 1, "exits": 0,
                                              "ts": iso(TS)}).encode(), T0),
    ]
    check_batch(conn, writer, batch)
    assert conn.execute("SELECT count(*) FROM dead_letters").fetchone() == (9,)
    assert conn.execute("SELECT gateway_id FROM sensor_health WHERE sensor_id = %s",
                        (f"{c}-cs-1",)).fetchone() == ("gw?",)
