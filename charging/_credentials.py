"""The charge points' passwords (OCPP security profiles 1 and 2: HTTP Basic per station).

``OCPP_CREDENTIALS_FILE`` holds one ``{charge_point_id}:scrypt${n}${r}${p}${salt}${hash}``
line per station (base64; blank lines and ``#`` comments allowed), the same scrypt form as the
API keys and console passwords; ``parkleit ocpp add-station ID`` appends one and prints the
password (16-40 characters, as OCPP 2.0.1's BasicAuthPassword). Passwords are compared in
constant time, never logged; the file is read again when it changes, so a station is added or
revoked without a restart.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
from pathlib import Path

from core.hashfile import (
    HashFile,
    HashFileError,
    append_hash,
    decoy_hash,
    hash_secret,
    read_hashes,
    secret_matches,
)

__all__ = ["CredentialError", "Credentials", "add_station", "hash_password", "parse_basic"]

# OCPP's identity: printable, no ':' (it separates user and password in HTTP Basic) and no '/'.
STATION_ID = re.compile(r"^[A-Za-z0-9*._-]{1,64}$")
hash_password = hash_secret  # a lower ``n`` only for benchmarks with thousands of stations


class CredentialError(HashFileError):
    """The credentials file cannot be used; the message is one line."""


_read = functools.partial(read_hashes, names=STATION_ID, what="OCPP credentials file",
                          label="charge_point_id", noun="station", error=CredentialError)


def add_station(path: Path, station: str) -> str:
    """A new password for ``station``, its hash appended to ``path`` (mode 600); the password."""
    if not STATION_ID.match(station):
        raise CredentialError(f"charge point id {station!r}: 1-64 of A-Z, a-z, 0-9, *, ., _, -")
    if path.exists() and station in _read(path):
        raise CredentialError(f"{path} has station {station!r} already; remove its line first")
    password = secrets.token_urlsafe(24)  # 32 characters
    append_hash(path, station, password)
    return password


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """User and password of an ``Authorization: Basic ...`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode(
            "utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


class Credentials(HashFile):
    """The stations' password hashes of a file; ``verify`` is thread-safe (and slow: scrypt,
    so call it off the event loop)."""

    def __init__(self, path: Path) -> None:
        # Passwords that verified, by station and SHA-256: scrypt is paid once per station
        # and process, not on every reconnect.
        self._verified: dict[str, bytes] = {}
        super().__init__(path, _read, "OCPP credentials")

    def __len__(self) -> int:
        return len(self.hashes)

    def changed(self) -> None:
        self._verified = {}

    def verify(self, station: str, password: str) -> bool:
        """Whether ``password`` is ``station``'s (a station without a line never is)."""
        with self.lock:
            self.current()
            stored = self.hashes.get(station)
            known = self._verified.get(station)
        fingerprint = hashlib.sha256(password.encode()).digest()
        if stored is not None and known is not None:
            return hmac.compare_digest(known, fingerprint)
        # A station without a line pays scrypt too: the answer takes as long either way.
        ok = secret_matches(password, stored or decoy_hash()) and stored is not None
        if ok:
            with self.lock:
                self._verified[station] = fingerprint
        return ok
