"""The city registry: lots, bays, LoRaWAN devices and signs, loaded from a TOML config."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Iterable, Iterator
from datetime import datetime, time
from pathlib import Path
from typing import Annotated, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

__all__ = [
    "EVSE_ID_PATTERN",
    "ID_PATTERN",
    "Bay",
    "ChargingStation",
    "Cities",
    "City",
    "CityConfigError",
    "Connector",
    "DatedEvent",
    "Event",
    "Evse",
    "Lot",
    "OcpiPeer",
    "OpeningHours",
    "Sign",
    "SignDisplay",
    "SignLine",
    "load_cities",
    "load_city",
    "resolve_city_path",
]

CITIES_DIR = Path(__file__).resolve().parent.parent / "cities"
# What an id of a city, lot, bay, sign or charger may look like (the API checks ids with it).
ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
Identifier = Annotated[str, Field(pattern=ID_PATTERN)]
# An eMI3 EVSE id (country, operator, ``E`` and the point's own part; ``*`` separators
# optional), as the OCPI EVSE ``evse_id`` and the BNetzA register write it.
EVSE_ID_PATTERN = r"^[A-Z]{2}\*?[A-Z0-9]{3}\*?E[A-Z0-9][A-Z0-9*]{0,30}$"


class CityConfigError(Exception):
    """A city config cannot be used; the message names the file, the key and the reason."""


_T = TypeVar("_T")
_DAYS = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")
_RULE = re.compile(
    r"^(?P<days>(?:Mo|Tu|We|Th|Fr|Sa|Su)(?:-(?:Mo|Tu|We|Th|Fr|Sa|Su))?"
    r"(?:,(?:Mo|Tu|We|Th|Fr|Sa|Su)(?:-(?:Mo|Tu|We|Th|Fr|Sa|Su))?)*)"
    r"\s+(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})$"
)


class OpeningHours:
    """A subset of the OpenStreetMap ``opening_hours`` syntax: ``24/7`` or
    ``Mo-Fr 06:00-22:00; Sa 08:00-20:00`` (an end of 24:00 or before the start runs past
    midnight). Times are local to the city."""

    def __init__(self, text: str) -> None:
        self.text = text.strip()
        self.always = self.text == "24/7"
        self._rules: list[tuple[frozenset[int], time, time | None]] = []
        if self.always:
            return
        for rule in filter(None, (part.strip() for part in self.text.split(";"))):
            match = _RULE.match(rule)
            if not match:
                raise ValueError(f"cannot read opening hours rule {rule!r}")
            days: set[int] = set()
            for span in match["days"].split(","):
                first, _, last = span.partition("-")
                a, b = _DAYS.index(first), _DAYS.index(last or first)
                days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
            try:
                start = _parse_clock(match["start"])
                end = None if match["end"] == "24:00" else _parse_clock(match["end"])
            except ValueError as exc:
                raise ValueError(f"cannot read opening hours rule {rule!r}: {exc}") from None
            self._rules.append((frozenset(days), start, end))
        if not self._rules:
            raise ValueError("opening hours are empty")

    def is_open(self, moment: datetime, tz: ZoneInfo) -> bool:
        """Whether the lot is open at ``moment`` (timezone-aware)."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("is_open needs a timezone-aware datetime")
        if self.always:
            return True
        local = moment.astimezone(tz)
        now, day = local.time(), local.weekday()
        for days, start, end in self._rules:
            if end is None or end > start:
                if day in days and now >= start and (end is None or now < end):
                    return True
            elif (day in days and now >= start) or ((day - 1) % 7 in days and now < end):
                return True
        return False


