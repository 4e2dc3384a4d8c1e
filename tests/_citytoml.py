"""A small city config for tests, written to a file with an id of the test's own."""

from __future__ import annotations

import json
from datetime import datetime, time
from pathlib import Path
from typing import Any

TTN_EUI = "70b3d57ed0000001"
CHIRPSTACK_EUI = "70b3d57ed0000002"


def city_toml(city_id: str, *, extra_bays: int = 0, chargers: bool = False) -> str:
    """TOML of a city with two counter lots, two bay lots and two LoRaWAN bays; with
    ``chargers``, also its charging stations (``chargers_toml``)."""
    return city_head(city_id, "Teststadt") + f"""

[[lots]]
id = "{city_id}-garage"
name = "Parkhaus Test"
kind = "garage"
counting = "counter"
capacity = 100
latitude = 51.05
longitude = 12.14
counter_modulus = 1000

[[lots]]
id = "{city_id}-small"
name = "Parkplatz Klein"
kind = "surface"
counting = "counter"
capacity = 10
latitude = 51.051
longitude = 12.141
opening_hours = "Mo-Su 00:00-24:00"

[[lots]]
id = "{city_id}-street"
name = "Teststraße"
kind = "on_street"
counting = "bays"
capacity = {4 + extra_bays}
latitude = 51.052
longitude = 12.142
almost_full = 0.75
bay_groups = [{{ prefix = "{city_id}-st", count = {4 + extra_bays} }}]

[[lots]]
id = "{city_id}-lora"
name = "Sensorparkplatz"
kind = "surface"
counting = "bays"
capacity = 2
latitude = 51.053
longitude = 12.143
bays = [
  {{ id = "{city_id}-ttn-1", network = "ttn", dev_eui = "{TTN_EUI}" }},
  {{ id = "{city_id}-cs-1", network = "chirpstack", dev_eui = "{CHIRPSTACK_EUI}" }},
]

[[signs]]
id = "{city_id}-vms-1"
name = "Einfahrt Nord"
driver = "http"
address = "http://127.0.0.1:1/sign"
latitude = 51.06
longitude = 12.14
lines = [{{ lots = ["{city_id}-garage"], label = "Zentrum", arrow = "left" }}]
""" + (chargers_toml(city_id) if chargers else "")


def write_city(directory: Path, city_id: str, *, extra_bays: int = 0,
               chargers: bool = False) -> Path:
    """Write the test city to ``directory/{city_id}.toml`` and return its path."""
    path = directory / f"{city_id}.toml"
    path.write_text(city_toml(city_id, extra_bays=extra_bays, chargers=chargers),
                    encoding="utf-8")
    return path


def evse_id(city_id: str, station: int, number: int) -> str:
    """The EVSE id of point ``number`` of test station ``station`` of a test city: unique
    per city id (``DE*TST*E{CITY ID}{station}*{number}``)."""
    own = "".join(char for char in city_id.upper() if char.isalnum())
    return f"DE*TST*E{own}{station}*{number}"


def chargers_toml(city_id: str) -> str:
    """The test city's charging stations: ``{city_id}-cp-1`` on the street (run by the city,
    status over MQTT; point 1 serves bay ``{city_id}-st-001``, point 2 has no bay) and
    ``{city_id}-cp-2`` in the garage (another operator's, over OCPI, a DC point with two
    connectors and its own position)."""
    connectors = {
        "ac22": 'standard = "IEC_62196_T2"\nformat = "SOCKET"\npower_type = "AC_3_PHASE"\n'
                "max_power_kw = 22.0",
        "ac11": 'standard = "IEC_62196_T2"\nformat = "SOCKET"\npower_type = "AC_3_PHASE"\n'
                "max_power_kw = 11.0",
        "ccs": 'standard = "IEC_62196_T2_COMBO"\nformat = "CABLE"\npower_type = "DC"\n'
               "max_power_kw = 150.0",
        "chademo": 'standard = "CHADEMO"\nformat = "CABLE"\npower_type = "DC"\n'
                   "max_power_kw = 50.0",
    }
    plug = "\n[[chargers.evses.connectors]]\n{}\n".format
    return f"""
[[chargers]]
id = "{city_id}-cp-1"
lot = "{city_id}-street"
name = "Ladesäule Teststraße"
operator = "city"
protocol = "mqtt"
bnetza_id = "12345"

[[chargers.evses]]
evse_id = "{evse_id(city_id, 1, 1)}"
number = 1
bays = ["{city_id}-st-001"]
tariff = "0,49 EUR/kWh"
{plug(connectors["ac22"])}
[[chargers.evses]]
evse_id = "{evse_id(city_id, 1, 2)}"
number = 2
{plug(connectors["ac11"])}
[[chargers]]
id = "{city_id}-cp-2"
lot = "{city_id}-garage"
name = "Schnelllader Parkhaus"
operator = "Stadtwerke Test"
protocol = "ocpi"
latitude = 51.0501
longitude = 12.1401

[[chargers.evses]]
evse_id = "{evse_id(city_id, 2, 1)}"
number = 1
{plug(connectors["ccs"])}{plug(connectors["chademo"])}"""


def station_toml(city_id: str, station: int, lot: str, *, name: str, operator: str,
                 protocol: str) -> str:
    """One more charging station ``{city_id}-cp-{station}`` on ``lot``, with one 22 kW AC point
    (``evse_id(city_id, station, 1)``) that serves no bay."""
    return f"""
[[chargers]]
id = "{city_id}-cp-{station}"
lot = "{lot}"
name = "{name}"
operator = "{operator}"
protocol = "{protocol}"

[[chargers.evses]]
evse_id = "{evse_id(city_id, station, 1)}"
number = 1

[[chargers.evses.connectors]]
standard = "IEC_62196_T2"
format = "SOCKET"
power_type = "AC_3_PHASE"
max_power_kw = 22.0
"""


def city_head(city_id: str, name: str) -> str:
    """The ``[city]`` and ``[lorawan]`` tables of a test city: its LoRaWAN applications are
    named after its id."""
    return f"""
[city]
id = "{city_id}"
name = "{name}"

[lorawan]
ttn_applications = ["{city_id}-app@ttn"]
chirpstack_applications = ["{city_id}-cs"]
"""


def toml_value(value: Any) -> str:
    """``value`` written as TOML: strings, numbers, times of day, lists and inline tables."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, time):
        return value.strftime("%H:%M:%S")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + " }"
    return str(value).lower() if isinstance(value, bool) else str(value)


def toml_table(table: str, /, **values: Any) -> str:
    """One ``[[table]]`` (a lot, sign or event): ``values`` in the order given."""
    return f"\n[[{table}]]\n" + "".join(f"{key} = {toml_value(value)}\n"
                                       for key, value in values.items())


def counter_lots(city_id: str, suffixes: list[str]) -> str:
    """Plain counter lots ``{city_id}-x{suffix}`` of 50 spaces: a big city for the stream."""
    return "".join(toml_table(
        "lots", id=f"{city_id}-x{suffix}", name=f"Parkplatz {suffix}", kind="surface",
        counting="counter", capacity=50, latitude=51.05, longitude=12.14)
        for suffix in suffixes)


def daily_spans(begin: datetime, finish: datetime) -> list[tuple[time, time]]:
    """The times of day from ``begin`` to ``finish`` (local, less than a day apart): one span,
    or two when they are on either side of midnight."""
    if begin.date() == finish.date():
        return [(begin.time(), finish.time())]
    return [(begin.time(), datetime.max.time().replace(microsecond=0)),
            (datetime.min.time(), finish.time())]
