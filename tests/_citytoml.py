"""A small city config for tests, written to a file with an id of the test's own."""

from __future__ import annotations

from pathlib import Path

TTN_EUI = "70b3d57ed0000001"
CHIRPSTACK_EUI = "70b3d57ed0000002"


def city_toml(city_id: str, *, extra_bays: int = 0) -> str:
    """TOML of a city with two counter lots, two bay lots and two LoRaWAN bays."""
    return f"""
[city]
id = "{city_id}"
name = "Teststadt"

[lorawan]
ttn_applications = ["{city_id}-app@ttn"]
chirpstack_applications = ["{city_id}-cs"]

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
"""


def write_city(directory: Path, city_id: str, *, extra_bays: int = 0) -> Path:
    """Write the test city to ``directory/{city_id}.toml`` and return its path."""
    path = directory / f"{city_id}.toml"
    path.write_text(city_toml(city_id, extra_bays=extra_bays), encoding="utf-8")
    return path