def _parse_clock(text: str) -> time:
    hours, minutes = (int(part) for part in text.split(":"))
    return time(hours, minutes)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bay(_Model):
    """One parking bay with a sensor."""

    id: Identifier
    kind: Literal["standard", "disabled", "ev"] = "standard"
    network: Literal["native", "ttn", "chirpstack"] = "native"
    dev_eui: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")] | None = None

    @field_validator("dev_eui", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class BayGroup(_Model):
    """A run of bays with generated ids ``{prefix}-001`` .. ``{prefix}-{count}``."""

    prefix: Identifier
    count: Annotated[int, Field(ge=1, le=100_000)]
    kind: Literal["standard", "disabled", "ev"] = "standard"


class Lot(_Model):
    """A car park, surface lot or on-street zone."""

    id: Identifier
    name: Annotated[str, Field(min_length=1)]
    kind: Literal["garage", "surface", "on_street"]
    counting: Literal["counter", "bays"]
    capacity: int
    latitude: Annotated[float, Field(ge=-90, le=90)]
    longitude: Annotated[float, Field(ge=-180, le=180)]
    disabled_spaces: Annotated[int, Field(ge=0)] = 0
    ev_spaces: Annotated[int, Field(ge=0)] = 0
    opening_hours: str = "24/7"
    almost_full: Annotated[float, Field(gt=0, le=1)] = 0.9
    full_at: Annotated[float, Field(gt=0, le=1)] = 1.0
    stale_after_s: Annotated[int, Field(ge=30)] = 900
    counter_modulus: Annotated[int, Field(ge=2)] = 65536
    # Barrier lanes one way (entry or exit, whichever has more): ingest judges a counter's
    # change against what they can pass (ingest/_state.py, plausibility).
    lanes: Annotated[int, Field(ge=1, le=50)] = 1
    # Data quality: a bay occupied (free) longer than this is a stuck sensor; a counter lot
    # known to be empty at ``empty_at`` (local time) is re-zeroed then, to undo drift.
    max_dwell_h: Annotated[float, Field(gt=0)] = 48.0
    max_idle_h: Annotated[float, Field(gt=0)] = 168.0
    empty_at: time | None = None
    profile: Literal["shopping", "commuter", "park_and_ride", "residential", "event"] = (
        "shopping"
    )
    address: str = ""
    bays: tuple[Bay, ...] = ()
    bay_groups: tuple[BayGroup, ...] = ()

    @field_validator("capacity")
    @classmethod
    def _capacity_not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError("capacity must be >= 0")
        return value

    @field_validator("opening_hours")
    @classmethod
    def _opening_hours_readable(cls, value: str) -> str:
        OpeningHours(value)
        return value

    def all_bays(self) -> Iterator[Bay]:
        """Explicit bays, then the generated ones of each group."""
        yield from self.bays
        for group in self.bay_groups:
            for number in range(1, group.count + 1):
                yield Bay(id=f"{group.prefix}-{number:03d}", kind=group.kind)


class SignLine(_Model):
    """One line of a sign: the lots it counts, an arrow and a label. A ``charging`` line
    counts the free charging points of its lots instead ("E-Laden 2 frei")."""

    lots: Annotated[tuple[Identifier, ...], Field(min_length=1)]
    label: Annotated[str, Field(min_length=1, max_length=24)]
    arrow: Literal["left", "right", "straight", "none"] = "straight"
    kind: Literal["parking", "charging"] = "parking"
    alternative: Identifier | None = None
    # What the line shows while it routes to ``alternative``; default the lot's name and the
    # line's own arrow.
    alternative_label: Annotated[str, Field(min_length=1, max_length=24)] | None = None
    alternative_arrow: Literal["left", "right", "straight", "none"] | None = None

    @model_validator(mode="after")
    def _alternative_consistent(self) -> SignLine:
        if self.alternative is None and (self.alternative_label or self.alternative_arrow):
            raise ValueError("alternative_label and alternative_arrow need an alternative")
        if self.kind == "charging" and self.alternative is not None:
            raise ValueError("a charging line has no alternative")
        return self


class SignDisplay(_Model):
    """How a sign's lines are rendered (``signage/_render.py`` states the rules)."""

    # Characters for label + " " + text; arrows are drawn apart. The text is never cut, so
    # the fixed texts leave at least 3 characters of label.
    line_width: Annotated[int, Field(ge=8, le=80)] = 20
    full_text: Annotated[str, Field(min_length=1)] = "besetzt"
    almost_full_text: Annotated[str, Field(min_length=1)] = "fast voll"
    closed_text: Annotated[str, Field(min_length=1)] = "geschlossen"
    # A charging line's text: its lots' free charging points ({free}).
    charging_text: Annotated[str, Field(min_length=1, pattern=r"\{free\}")] = "{free} frei"
    safe_state: Literal["--", ""] = "--"
    # Leaving full / almost full needs this many more free spaces than entering it.
    hysteresis_spaces: Annotated[int, Field(ge=0, le=10_000)] = 2
    hysteresis_fraction: Annotated[float, Field(ge=0, le=0.5)] = 0.02
    # A count change of at most ``wiggle`` waits until the shown text is this old.
    wiggle: Annotated[int, Field(ge=0, le=10_000)] = 2
    min_change_interval_s: Annotated[int, Field(ge=0, le=3600)] = 30
    show_forecast: bool = False
    forecast_text: Annotated[str, Field(min_length=1)] = "voll in ~{minutes} min"
    forecast_confidence: Annotated[float, Field(ge=0.5, le=1)] = 0.8
    forecast_horizon_min: Annotated[int, Field(ge=5, le=180)] = 60

    @field_validator("full_text", "almost_full_text", "closed_text", "forecast_text")
    @classmethod
    def _text_fits(cls, value: str, info: ValidationInfo) -> str:
        shown = value
        if info.field_name == "forecast_text":
            if "{minutes}" not in value:
                raise ValueError("forecast_text needs the placeholder {minutes}")
            try:
                shown = value.format(minutes=180)
            except (KeyError, IndexError, ValueError):
                raise ValueError("forecast_text may use only the placeholder {minutes}") from None
        width = info.data.get("line_width")  # absent when line_width itself was refused
        if isinstance(width, int) and len(shown) > width - 4:
            raise ValueError(
                f"{shown!r} is longer than line_width - 4 ({width - 4} characters)")
        return value


class Sign(_Model):
    """A variable message sign on a road into town."""

    id: Identifier
    name: Annotated[str, Field(min_length=1)]
    road: str = ""
    driver: Literal["ntcip1203", "http", "mqtt"]
    address: Annotated[str, Field(min_length=1)]
    latitude: Annotated[float, Field(ge=-90, le=90)]
    longitude: Annotated[float, Field(ge=-180, le=180)]
    stale_after_s: Annotated[int, Field(ge=30)] = 300
    lines: Annotated[tuple[SignLine, ...], Field(min_length=1)]
    display: SignDisplay = SignDisplay()


class Event(_Model):
    """Extra demand on some lots: a weekly market or a one-off event (concert, match)."""

    name: Annotated[str, Field(min_length=1)]
    kind: Literal["market", "event"] = "event"
    lots: Annotated[tuple[Identifier, ...], Field(min_length=1)]
    date: dt.date | None = None
    weekly: Annotated[str, Field(pattern=r"^(Mo|Tu|We|Th|Fr|Sa|Su)(,(Mo|Tu|We|Th|Fr|Sa|Su))*$")] | (
        None) = None
    start: time
    end: time
    cars: Annotated[int, Field(ge=1, le=100_000)]

    def occurs_on(self, day: dt.date) -> bool:
        """Whether the event takes place on the (local) calendar day ``day``."""
        if self.date is not None:
            return self.date == day
        return self.weekly is not None and _DAYS[day.weekday()] in self.weekly.split(",")

    def windows(self, days: Iterable[dt.date], zone: ZoneInfo) -> Iterator[
            tuple[datetime, datetime]]:
        """Its (start, end) on each of the (local) calendar days ``days`` it takes place."""
        for day in days:
            if self.occurs_on(day):
                yield datetime.combine(day, self.start, zone), datetime.combine(day, self.end, zone)


class DatedEvent(_Model):
    """An event of one time window, entered in the console (table ``events``): extra demand
    on ``lots`` from ``starts`` to ``ends``, taken by the forecaster as the config's events."""

    name: Annotated[str, Field(min_length=1)]
    lots: tuple[Identifier, ...]
    starts: AwareDatetime
    ends: AwareDatetime

    def windows(self, days: Iterable[dt.date], zone: ZoneInfo) -> Iterator[
            tuple[datetime, datetime]]:
        """Its one (start, end), whatever the days (it may span several)."""
        del days, zone  # a fixed window of its own
        yield self.starts, self.ends


# OCPI 2.2.1 ConnectorType (mod_locations, 8.4.7).
ConnectorStandard = Literal[
    "CHADEMO", "CHAOJI", "DOMESTIC_A", "DOMESTIC_B", "DOMESTIC_C", "DOMESTIC_D", "DOMESTIC_E",
    "DOMESTIC_F", "DOMESTIC_G", "DOMESTIC_H", "DOMESTIC_I", "DOMESTIC_J", "DOMESTIC_K",
    "DOMESTIC_L", "DOMESTIC_M", "DOMESTIC_N", "DOMESTIC_O", "GBT_AC", "GBT_DC",
    "IEC_60309_2_single_16", "IEC_60309_2_three_16", "IEC_60309_2_three_32",
    "IEC_60309_2_three_64", "IEC_62196_T1", "IEC_62196_T1_COMBO", "IEC_62196_T2",
    "IEC_62196_T2_COMBO", "IEC_62196_T3A", "IEC_62196_T3C", "NEMA_5_20", "NEMA_6_30",
    "NEMA_6_50", "NEMA_10_30", "NEMA_10_50", "NEMA_14_30", "NEMA_14_50", "PANTOGRAPH_BOTTOM_UP",
    "PANTOGRAPH_TOP_DOWN", "TESLA_R", "TESLA_S",
]


class Connector(_Model):
    """One connector (plug or socket) of a charging point, in OCPI 2.2.1's terms."""

    standard: ConnectorStandard
    format: Literal["SOCKET", "CABLE"]
    power_type: Literal["AC_1_PHASE", "AC_3_PHASE", "DC"]
    max_power_kw: Annotated[float, Field(gt=0, le=1000)]


class Evse(_Model):
    """A charging point (EVSE) of a station: its eMI3 id, its number at the station (OCPP 1.6
    connectorId / 2.0.1 evseId), the bays of the site lot it serves and its connectors."""

    evse_id: Annotated[str, Field(pattern=EVSE_ID_PATTERN)]
    number: Annotated[int, Field(ge=1, le=1000)]
    bays: tuple[Identifier, ...] = ()
    tariff: Annotated[str, Field(min_length=1)] | None = None
    connectors: Annotated[tuple[Connector, ...], Field(min_length=1)]


class ChargingStation(_Model):
    """A charging station (one OCPP charge point) on a site, the lot it stands on; operated by
    the city (``operator = "city"``) or another operator; its live status comes over OCPP,
    OCPI or MQTT (``protocol``)."""

    id: Identifier
    lot: Identifier
    name: Annotated[str, Field(min_length=1)]
    operator: Annotated[str, Field(min_length=1)]
    protocol: Literal["ocpp", "ocpi", "mqtt"]
    bnetza_id: Annotated[str, Field(min_length=1)] | None = None
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = None
    evses: Annotated[tuple[Evse, ...], Field(min_length=1)]

    @property
    def city_operated(self) -> bool:
        """Whether the city runs the station itself (its points are in the AFIR publication)."""
        return self.operator == "city"

    @model_validator(mode="after")
    def _position_complete(self) -> ChargingStation:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give both latitude and longitude, or neither (the lot's)")
        return self


class OcpiPeer(_Model):
    """Another operator's OCPI 2.2.1 platform (a CPO) whose chargers' status we pull and
    whose pushes we accept: the stations with ``protocol = "ocpi"`` and this ``operator``.

    Tokens are never in the config: ``token_env`` names the environment variable holding the
    token we send to their ``locations`` (``Authorization: Token <base64>``),
    ``push_token_env`` the one holding the token they send us with their pushes."""

    id: Identifier
    operator: Annotated[str, Field(min_length=1)]
    country_code: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    party_id: Annotated[str, Field(pattern=r"^[A-Z0-9]{3}$")]
    # Their OCPI 2.2.1 sender ``locations`` endpoint; none: they only push.
    locations_url: Annotated[str, Field(pattern=r"^https?://[^/\s]+(/\S*)?$")] | None = None
    token_env: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")] | None = None
    push_token_env: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")] | None = None
    pull_interval_s: Annotated[float, Field(ge=1, le=86_400)] = 60.0
    # No good answer from them for this long: their points are stored as UNKNOWN.
    stale_after_s: Annotated[float, Field(ge=1, le=604_800)] = 600.0
    page_limit: Annotated[int, Field(ge=1, le=1000)] = 100

    @model_validator(mode="after")
    def _token_for_pull(self) -> OcpiPeer:
        if self.locations_url is not None and self.token_env is None:
            raise ValueError("locations_url needs token_env (the variable holding our token)")
        if self.locations_url is None and self.push_token_env is None:
            raise ValueError("give locations_url (pull) or push_token_env (push), or both")
        return self

    def local_address(self) -> tuple[str, int] | None:
        """Host and port of ``locations_url`` where it names this machine (127.0.0.1 or
        localhost: a simulated platform, as the example city's); else None."""
        address = urlsplit(self.locations_url or "")
        if address.hostname not in ("127.0.0.1", "localhost"):
            return None
        return address.hostname, address.port or (443 if address.scheme == "https" else 80)


class LoRaWAN(_Model):
    """Network-server applications whose uplinks ingest subscribes to."""

    ttn_applications: tuple[str, ...] = ()
    chirpstack_applications: tuple[str, ...] = ()


class CityInfo(_Model):
    id: Identifier
    name: Annotated[str, Field(min_length=1)]
    timezone: str = "Europe/Berlin"
    illustrative: bool = False
    state: str = "ST"
    # A charging point whose bay is occupied while it has not been charging for this long is
    # blocked (a car parked without charging; rules.sql evse_effective).
    charger_blocked_after_min: Annotated[int, Field(ge=1, le=1440)] = 15

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        # ZoneInfoNotFoundError is a KeyError, which pydantic would not turn into a
        # validation error; re-raise as ValueError so load_city can name the key.
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r} ({exc})") from None
        return value


class City(_Model):
    """A whole city: the registry every service works from."""

    city: CityInfo
    lorawan: LoRaWAN = LoRaWAN()
    lots: Annotated[tuple[Lot, ...], Field(min_length=1)]
    signs: tuple[Sign, ...] = ()
    events: tuple[Event, ...] = ()
    chargers: tuple[ChargingStation, ...] = ()
    ocpi_peers: tuple[OcpiPeer, ...] = ()

    @property
    def id(self) -> str:
        return self.city.id

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.city.timezone)

    def lot(self, lot_id: str) -> Lot:
        """The lot with this id; KeyError if there is none."""
        for lot in self.lots:
            if lot.id == lot_id:
                return lot
        raise KeyError(lot_id)

    def bays(self) -> Iterator[tuple[Lot, Bay]]:
        """Every bay with the lot it belongs to."""
        for lot in self.lots:
            for bay in lot.all_bays():
                yield lot, bay

    def station(self, charge_point_id: str) -> ChargingStation:
        """The charging station with this charge point id; KeyError if there is none."""
        for station in self.chargers:
            if station.id == charge_point_id:
                return station
        raise KeyError(charge_point_id)

    def evse(self, evse_id: str) -> tuple[ChargingStation, Evse]:
        """The charging point with this EVSE id and its station; KeyError if there is none."""
        for station in self.chargers:
            for evse in station.evses:
                if evse.evse_id == evse_id:
                    return station, evse
        raise KeyError(evse_id)

    def evses(self) -> Iterator[tuple[ChargingStation, Evse]]:
        """Every charging point with its station."""
        for station in self.chargers:
            for evse in station.evses:
                yield station, evse

    def ev_spaces(self, lot_id: str) -> int:
        """The EV spaces of a lot: as many as its config says, or as its charging points where
        it has more (each charges a car on a space of its own)."""
        points = sum(len(station.evses) for station in self.chargers if station.lot == lot_id)
        return max(self.lot(lot_id).ev_spaces, points)

    def peer_evses(self, peer: OcpiPeer) -> Iterator[tuple[ChargingStation, Evse]]:
        """The charging points whose status comes from this OCPI peer."""
        for station, evse in self.evses():
            if station.protocol == "ocpi" and station.operator == peer.operator:
                yield station, evse

    def station_position(self, station: ChargingStation) -> tuple[float, float]:
        """A station's latitude and longitude: its own, else its lot's."""
        if station.latitude is not None and station.longitude is not None:
            return station.latitude, station.longitude
        lot = self.lot(station.lot)
        return lot.latitude, lot.longitude


