"""The JSON contract of ``http`` and ``mqtt`` signs: one content message, one acknowledgement.

It is the same over both transports (``_http_driver.py`` and ``_mqtt_driver.py`` say how it
travels). Content, UTF-8 JSON::

    {"sign_id": "zeitz-vms-b2-sued", "seq": 1767225600123, "duration_s": 300,
     "fallback_text": "--",
     "lines": [{"label": "Roßmarkt", "arrow": "straight", "text": "123"},
               {"label": "Klinikum", "arrow": "right", "text": "besetzt"}]}

- ``lines``: every configured line of the sign, in order. ``arrow`` is ``left``, ``right``,
  ``straight`` or ``none``; ``text`` is what the line shows next to the label: a count,
  ``besetzt``, ``fast voll``, ``geschlossen``, or the safe state (``--`` or empty) for stale
  data. The central keeps label + " " + text within the sign's ``line_width``; arrows are
  drawn apart.
- ``seq``: grows with every push to a sign, across restarts of the central too (it is at least
  the Unix time in milliseconds). A controller shows the newest content: it refuses a ``seq``
  below the last one it took (a late MQTT redelivery), and takes an equal one again.
- ``duration_s``: the controller shows the content this long and then, by itself, its safe
  state: each line's label and arrow with ``fallback_text``. The central pushes again well
  before (the keep-alive), so only a sign whose central has gone quiet falls back, and it
  never shows stale counts.

Acknowledgement, UTF-8 JSON, with the ``seq`` it answers::

    {"seq": 1767225600123, "ok": true, "shown": ["↑ Roßmarkt          123", "..."]}
    {"seq": 1767225600123, "ok": false, "reason": "line 2 needs 23 characters, the sign has 20"}

``shown`` (optional) is what the sign shows now, for the audit log. ``reason`` is one line for
an operator. A refused content leaves what the sign showed unchanged.
"""

from __future__ import annotations

import json
import time
from typing import Any

from core.city import Sign
from signage._content import Ack, SignContent, SignError

__all__ = ["Sequencer", "content_message", "one_line", "read_ack", "refusal_reason"]


class Sequencer:
    """Per-sign ``seq`` numbers: strictly growing, at least the Unix time in milliseconds."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def next(self, sign_id: str) -> int:
        """The ``seq`` of the next push to ``sign_id``."""
        # From the clock, so that a restarted central is not taken for a late redelivery.
        seq = max(self._last.get(sign_id, 0) + 1, time.time_ns() // 1_000_000)
        self._last[sign_id] = seq
        return seq


def content_message(sign: Sign, content: SignContent, *, seq: int, duration_s: int) -> bytes:
    """The content message for ``sign`` as the contract above spells it."""
    return json.dumps({
        "sign_id": sign.id,
        "seq": seq,
        "duration_s": duration_s,
        "fallback_text": sign.display.safe_state,
        "lines": [{"label": line.label, "arrow": line.arrow, "text": line.text}
                  for line in content.lines],
    }, ensure_ascii=False).encode()


def one_line(text: str | bytes, limit: int = 200) -> str:
    """``text`` as one line of at most ``limit`` characters, for messages and logs."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def refusal_reason(body: bytes) -> str | None:
    """The ``reason`` of an acknowledgement body, if it is one that has it."""
    try:
        ack: Any = json.loads(body)
    except ValueError:
        return None
    reason = ack.get("reason") if isinstance(ack, dict) else None
    return one_line(reason) if isinstance(reason, str) and reason.strip() else None


def read_ack(sign: Sign, seq: int, body: bytes) -> Ack:
    """The sign's acknowledgement of content ``seq``; SignError if it refused or garbled it."""
    try:
        ack: Any = json.loads(body)
    except ValueError:
        raise SignError(f"sign {sign.id}: the answer is not JSON: {one_line(body)!r}") from None
    if not isinstance(ack, dict):
        raise SignError(f"sign {sign.id}: the answer is not a JSON object: {one_line(body)!r}")
    if ack.get("seq") != seq:
        raise SignError(f"sign {sign.id}: acknowledged seq {ack.get('seq')!r}, not {seq}")
    if ack.get("ok") is not True:
        raise SignError(f"sign {sign.id} refused the content: "
                        f"{refusal_reason(body) or 'no reason given'}")
    shown = ack.get("shown")
    if isinstance(shown, list) and all(isinstance(line, str) for line in shown):
        return Ack(f"seq {seq}: " + one_line(" | ".join(line.strip() for line in shown)))
    return Ack(f"seq {seq}")
