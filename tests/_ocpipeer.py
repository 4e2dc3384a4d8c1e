"""A test city with an OCPI peer: the test chargers (``tests/_citytoml.py``) and a second
station of the peer's operator, so the peer has two Locations (two pages at one a page)."""

from __future__ import annotations

from pathlib import Path

from _citytoml import city_toml, evse_id, station_toml

OPERATOR = "Stadtwerke Test"
TOKEN_ENV = "PARKLEIT_TEST_OCPI_TOKEN"
PUSH_TOKEN_ENV = "PARKLEIT_TEST_OCPI_PUSH_TOKEN"


def peer_points(city_id: str) -> list[str]:
    """The EVSE ids of the peer's points, sorted."""
    return sorted([evse_id(city_id, 2, 1), evse_id(city_id, 3, 1)])


def write_peer_city(directory: Path, city_id: str, url: str, *, stale_after_s: float = 60,
                    page_limit: int = 1) -> Path:
    """Write the city with its OCPI peer pulling ``url`` and return the path."""
    path = directory / f"{city_id}.toml"
    path.write_text(city_toml(city_id, chargers=True) + station_toml(
        city_id, 3, f"{city_id}-small", name="Ladesäule Klein", operator=OPERATOR,
        protocol="ocpi") + f"""
[[ocpi_peers]]
id = "stadtwerke"
operator = "{OPERATOR}"
country_code = "DE"
party_id = "TST"
locations_url = "{url}"
token_env = "{TOKEN_ENV}"
push_token_env = "{PUSH_TOKEN_ENV}"
pull_interval_s = 1
stale_after_s = {stale_after_s}
page_limit = {page_limit}
""", encoding="utf-8")
    return path
