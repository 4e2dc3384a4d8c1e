"""The city registry config: the Zeitz default, refused configs, opening hours, path lookup."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from core.city import (
    CITIES_DIR,
    City,
    CityConfigError,
    OpeningHours,
    load_city,
    resolve_city_path,
)

BERLIN = ZoneInfo("Europe/Berlin")

# --------------------------------------------------------------------------------------------
# The default city
# --------------------------------------------------------------------------------------------


def test_zeitz_loads_with_expected_shape(zeitz: City) -> None:
    assert zeitz.id == "zeitz"
    assert zeitz.city.name == "Zeitz"
    assert zeitz.city.timezone == "Europe/Berlin"
    assert zeitz.city.state == "ST"
    assert zeitz.city.illustrative is True
    assert 12 <= len(zeitz.lots) <= 20
    assert 6 <= len(zeitz.signs) <= 10
    networks = Counter(bay.network for _, bay in zeitz.bays())
    assert networks["ttn"] >= 1
    assert networks["chirpstack"] >= 1
    assert zeitz.lorawan.ttn_applications == ("zeitz-parking@ttn",)
    assert len(zeitz.lorawan.chirpstack_applications) == 1
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        zeitz.lorawan.chirpstack_applications[0],
    )


def test_zeitz_file_is_marked_illustrative_in_german_and_english() -> None:
    head = (CITIES_DIR / "zeitz.toml").read_text(encoding="utf-8")[:2000]
    assert head.startswith("#")
    assert "ILLUSTRATIVE EXAMPLE DATA" in head
    assert "BEISPIELDATEN" in head
    assert "ERFUNDENE" in head
    assert "INVENTED" in head


def test_zeitz_lots_are_plausible(zeitz: City) -> None:
    assert {lot.counting for lot in zeitz.lots} == {"counter", "bays"}
    assert {lot.profile for lot in zeitz.lots} == {
        "shopping",
        "commuter",
        "park_and_ride",
        "residential",
        "event",
    }
    restricted = [lot.id for lot in zeitz.lots if lot.opening_hours != "24/7"]
    assert len(restricted) >= 2
    for lot in zeitz.lots:
        assert lot.id.startswith("zeitz-")
        assert 51.04 <= lot.latitude <= 51.06, lot.id
        assert 12.12 <= lot.longitude <= 12.15, lot.id
        assert lot.address.endswith("Zeitz"), lot.id
        assert lot.disabled_spaces + lot.ev_spaces <= lot.capacity
        bays = list(lot.all_bays())
        if lot.counting == "counter":
            assert 40 <= lot.capacity <= 400, lot.id
            assert bays == []
        else:
            assert 8 <= lot.capacity <= 40, lot.id
            assert len(bays) == lot.capacity
            kinds = Counter(bay.kind for bay in bays)
            assert kinds["disabled"] == lot.disabled_spaces, lot.id
            assert kinds["ev"] == lot.ev_spaces, lot.id


def test_zeitz_lorawan_bays(zeitz: City) -> None:
    lorawan = [(lot, bay) for lot, bay in zeitz.bays() if bay.network != "native"]
    assert 2 <= len({lot.id for lot, _ in lorawan}) <= 3
    euis = [bay.dev_eui for _, bay in lorawan]
    assert all(eui is not None and re.fullmatch(r"[0-9a-f]{16}", eui) for eui in euis)
    assert len(set(euis)) == len(euis)
    assert len({bay.id for _, bay in zeitz.bays()}) == sum(1 for _ in zeitz.bays())


def test_zeitz_signs(zeitz: City) -> None:
    assert {sign.driver for sign in zeitz.signs} == {"ntcip1203", "http", "mqtt"}
    ports: list[int] = []
    lot_ids = {lot.id for lot in zeitz.lots}
    for sign in zeitz.signs:
        assert 2 <= len(sign.lines) <= 4, sign.id
        if sign.driver == "ntcip1203":
            match = re.fullmatch(r"udp://127\.0\.0\.1:(\d+)", sign.address)
        elif sign.driver == "http":
            match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/sign", sign.address)
        else:
            match = None
            assert sign.address == f"parkleit/v1/zeitz/signs/{sign.id}"
        if match:
            ports.append(int(match[1]))
        for line in sign.lines:
            assert set(line.lots) <= lot_ids
            assert line.alternative is None or line.alternative in lot_ids
    assert len(ports) == len(set(ports))
    assert any(line.alternative for sign in zeitz.signs for line in sign.lines)
    assert any(len(line.lots) > 1 for sign in zeitz.signs for line in sign.lines)


def test_zeitz_opening_hours_parse(zeitz: City) -> None:
    monday_noon = datetime(2024, 7, 1, 10, 0, tzinfo=UTC)
    for lot in zeitz.lots:
        OpeningHours(lot.opening_hours).is_open(monday_noon, zeitz.tz)


# --------------------------------------------------------------------------------------------
# Refused configs
# --------------------------------------------------------------------------------------------

CITY = """
[city]
id = "test"
name = "Testdorf"
timezone = "{tz}"
"""


def _lot(lot_id: str, counting: str = "counter", capacity: int = 100, extra: str = "") -> str:
    return f"""