class Cities:
    """The cities of one installation, in order; lots and signs found by id across them
    (ids are unique across the cities, as ``load_cities`` checks)."""

    def __init__(self, cities: Iterable[City]) -> None:
        self.all = tuple(cities)
        self._by_id = {city.id: city for city in self.all}
        self._lots = {lot.id: (city, lot) for city in self.all for lot in city.lots}
        self._signs = {sign.id: (city, sign) for city in self.all for sign in city.signs}
        self._stations = {station.id: (city, station)
                          for city in self.all for station in city.chargers}

    def __iter__(self) -> Iterator[City]:
        return iter(self.all)

    def __len__(self) -> int:
        return len(self.all)

    def get(self, city_id: str) -> City | None:
        """The city with this id, if the installation has it."""
        return self._by_id.get(city_id)

    def lot(self, lot_id: str) -> tuple[City, Lot]:
        """The lot with this id and its city; KeyError if there is none."""
        return self._lots[lot_id]

    def sign(self, sign_id: str) -> tuple[City, Sign]:
        """The sign with this id and its city; KeyError if there is none."""
        return self._signs[sign_id]

    def station(self, charge_point_id: str) -> tuple[City, ChargingStation]:
        """The charging station with this charge point id and its city; KeyError if none."""
        return self._stations[charge_point_id]


