"""What a sign shows, and the one interface every sign driver implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from core.city import Sign

__all__ = ["Ack", "Arrow", "LineContent", "SignContent", "SignDriver", "SignError"]

Arrow = Literal["left", "right", "straight", "none"]


@dataclass(frozen=True)
class LineContent:
    """One rendered line: ``label`` and ``arrow`` as configured, ``text`` what the line says
    (a free count such as ``"123"``, ``"besetzt"``, ``"geschlossen"``, ``"fast voll"``, or the
    safe state ``"--"`` / ``""`` for stale data)."""

    label: str
    arrow: Arrow
    text: str


@dataclass(frozen=True)
class SignContent:
    """Everything one sign shows; equal contents need not be sent again."""

    sign_id: str
    lines: tuple[LineContent, ...]


@dataclass(frozen=True)
class Ack:
    """The sign's answer to a push: what it reported showing (driver-specific detail)."""

    detail: str = ""


class SignError(Exception):
    """A sign refused or did not answer; the message says why in one line."""


class SignDriver(Protocol):
    """The one interface of every sign type; nothing outside the registry knows the type."""

    async def push(self, sign: Sign, content: SignContent) -> Ack:
        """Show ``content`` on ``sign``; raise SignError if the sign refuses or times out."""

    async def close(self) -> None:
        """Release connections; idempotent."""
