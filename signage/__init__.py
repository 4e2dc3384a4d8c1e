"""Variable message signs: rendering rules, drivers, the push loop and its audit log."""

from signage._content import Ack, Arrow, LineContent, SignContent, SignDriver, SignError

__all__ = ["Ack", "Arrow", "LineContent", "SignContent", "SignDriver", "SignError"]
