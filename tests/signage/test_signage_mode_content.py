"""What a sign shows in an operator's mode (``signage.mode_content``): the sign's own words, the
rendering rules' label cutting, the test pattern, and a fixed text checked against the sign."""

from __future__ import annotations

from typing import Any

import pytest

from core.city import Sign
from signage import LineContent, SignTextError, mode_content


def _sign(**display: Any) -> Sign:
    return Sign.model_validate({
        "id": "s1", "name": "Einfahrt", "driver": "http", "address": "http://127.0.0.1:1/",
        "latitude": 51.06, "longitude": 12.14, "display": display, "lines": [
            {"lots": ["a"], "label": "Schloss Moritzburg", "arrow": "left"},
            {"lots": ["b"], "label": "Zentrum", "arrow": "right"}]})


def test_full_and_closed_use_the_signs_own_words_and_cut_labels_as_rendering_does() -> None:
    sign = _sign()  # 20 characters per line
    assert mode_content(sign, "full").lines == (
        LineContent("Schloss Mor.", "left", "besetzt"),  # 12 + 1 + 7 = 20, cut with "."
        LineContent("Zentrum", "right", "besetzt"))
    assert [line.text for line in mode_content(sign, "closed").lines] == [
        "geschlossen", "geschlossen"]
    own = _sign(full_text="voll", closed_text="zu", line_width=24)
    assert [(line.label, line.text) for line in mode_content(own, "full").lines] == [
        ("Schloss Moritzburg", "voll"), ("Zentrum", "voll")]
    assert [line.text for line in mode_content(own, "closed").lines] == ["zu", "zu"]


def test_blank_and_test_pattern() -> None:
    sign = _sign()
    assert mode_content(sign, "blank").lines == (LineContent("", "none", ""),) * 2
    assert mode_content(sign, "test").lines == (
        LineContent("TEST", "left", "8" * 15), LineContent("TEST", "right", "8" * 15))


def test_a_fixed_text_fills_the_lines_without_labels() -> None:
    content = mode_content(_sign(), "text", "  Umleitung \n")
    assert content.lines == (LineContent("", "none", "Umleitung"), LineContent("", "none", ""))
    assert [line.text for line in mode_content(_sign(), "text", "A9 Süd\nÜber B 91").lines] == [
        "A9 Süd", "Über B 91"]


@pytest.mark.parametrize(("text", "words"), [
    ("x" * 21, "needs 21 characters"),
    ("Straßenbahnhaltestel", "needs 21 characters"),  # 20 letters, ß takes two
    ("eins\nzwei\ndrei", "has 3 lines; sign s1 has 2"),
    ("Stau €", "U+20AC EURO SIGN"),
    ("zwei\x00", "U+0000"),
    ("[g1] Pfeil", "'['"),
    (" \n ", "empty"),
])
def test_a_text_the_sign_cannot_show_is_refused_with_its_reason(text: str, words: str) -> None:
    with pytest.raises(SignTextError) as refused:
        mode_content(_sign(), "text", text)
    assert words in str(refused.value)


def test_a_text_goes_only_with_the_mode_text() -> None:
    with pytest.raises(SignTextError, match="only with the mode text"):
        mode_content(_sign(), "full", "besetzt")