[[lots]]
id = "{lot_id}"
name = "Lot {lot_id}"
kind = "surface"
counting = "{counting}"
capacity = {capacity}
latitude = 51.05
longitude = 12.13
{extra}
"""


def _bay(bay_id: str, extra: str = "") -> str:
    return f"""
[[lots.bays]]
id = "{bay_id}"
{extra}
"""


def _group(prefix: str, count: int) -> str:
    return f"""
[[lots.bay_groups]]
prefix = "{prefix}"
count = {count}
"""


def _sign(sign_id: str, lots: str = '["t-a"]', extra: str = "") -> str:
    return f"""
[[signs]]
id = "{sign_id}"
name = "Sign {sign_id}"
driver = "http"
address = "http://127.0.0.1:18999/sign"
latitude = 51.05
longitude = 12.13

[[signs.lines]]
lots = {lots}
label = "Zentrum"
{extra}
"""


def config(*parts: str, tz: str = "Europe/Berlin") -> str:
    return CITY.format(tz=tz) + "".join(parts)


VALID = config(
    _lot("t-a"),
    _lot("t-b", "bays", 3),
    _bay("t-b-x1", 'network = "ttn"\ndev_eui = "70B3D57ED0000001"'),
    _group("t-b", 2),
    _sign("s1", '["t-a", "t-b"]', 'alternative = "t-b"'),
)

EUI_1 = 'network = "ttn"\ndev_eui = "70b3d57ed0000001"'
EUI_1_AGAIN = 'network = "chirpstack"\ndev_eui = "70B3D57ED0000001"'

# (case id, TOML text, key path expected in the message, reason expected in the message)
REFUSED: list[tuple[str, str, str, str]] = [
    (
        "unknown lot in sign line",
        config(_lot("t-a"), _sign("s1", '["t-a", "t-nope"]')),
        "signs[0] (id 's1').lines[0]",
        "unknown lot 't-nope'",
    ),
    (
        "unknown alternative lot",
        config(_lot("t-a"), _sign("s1", extra='alternative = "t-gone"')),
        "signs[0] (id 's1').lines[0]",
        "unknown lot 't-gone'",
    ),
    (
        "charging line on a lot without chargers",
        config(_lot("t-a"), _sign("s1", extra='kind = "charging"')),
        "signs[0] (id 's1').lines[0]",
        "a charging line's lot 't-a' has no chargers",
    ),
    (
        "charging line with an alternative",
        config(_lot("t-a"), _lot("t-b"),
               _sign("s1", extra='kind = "charging"\nalternative = "t-b"')),
        "signs[0] (id 's1').lines[0]",
        "a charging line has no alternative",
    ),
    (
        "duplicate lot id",
        config(_lot("t-a"), _lot("t-a")),
        "lots[1].id",
        "duplicate lot id 't-a'",
    ),
    (
        "duplicate sign id",
        config(_lot("t-a"), _sign("s1"), _sign("s1")),
        "signs[1].id",
        "duplicate sign id 's1'",
    ),
    (
        "negative capacity",
        config(_lot("t-a", capacity=-1)),
        "lots[0] (id 't-a').capacity",
        "capacity must be >= 0",
    ),
    (
        "same bay in two lots",
        config(_lot("t-a", "bays", 1), _bay("b-1"), _lot("t-b", "bays", 1), _bay("b-1")),
        "lots[1] (id 't-b')",
        "bay 'b-1' is also in lot 't-a'",
    ),
    (
        "generated bay collides with explicit bay of another lot",
        config(_lot("t-a", "bays", 1), _bay("g-001"), _lot("t-b", "bays", 2), _group("g", 2)),
        "lots[1] (id 't-b')",
        "bay 'g-001' is also in lot 't-a'",
    ),
    (
        "same bay twice in one lot",
        config(_lot("t-a", "bays", 2), _bay("b-1"), _bay("b-1")),
        "lots[0] (id 't-a')",
        "bay 'b-1' is twice in this lot",
    ),
    (
        "same bay group prefix twice in one lot",
        config(_lot("t-a", "bays", 4), _group("g", 2), _group("g", 2)),
        "lots[0] (id 't-a')",
        "bay 'g-001' is twice in this lot",
    ),
    (
        "duplicate dev_eui",
        config(
            _lot("t-a", "bays", 1),
            _bay("b-1", EUI_1),
            _lot("t-b", "bays", 1),
            _bay("b-2", EUI_1_AGAIN),
        ),
        "lots[1] (id 't-b')",
        "dev_eui 70b3d57ed0000001 of bay 'b-2' is also bay 'b-1'",
    ),
    (
        "lorawan bay without dev_eui",
        config(_lot("t-a", "bays", 1), _bay("b-1", 'network = "chirpstack"')),
        "lots[0] (id 't-a')",
        "bay 'b-1' on chirpstack needs dev_eui",
    ),
    (
        "malformed dev_eui",
        config(_lot("t-a", "bays", 1), _bay("b-1", 'network = "ttn"\ndev_eui = "70b3d57e"')),
        "lots[0] (id 't-a').bays[0] (id 'b-1').dev_eui",
        "String should match pattern",
    ),
    (
        "bays lot whose capacity differs from its bay count",
        config(_lot("t-a", "bays", 5), _group("g", 4)),
        "lots[0] (id 't-a')",
        "capacity must equal the number of bays (4), not 5",
    ),
    (
        "counter lot that lists bays",
        config(_lot("t-a", "counter", 10), _bay("b-1")),
        "lots[0] (id 't-a')",
        "counted by a counter but lists bays",
    ),
    (
        "counter lot with a bay group",
        config(_lot("t-a", "counter", 10), _group("g", 3)),
        "lots[0] (id 't-a')",
        "counted by a counter but lists bays",
    ),
    (
        "more special spaces than capacity",
        config(_lot("t-a", capacity=10, extra="disabled_spaces = 6\nev_spaces = 5")),
        "lots[0] (id 't-a')",
        "more special spaces than capacity",
    ),
    (
        "almost_full above full_at",
        config(_lot("t-a", extra="almost_full = 0.95\nfull_at = 0.9")),
        "lots[0] (id 't-a').almost_full",
        "above full_at",
    ),
    (
        "unknown timezone",
        config(_lot("t-a"), tz="Mars/Olympus_Mons"),
        "city.timezone",
        "unknown timezone 'Mars/Olympus_Mons'",
    ),
    (
        "timezone outside the tz database",
        config(_lot("t-a"), tz="../../etc/passwd"),
        "city.timezone",
        "unknown timezone '../../etc/passwd'",
    ),
    (
        "unknown key in a lot",
        config(_lot("t-a", extra='colour = "blue"')),
        "lots[0] (id 't-a').colour",
        "Extra inputs are not permitted",
    ),
    (
        "unknown key in a sign line",
        config(_lot("t-a"), _sign("s1", extra="blink = true")),
        "signs[0] (id 's1').lines[0].blink",
        "Extra inputs are not permitted",
    ),
    (
        "unknown top-level table",
        config(_lot("t-a")) + "\n[parking]\nfree = true\n",
        "parking",
        "Extra inputs are not permitted",
    ),
    (
        "missing required key",
        config(_lot("t-a")).replace('name = "Lot t-a"\n', ""),
        "lots[0] (id 't-a').name",
        "Field required",
    ),
    (
        "unknown lot kind",
        config(_lot("t-a")).replace('kind = "surface"', 'kind = "tiefgarage"'),
        "lots[0] (id 't-a').kind",
        "Input should be 'garage', 'surface' or 'on_street'",
    ),
    (
        "sign label too long",
        config(_lot("t-a"), _sign("s1")).replace('"Zentrum"', '"Zentrum und Altstadt Nord-Ost"'),
        "signs[0] (id 's1').lines[0].label",
        "at most 24 characters",
    ),
    (
        "alternative label without an alternative",
        config(_lot("t-a"), _sign("s1", extra='alternative_label = "Markt"')),
        "signs[0] (id 's1').lines[0]",
        "alternative_label and alternative_arrow need an alternative",
    ),
    (
        "upper-case lot id",
        config(_lot("T-A")),
        "lots[0] (id 'T-A').id",
        "String should match pattern",
    ),
    (
        "no lots",
        CITY.format(tz="Europe/Berlin"),
        "lots",
        "Field required",
    ),
]
# (case id, a lot's opening hours, reason expected in the message)
REFUSED_HOURS = [
    ("bad opening hours syntax", "Mo-Fr 6-22", "cannot read opening hours rule 'Mo-Fr 6-22'"),
    ("bad opening hours clock", "Mo-Fr 06:00-25:00", "hour must be in 0..23"),
    ("bad opening hours day", "Mon-Fri 06:00-22:00", "cannot read opening hours rule"),
    ("empty opening hours", " ; ", "opening hours are empty"),
]
# (case id, a sign's display settings, the setting, reason expected in the message)
REFUSED_DISPLAY = [
    ("sign text longer than the line leaves room for",
     'full_text = "besetzt bis morgen"', "full_text",
     "'besetzt bis morgen' is longer than line_width - 4 (16 characters)"),
    ("sign text checked against the configured width",
     'line_width = 10\nclosed_text = "geschlossen"', "closed_text",
     "longer than line_width - 4 (6 characters)"),
    ("forecast text without its placeholder", 'forecast_text = "bald voll"', "forecast_text",
     "needs the placeholder {minutes}"),
    ("forecast text with another placeholder", 'forecast_text = "{minutes} {unit}"',
     "forecast_text", "may use only the placeholder {minutes}"),
    ("unknown safe state", 'safe_state = "?"', "safe_state", "Input should be '--' or ''"),
    ("negative wiggle", "wiggle = -1", "wiggle", "greater than or equal to 0"),
]
REFUSED += [(case, config(_lot("t-a", extra=f'opening_hours = "{rule}"')),
             "lots[0] (id 't-a').opening_hours", reason) for case, rule, reason in REFUSED_HOURS]
REFUSED += [(case, config(_lot("t-a"), _sign("s1"), f"[signs.display]\n{display}\n"),
             f"signs[0] (id 's1').display.{setting}", reason)
            for case, display, setting, reason in REFUSED_DISPLAY]


def test_valid_base_config_loads(tmp_path: Path) -> None:
    """The refused cases below are small edits of this config, so it must itself load."""
    path = tmp_path / "city.toml"
    path.write_text(VALID, encoding="utf-8")
    city = load_city(str(path))
    assert [lot.id for lot in city.lots] == ["t-a", "t-b"]
    assert [bay.id for _, bay in city.bays()] == ["t-b-x1", "t-b-001", "t-b-002"]
    assert city.lot("t-b").bays[0].dev_eui == "70b3d57ed0000001"
    assert city.signs[0].lines[0].lots == ("t-a", "t-b")
    with pytest.raises(KeyError):
        city.lot("t-z")


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_refused_config(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = tmp_path / "city.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CityConfigError) as info:
        load_city(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert f": {key}" in message, message
    assert reason in message, message
    assert "\n" not in message, "config errors are one line"


def test_invalid_toml_syntax(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    good = config(_lot("t-a"))
    path.write_text(good + '[[lots]\nid = "t-b"\n', encoding="utf-8")
    with pytest.raises(CityConfigError) as info:
        load_city(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: not valid TOML: ")
    assert f"line {good.count(chr(10)) + 1}" in message  # the broken line is named
    assert "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(CityConfigError, match=re.escape(f"{path}: no such city config")):
        load_city(str(path))


def test_missing_named_city() -> None:
    expected = CITIES_DIR / "atlantis.toml"
    with pytest.raises(CityConfigError, match=re.escape(f"{expected}: no such city config")):
        load_city("atlantis")


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(config(_lot("t-a")).replace("Testdorf", "Weißenfels").encode("latin-1"))
    with pytest.raises(CityConfigError, match=re.escape(f"{path}: not UTF-8 text")):
        load_city(str(path))


def test_directory_is_not_a_config(tmp_path: Path) -> None:
    path = tmp_path / "city.toml"
    path.mkdir()
    with pytest.raises(CityConfigError, match=re.escape(f"{path}: cannot read city config")):
        load_city(str(path))


# --------------------------------------------------------------------------------------------
# Opening hours
# --------------------------------------------------------------------------------------------


def berlin(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=BERLIN)


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_always_open() -> None:
    hours = OpeningHours(" 24/7 ")
    assert hours.always
    for moment in (utc(2024, 1, 1, 0, 0), utc(2024, 3, 31, 1, 30), berlin(2024, 12, 24, 23, 59)):
        assert hours.is_open(moment, BERLIN)


# 2024-07-01 is a Monday; 2024-07-05 a Friday, 2024-07-06 a Saturday, 2024-07-07 a Sunday.
OPENING_CASES: list[tuple[str, datetime, bool]] = [
    # weekday range and a Saturday rule
    ("Mo-Fr 06:00-22:00; Sa 07:00-20:00", berlin(2024, 7, 3, 5, 59), False),
    ("Mo-Fr 06:00-22:00; Sa 07:00-20:00", berlin(2024, 7, 3, 6, 0), True),
    ("Mo-Fr 06:00-22:00; Sa 07:00-20:00", berlin(2024, 7, 3, 21, 59), True),
    ("Mo-Fr 06:00-22:00; Sa 07:00-20:00", berlin(2024, 7, 3, 22, 0), False),
    ("Mo-Fr 06:00-22:00; Sa 07:00-20:00", berlin(2024, 7, 6, 6, 59), False),
    ("Mo-Fr 06:00-22:00; Sa 07:00-20:00", berlin(2024, 7, 6, 7, 0), True),
    ("Mo-Fr 06:00-22:00; Sa 07:00-20:00", berlin(2024, 7, 6, 20, 0), False),
    ("Mo-Fr 06:00-22:00; Sa 07:00-20:00", berlin(2024, 7, 7, 12, 0), False),
    # over midnight: Friday and Saturday evening until 02:00 the next morning
    ("Fr-Sa 18:00-02:00", berlin(2024, 7, 4, 23, 0), False),  # Thursday evening
    ("Fr-Sa 18:00-02:00", berlin(2024, 7, 5, 1, 0), False),  # Friday early (Thu not listed)
    ("Fr-Sa 18:00-02:00", berlin(2024, 7, 5, 17, 59), False),
    ("Fr-Sa 18:00-02:00", berlin(2024, 7, 5, 18, 0), True),
    ("Fr-Sa 18:00-02:00", berlin(2024, 7, 6, 1, 59), True),  # Friday night, on Saturday
    ("Fr-Sa 18:00-02:00", berlin(2024, 7, 6, 2, 0), False),
    ("Fr-Sa 18:00-02:00", berlin(2024, 7, 6, 23, 0), True),
    ("Fr-Sa 18:00-02:00", berlin(2024, 7, 7, 1, 0), True),  # Saturday night, on Sunday
    ("Fr-Sa 18:00-02:00", berlin(2024, 7, 7, 2, 0), False),
    ("Fr-Sa 18:00-02:00", berlin(2024, 7, 7, 20, 0), False),
    # an end of 24:00 runs to midnight and no further
    ("Mo-Fr 08:00-24:00", berlin(2024, 7, 5, 23, 59, 59), True),
    ("Mo-Fr 08:00-24:00", berlin(2024, 7, 6, 0, 0), False),
    ("Mo-Fr 08:00-24:00", berlin(2024, 7, 1, 7, 59), False),
    ("Mo-Fr 00:00-24:00", berlin(2024, 7, 1, 0, 0), True),
    ("Mo-Fr 00:00-24:00", berlin(2024, 7, 7, 12, 0), False),
    # day ranges that wrap the week, and day lists
    ("Sa-Mo 10:00-12:00", berlin(2024, 7, 7, 11, 0), True),
    ("Sa-Mo 10:00-12:00", berlin(2024, 7, 1, 11, 0), True),
    ("Sa-Mo 10:00-12:00", berlin(2024, 7, 2, 11, 0), False),
    ("Mo,We,Fr 09:00-10:00", berlin(2024, 7, 3, 9, 30), True),
    ("Mo,We,Fr 09:00-10:00", berlin(2024, 7, 4, 9, 30), False),
    ("Su 22:00-06:00", berlin(2024, 7, 1, 5, 0), True),  # Sunday night into Monday
    # Europe/Berlin with daylight saving time: aware datetimes in UTC, read as local time.
    # Summer (CEST, UTC+2): 06:00 UTC is 08:00 local.
    ("Mo-Fr 08:00-18:00", utc(2024, 7, 1, 5, 59), False),
    ("Mo-Fr 08:00-18:00", utc(2024, 7, 1, 6, 0), True),
    ("Mo-Fr 08:00-18:00", utc(2024, 7, 1, 15, 59), True),
    ("Mo-Fr 08:00-18:00", utc(2024, 7, 1, 16, 0), False),
    # Winter (CET, UTC+1): 07:00 UTC is 08:00 local.
    ("Mo-Fr 08:00-18:00", utc(2024, 1, 8, 6, 59), False),
    ("Mo-Fr 08:00-18:00", utc(2024, 1, 8, 7, 0), True),
    ("Mo-Fr 08:00-18:00", utc(2024, 1, 8, 16, 59), True),
    ("Mo-Fr 08:00-18:00", utc(2024, 1, 8, 17, 0), False),
    # The local weekday counts, not the UTC one: Friday 16:00 UTC is Friday 18:00 local;
    # Saturday 23:30 UTC is already Sunday 01:30 local (Saturday night); Sunday 00:30 UTC
    # is Sunday 02:30 local (closed).
    ("Fr-Sa 18:00-02:00", utc(2024, 7, 5, 16, 0), True),
    ("Fr-Sa 18:00-02:00", utc(2024, 7, 6, 23, 30), True),
    ("Fr-Sa 18:00-02:00", utc(2024, 7, 7, 0, 30), False),
    ("Mo 00:00-01:00", utc(2024, 1, 7, 23, 30), True),  # Sunday UTC, Monday 00:30 local
    # Spring forward, 2024-03-31: 01:00 UTC is 03:00 CEST (02:00-03:00 local never happens).
    ("Su 01:00-04:00", utc(2024, 3, 31, 0, 59), True),  # 01:59 CET
    ("Su 01:00-04:00", utc(2024, 3, 31, 1, 0), True),  # 03:00 CEST
    ("Su 01:00-04:00", utc(2024, 3, 31, 2, 0), False),  # 04:00 CEST
    ("Su 03:00-04:00", utc(2024, 3, 31, 0, 59), False),  # 01:59 CET
    ("Su 03:00-04:00", utc(2024, 3, 31, 1, 0), True),  # 03:00 CEST
    # Fall back, 2024-10-27: 02:00-03:00 local happens twice (00:00-01:00 and 01:00-02:00 UTC).
    ("Su 03:00-04:00", utc(2024, 10, 27, 0, 30), False),  # 02:30 CEST
    ("Su 03:00-04:00", utc(2024, 10, 27, 1, 30), False),  # 02:30 CET
    ("Su 03:00-04:00", utc(2024, 10, 27, 2, 0), True),  # 03:00 CET
    ("Su 02:00-03:00", utc(2024, 10, 27, 0, 30), True),  # 02:30 CEST
    ("Su 02:00-03:00", utc(2024, 10, 27, 1, 30), True),  # 02:30 CET
]


@pytest.mark.parametrize(
    ("text", "moment", "expected"),
    OPENING_CASES,
    ids=[f"{text} @ {moment.isoformat()}" for text, moment, _ in OPENING_CASES],
)
def test_opening_hours_is_open(text: str, moment: datetime, expected: bool) -> None:
    assert OpeningHours(text).is_open(moment, BERLIN) is expected


def test_opening_hours_other_timezone() -> None:
    """The same UTC moment is open in Berlin and closed in New York."""
    hours = OpeningHours("Mo-Fr 08:00-18:00")
    moment = utc(2024, 7, 1, 10, 0)
    assert hours.is_open(moment, BERLIN)
    assert not hours.is_open(moment, ZoneInfo("America/New_York"))


def test_opening_hours_need_aware_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        OpeningHours("Mo-Fr 08:00-18:00").is_open(datetime(2024, 7, 1, 10, 0), BERLIN)


@pytest.mark.parametrize(
    "text",
    [
        "",
        ";",
        "always",
        "Mo-Fr",
        "Mo-Fr 6:00-22:00",
        "Mo-Fr 06:00 - 22:00",
        "Mon-Fri 06:00-22:00",
        "Mo-Fr 06:00-22:00,Sa 07:00-20:00",
        "Mo 24:00-06:00",
        "Mo 08:00-24:30",
        "Mo 08:60-09:00",
        "24/7; Mo 08:00-10:00",
    ],
)
def test_opening_hours_refused(text: str) -> None:
    with pytest.raises(ValueError):
        OpeningHours(text)


# --------------------------------------------------------------------------------------------
# resolve_city_path
# --------------------------------------------------------------------------------------------


def test_resolve_name_to_cities_dir() -> None:
    path = resolve_city_path("zeitz")
    assert path == CITIES_DIR / "zeitz.toml"
    assert path.is_file()
    assert path.parent.name == "cities"


def test_resolve_toml_path_stays(tmp_path: Path) -> None:
    assert resolve_city_path("elsewhere/leipzig.toml") == Path("elsewhere/leipzig.toml")
    assert resolve_city_path(str(tmp_path / "x.toml")) == tmp_path / "x.toml"


def test_resolve_path_with_directory_stays(tmp_path: Path) -> None:
    assert resolve_city_path(str(tmp_path / "gera")) == tmp_path / "gera"
    assert resolve_city_path("configs/gera") == Path("configs/gera")


def test_resolve_existing_file_without_suffix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "gera.conf").write_text(VALID, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert resolve_city_path("gera.conf") == Path("gera.conf")
    assert load_city("gera.conf").id == "test"


def test_resolve_ignores_directory_named_like_a_city(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "zeitz").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_city_path("zeitz") == CITIES_DIR / "zeitz.toml"
    assert load_city("zeitz").id == "zeitz"


def test_load_city_by_path_equals_by_name() -> None:
    assert load_city(str(CITIES_DIR / "zeitz.toml")) == load_city("zeitz")
