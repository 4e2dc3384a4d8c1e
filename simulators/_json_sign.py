"""A simulated controller of an ``http`` or ``mqtt`` sign: the JSON contract's rules, no I/O.

The contract is ``signage/_json_sign.py``; ``signs_http.py`` and ``signs_mqtt.py`` carry it.
The sign has ``line_count`` lines (any number if None) of an arrow field and
``chars_per_line`` characters for label + " " + text. It refuses, with a reason and leaving
its display as it was: malformed content (400); content for another sign, a line count not
its own, or a line that does not fit (422); any content while ``local_mode`` is on (an operator
has taken over) or a ``seq`` below the last one taken (409). ``paused`` tells the transports to
answer nothing at all (a cut cable, a hung controller). After ``duration_s`` without new
content it shows the safe state: every line's label and arrow with ``fallback_text``.
``minute_s`` is how long a sign minute lasts, so that tests see durations in fractions of a
second. The transports call it from their own threads, so every method takes a lock.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

__all__ = ["ARROWS", "JsonSignModel"]

logger = logging.getLogger(__name__)

ARROWS: Mapping[str, str] = {"left": "←", "right": "→", "straight": "↑", "none": " "}

Source = Literal["blank", "central", "fallback"]


class _Refusal(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class JsonSignModel:
    """One sign controller: ``take`` content and answer, ``shown`` what it shows now."""

    def __init__(
        self,
        name: str,
        *,
        line_count: int | None = None,
        chars_per_line: int = 20,
        minute_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.line_count = line_count
        self.chars_per_line = chars_per_line
        self.minute_s = minute_s
        self.clock = clock
        self.local_mode = False
        self.paused = False
        self.source: Source = "blank"
        self.last_content: dict[str, Any] | None = None  # the last content taken, as sent
        self._lock = threading.Lock()
        self._lines: tuple[str, ...] = ()
        self._fallback: tuple[str, ...] = ()
        self._ends_at: float | None = None
        self._last_seq = -1

    def shown(self) -> tuple[str, ...]:
        """The lines the sign shows now, trailing blanks cut."""
        with self._lock:
            self._tick()
            return self._lines

    def tick(self) -> None:
        """Fall back to the safe state if the content's duration has run out."""
        with self._lock:
            self._tick()

    def take(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """Check and show a content message: the HTTP status and the acknowledgement."""
        with self._lock:
            self._tick()
            try:
                message: Any = json.loads(body)
            except ValueError:
                return 400, {"seq": None, "ok": False, "reason": "the content is not JSON"}
            seq = message.get("seq") if isinstance(message, dict) else None
            try:
                lines, fallback, duration_s = self._check(message)
            except _Refusal as exc:
                logger.info("sign %s refuses content %s: %s", self.name, seq, exc)
                return exc.status, {"seq": seq, "ok": False, "reason": str(exc)}
            self._last_seq = message["seq"]
            self.last_content = message
            self._ends_at = self.clock() + duration_s * self.minute_s / 60
            self._show(lines, fallback, "central")
            return 200, {"seq": seq, "ok": True, "shown": list(self._lines)}

    def _check(self, message: Any) -> tuple[tuple[str, ...], tuple[str, ...], float]:
        """The lines to show, the fallback lines and the duration; _Refusal says why not."""
        if not isinstance(message, dict):
            raise _Refusal(400, "the content is not a JSON object")
        seq, duration_s = message.get("seq"), message.get("duration_s")
        fallback_text, lines = message.get("fallback_text", "--"), message.get("lines")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise _Refusal(400, "seq must be a whole number >= 0")
        if (isinstance(duration_s, bool) or not isinstance(duration_s, int | float)
                or duration_s <= 0):
            raise _Refusal(400, "duration_s must be a number > 0")
        if not isinstance(fallback_text, str):
            raise _Refusal(400, "fallback_text must be a string")
        if not isinstance(lines, list) or not all(
                isinstance(line, dict) and isinstance(line.get("label"), str)
                and isinstance(line.get("text"), str) and line.get("arrow") in ARROWS
                for line in lines):
            raise _Refusal(400, "lines must be a list of {label, arrow, text} with arrow "
                                "left, right, straight or none")
        if self.local_mode:
            raise _Refusal(409, "the sign is in local control")
        if message.get("sign_id") != self.name:
            raise _Refusal(422, f"content for sign {message.get('sign_id')!r}, this is "
                                f"{self.name!r}")
        if self.line_count is not None and len(lines) != self.line_count:
            raise _Refusal(422, f"{len(lines)} lines, the sign has {self.line_count}")
        for number, line in enumerate(lines, 1):
            needed = len(line["label"]) + (len(line["text"]) + 1 if line["text"] else 0)
            if needed > self.chars_per_line:
                raise _Refusal(422, f"line {number} needs {needed} characters, the sign has "
                                    f"{self.chars_per_line}")
        if seq < self._last_seq:
            raise _Refusal(409, f"seq {seq} is older than {self._last_seq}, shown already")
        return (tuple(self._line(line["arrow"], line["label"], line["text"]) for line in lines),
                tuple(self._line(line["arrow"], line["label"], fallback_text) for line in lines),
                duration_s)

    def _line(self, arrow: str, label: str, text: str) -> str:
        # An arrow field, then the label flush left and the text flush right.
        body = label + text.rjust(max(len(text) + 1, self.chars_per_line - len(label)))
        return f"{ARROWS[arrow]} {body}".rstrip()

    def _show(self, lines: tuple[str, ...], fallback: tuple[str, ...], source: Source) -> None:
        before = (self._lines, self.source)
        self._lines, self._fallback, self.source = lines, fallback, source
        if (lines, source) != before:  # keep-alive pushes say nothing
            logger.info("sign %s shows %s (%s)", self.name,
                        " | ".join(line.strip() for line in lines) or "nothing", source)

    def _tick(self) -> None:
        if self._ends_at is not None and self.clock() >= self._ends_at:
            self._ends_at = None
            self._show(self._fallback, self._fallback, "fallback")
