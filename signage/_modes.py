"""What a sign shows in an operator's mode (the console): pure functions, no I/O.

- ``full`` / ``closed``: every line its label and arrow with the sign's own ``full_text`` /
  ``closed_text`` (``besetzt`` / ``geschlossen`` unless its config says otherwise), the label cut
  as the rendering rules cut it;
- ``blank``: every line empty, no arrow;
- ``test``: every line ``TEST`` and its arrow, then ``8`` in every cell left (each segment lit);
- ``text``: a fixed message, one line of it per sign line (``\\n`` between them, fewer lines leave
  the rest empty), no labels or arrows. It must fit the sign: at most its line count, each line at
  most ``line_width`` characters, only characters every sign font has: letters (with the German
  umlauts and ß), digits, space and ``. , : ; ! ? - + / ( ) ' " & % # * =``. An umlaut or ß
  takes two cells: a sign without them spells them out (``ae``, ``ss``).
"""

from __future__ import annotations

import string
import unicodedata
from typing import Literal

from core.city import Sign
from signage._content import LineContent, SignContent
from signage._render import _fit

__all__ = ["SIGN_CHARACTERS", "SignMode", "SignTextError", "mode_content"]

SignMode = Literal["full", "closed", "blank", "test", "text"]

_SPELLED = frozenset("ÄÖÜäöüß")  # two cells each where a font spells them out
SIGN_CHARACTERS = frozenset(string.ascii_letters + string.digits + " .,:;!?-+/()'\"&%#*=") | (
    _SPELLED)


class SignTextError(ValueError):
    """A fixed text the sign cannot show; the message says why in one line."""


def _cells(text: str) -> int:
    return len(text) + sum(char in _SPELLED for char in text)


def _named(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"{char!r} (U+{ord(char):04X}{' ' + name if name else ''})"


def text_lines(sign: Sign, text: str) -> list[str]:
    """The lines of a fixed ``text`` for ``sign``; SignTextError if it does not fit."""
    lines = [line.strip() for line in text.strip("\n").split("\n")]
    if not any(lines):
        raise SignTextError("the text is empty; use the mode blank for an empty sign")
    if len(lines) > len(sign.lines):
        raise SignTextError(f"the text has {len(lines)} lines; sign {sign.id} has "
                            f"{len(sign.lines)}")
    width = sign.display.line_width
    for number, line in enumerate(lines, 1):
        bad = sorted({char for char in line if char not in SIGN_CHARACTERS})
        if bad:
            raise SignTextError(f"line {number}: the sign cannot show "
                                f"{', '.join(_named(char) for char in bad)}; it shows letters, "
                                "digits, space and . , : ; ! ? - + / ( ) ' \" & % # * =")
        if _cells(line) > width:
            raise SignTextError(f"line {number} needs {_cells(line)} characters (ä, ö, ü, ß "
                                f"take two); sign {sign.id} has {width} per line")
    return lines


def mode_content(sign: Sign, mode: SignMode, text: str | None = None) -> SignContent:
    """What ``sign`` shows in ``mode`` (``text`` for the mode ``text`` only)."""
    display = sign.display
    if mode == "text":
        lines = text_lines(sign, text or "")
        shown = [LineContent("", "none", line) for line in lines]
        shown += [LineContent("", "none", "")] * (len(sign.lines) - len(lines))
        return SignContent(sign.id, tuple(shown))
    if text is not None:
        raise SignTextError(f"a text goes only with the mode text, not {mode}")
    if mode == "blank":
        return SignContent(sign.id, tuple(LineContent("", "none", "") for _ in sign.lines))
    if mode == "test":
        pattern = "8" * (display.line_width - len("TEST "))
        return SignContent(sign.id, tuple(LineContent("TEST", line.arrow, pattern)
                                          for line in sign.lines))
    word = display.full_text if mode == "full" else display.closed_text
    return SignContent(sign.id, tuple(
        LineContent(_fit(line.label, word, display.line_width), line.arrow, word)
        for line in sign.lines))