def resolve_city_path(name_or_path: str) -> Path:
    """A config name (``zeitz``) resolves to ``cities/zeitz.toml``; a path stays a path.

    A path is anything ending in ``.toml``, containing a directory separator, or naming an
    existing file (a directory called ``zeitz`` in the working directory is not a config)."""
    candidate = Path(name_or_path)
    if (
        candidate.suffix == ".toml"
        or "/" in name_or_path
        or "\\" in name_or_path
        or candidate.is_file()
    ):
        return candidate
    return CITIES_DIR / f"{name_or_path}.toml"


def load_city(name_or_path: str) -> City:
    """Load and check a city config; raises CityConfigError naming file, key and reason."""
    path = resolve_city_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CityConfigError(f"{path}: no such city config") from None
    except UnicodeDecodeError as exc:
        raise CityConfigError(f"{path}: not UTF-8 text: {exc}") from None
    except OSError as exc:
        raise CityConfigError(f"{path}: cannot read city config: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CityConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        city = City.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise CityConfigError(
            f"{path}: {_key_path(error['loc'], raw)}: {error['msg'].removeprefix('Value error, ')}"
        ) from None
    problem = _cross_check(city)
    if problem:
        raise CityConfigError(f"{path}: {problem}")
    return city


def load_cities(refs: Iterable[str]) -> Cities:
    """Load the configs of an installation's cities, in order; CityConfigError if one cannot
    be used or two share an id (of a city, lot, bay, sign, device, LoRaWAN application,
    charging station or EVSE): lots, signs and chargers are addressed by id alone, across
    cities."""
    refs = tuple(refs)
    cities = tuple(load_city(ref) for ref in refs)
    if not cities:
        raise CityConfigError("no city configured")
    owners: dict[tuple[str, str], str] = {}
    for ref, city in zip(refs, cities, strict=True):
        if ("city", city.id) in owners:
            first = refs[[c.id for c in cities].index(city.id)]
            raise CityConfigError(f"{resolve_city_path(ref)}: city id {city.id!r} is "
                                  f"{resolve_city_path(first)}'s already")
        for kind, ident in _identities(city):
            owner = owners.setdefault((kind, ident), city.id)
            if owner != city.id:
                raise CityConfigError(
                    f"{resolve_city_path(ref)}: {kind} {ident!r} is also in city {owner!r}")
    return Cities(cities)


