"""The ``[[ocpi_peers]]`` of a city config: checked like the rest, tokens only by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from _ocpipeer import OPERATOR, peer_points, write_peer_city

from core.city import CityConfigError, load_city


def _with(tmp_path: Path, old: str, new: str) -> Path:
    path = write_peer_city(tmp_path, "tpeer", "https://ocpi.example.org/cpo/2.2.1/locations")
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_a_peer_and_its_points(tmp_path: Path) -> None:
    city = load_city(str(write_peer_city(tmp_path, "tpeer", "https://ocpi.example.org/l")))
    (peer,) = city.ocpi_peers
    assert peer.operator == OPERATOR and peer.stale_after_s == 60
    assert sorted(evse.evse_id for _, evse in city.peer_evses(peer)) == peer_points("tpeer")


@pytest.mark.parametrize(("old", "new", "reason"), [
    (f'operator = "{OPERATOR}"\ncountry_code', 'operator = "Niemand"\ncountry_code',
     "ocpi_peers[0] (id 'stadtwerke').operator: no charger with protocol \"ocpi\" of"),
    ('token_env = "PARKLEIT_TEST_OCPI_TOKEN"', 'token = "secret"', "ocpi_peers[0]"),
    ('token_env = "PARKLEIT_TEST_OCPI_TOKEN"\n', "", "locations_url needs token_env"),
    ('locations_url = "https://ocpi.example.org/cpo/2.2.1/locations"',
     'locations_url = "ftp://x"', "ocpi_peers[0] (id 'stadtwerke').locations_url"),
    ("stale_after_s = 60", "stale_after_s = 0", "stale_after_s"),
    ('party_id = "TST"', 'party_id = "toolong"', "party_id"),
])
def test_a_bad_peer_is_refused(tmp_path: Path, old: str, new: str, reason: str) -> None:
    with pytest.raises(CityConfigError) as info:
        load_city(str(_with(tmp_path, old, new)))
    assert reason in str(info.value)


def test_two_peers_of_one_operator_are_refused(tmp_path: Path) -> None:
    path = write_peer_city(tmp_path, "tpeer", "https://ocpi.example.org/l")
    text = path.read_text(encoding="utf-8")
    second = text[text.index("[[ocpi_peers]]"):].replace('id = "stadtwerke"', 'id = "zweiter"')
    path.write_text(text + "\n" + second, encoding="utf-8")
    with pytest.raises(CityConfigError, match="has a peer already"):
        load_city(str(path))