def _identities(city: City) -> Iterator[tuple[str, str]]:
    yield "city", city.id
    for lot in city.lots:
        yield "lot", lot.id
    for _, bay in city.bays():
        yield "bay", bay.id
        if bay.dev_eui:
            yield "dev_eui", bay.dev_eui
    for sign in city.signs:
        yield "sign", sign.id
        yield "sign address", sign.address
    for app in (*city.lorawan.ttn_applications, *city.lorawan.chirpstack_applications):
        yield "LoRaWAN application", app
    for station in city.chargers:
        yield "charging station", station.id
        for evse in station.evses:
            yield "EVSE", evse.evse_id


def _key_path(loc: tuple[int | str, ...], raw: object) -> str:
    """``lots[3].capacity`` (with the lot id where there is one) from a pydantic location."""
    parts: list[str] = []
    node = raw
    for part in loc:
        if isinstance(part, int):
            label = f"[{part}]"
            if isinstance(node, list) and part < len(node):
                node = node[part]
                if isinstance(node, dict) and isinstance(node.get("id"), str):
                    label = f"[{part}] (id {node['id']!r})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + part)
            node = node.get(part) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


def _seen_before(seen: set[_T], value: _T) -> bool:
    """Whether ``value`` is in ``seen`` already (a duplicate); it is afterwards."""
    if value in seen:
        return True
    seen.add(value)
    return False


def _cross_check(city: City) -> str | None:
    """Rules that span several entries: unique ids, known lots, each bay in one lot."""
    lot_ids: set[str] = set()
    for index, lot in enumerate(city.lots):
        if _seen_before(lot_ids, lot.id):
            return f"lots[{index}].id: duplicate lot id {lot.id!r}"
        if lot.disabled_spaces + lot.ev_spaces > lot.capacity:
            return f"lots[{index}] (id {lot.id!r}): more special spaces than capacity"
        if lot.almost_full > lot.full_at:
            return (
                f"lots[{index}] (id {lot.id!r}).almost_full: {lot.almost_full} is above "
                f"full_at {lot.full_at}"
            )
    bay_owner: dict[str, str] = {}
    euis: dict[str, str] = {}
    for index, lot in enumerate(city.lots):
        count = 0
        for bay in lot.all_bays():
            count += 1
            if bay.id in bay_owner:
                owner = bay_owner[bay.id]
                where = "twice in this lot" if owner == lot.id else f"also in lot {owner!r}"
                return f"lots[{index}] (id {lot.id!r}): bay {bay.id!r} is {where}"
            bay_owner[bay.id] = lot.id
            if bay.network != "native" and bay.dev_eui is None:
                return (
                    f"lots[{index}] (id {lot.id!r}): bay {bay.id!r} on {bay.network} "
                    "needs dev_eui"
                )
            if bay.dev_eui is not None:
                if bay.dev_eui in euis:
                    return (
                        f"lots[{index}] (id {lot.id!r}): dev_eui {bay.dev_eui} of bay "
                        f"{bay.id!r} is also bay {euis[bay.dev_eui]!r}"
                    )
                euis[bay.dev_eui] = bay.id
        if lot.counting == "bays" and count != lot.capacity:
            return (
                f"lots[{index}] (id {lot.id!r}): counted by bays, so capacity must equal the "
                f"number of bays ({count}), not {lot.capacity}"
            )
        if lot.counting == "counter" and count:
            return f"lots[{index}] (id {lot.id!r}): counted by a counter but lists bays"
    sign_ids: set[str] = set()
    for index, sign in enumerate(city.signs):
        if _seen_before(sign_ids, sign.id):
            return f"signs[{index}].id: duplicate sign id {sign.id!r}"
        for line_index, line in enumerate(sign.lines):
            for lot_id in (*line.lots, *filter(None, [line.alternative])):
                if lot_id not in lot_ids:
                    return (
                        f"signs[{index}] (id {sign.id!r}).lines[{line_index}]: "
                        f"unknown lot {lot_id!r}"
                    )
                if line.kind == "charging" and not any(
                        station.lot == lot_id for station in city.chargers):
                    return (
                        f"signs[{index}] (id {sign.id!r}).lines[{line_index}]: a charging "
                        f"line's lot {lot_id!r} has no chargers"
                    )
    for index, event in enumerate(city.events):
        if (event.date is None) == (event.weekly is None):
            return f"events[{index}] ({event.name!r}): give either date or weekly"
        if event.end <= event.start:
            return f"events[{index}] ({event.name!r}): end must be after start"
        for lot_id in event.lots:
            if lot_id not in lot_ids:
                return f"events[{index}] ({event.name!r}): unknown lot {lot_id!r}"
    return _check_chargers(city, bay_owner)


def _check_chargers(city: City, bay_owner: dict[str, str]) -> str | None:
    """Charging stations: unique ids, a known site lot, unique EVSE ids and numbers, and
    every bay a point serves is a bay of the site lot, served by no other point."""
    lot_ids = {lot.id for lot in city.lots}
    station_ids: set[str] = set()
    evse_ids: set[str] = set()
    served: dict[str, str] = {}
    for index, station in enumerate(city.chargers):
        where = f"chargers[{index}] (id {station.id!r})"
        if _seen_before(station_ids, station.id):
            return f"chargers[{index}].id: duplicate charging station id {station.id!r}"
        if station.lot not in lot_ids:
            return f"{where}.lot: unknown lot {station.lot!r}"
        numbers: set[int] = set()
        for evse_index, evse in enumerate(station.evses):
            point = f"{where}.evses[{evse_index}] ({evse.evse_id})"
            if _seen_before(evse_ids, evse.evse_id):
                return f"{point}: duplicate EVSE id {evse.evse_id!r}"
            if _seen_before(numbers, evse.number):
                return f"{point}: number {evse.number} is twice at this station"
            for bay_id in evse.bays:
                owner = bay_owner.get(bay_id)
                if owner is None:
                    return f"{point}: unknown bay {bay_id!r}"
                if owner != station.lot:
                    return (f"{point}: bay {bay_id!r} is in lot {owner!r}, not in the "
                            f"station's lot {station.lot!r}")
                if bay_id in served:
                    return f"{point}: bay {bay_id!r} is served by {served[bay_id]!r} already"
                served[bay_id] = evse.evse_id
    return _check_ocpi_peers(city)


def _check_ocpi_peers(city: City) -> str | None:
    """OCPI peers: unique ids and operators, each the operator of some OCPI station."""
    ids: set[str] = set()
    operators: set[str] = set()
    ocpi_operators = {station.operator for station in city.chargers
                      if station.protocol == "ocpi"}
    for index, peer in enumerate(city.ocpi_peers):
        where = f"ocpi_peers[{index}] (id {peer.id!r})"
        if _seen_before(ids, peer.id):
            return f"ocpi_peers[{index}].id: duplicate OCPI peer id {peer.id!r}"
        if _seen_before(operators, peer.operator):
            return f"{where}.operator: {peer.operator!r} has a peer already"
        if peer.operator not in ocpi_operators:
            return f"{where}.operator: no charger with protocol \"ocpi\" of {peer.operator!r}"
    return None
