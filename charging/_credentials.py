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
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
from pathlib import Path

__all__ = ["CredentialError", "Credentials", "add_station", "hash_password", "parse_basic"]

logger = logging.getLogger(__name__)

# OCPP's identity: printable, no ':' (it separates user and password in HTTP Basic) and no '/'.
STATION_ID = re.compile(r"^[A-Za-z0-9*._-]{1,64}$")
_N, _R, _P = 2**14, 8, 1  # scrypt's interactive cost, as for the API keys


class CredentialError(Exception):
    """The credentials file cannot be used; the message is one line."""


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * n * r * p, dklen=32)


def hash_password(password: str, *, n: int = _N) -> str:
    """The stored form of ``password``: ``scrypt$n$r$p$salt$hash`` with a random salt (a lower
    ``n`` only for benchmarks with thousands of stations)."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, n, _R, _P)
    return (f"scrypt${n}${_R}${_P}${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(digest).decode()}")


def _matches(password: str, stored: str) -> bool:
    _, n, r, p, salt, digest = stored.split("$")
    return hmac.compare_digest(
        _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p)),
        base64.b64decode(digest))


def _read(path: Path) -> dict[str, str]:
    """Station id -> stored hash; CredentialError names the first bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialError(f"cannot read the OCPP credentials file {path}: {exc}") from None
    hashes: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        station, _, stored = line.partition(":")
        parts = stored.split("$")
        try:
            valid = (STATION_ID.match(station) is not None and len(parts) == 6
                     and parts[0] == "scrypt" and all(int(x) > 0 for x in parts[1:4])
                     and len(base64.b64decode(parts[4], validate=True)) >= 16
                     and len(base64.b64decode(parts[5], validate=True)) == 32)
        except ValueError:
            valid = False
        if not valid:
            raise CredentialError(
                f"{path}, line {number}: not 'charge_point_id:scrypt$n$r$p$salt$hash'")
        if station in hashes:
            raise CredentialError(f"{path}, line {number}: station {station!r} is there twice")
        hashes[station] = stored
    return hashes


def add_station(path: Path, station: str) -> str:
    """A new password for ``station``, its hash appended to ``path`` (mode 600); the password."""
    if not STATION_ID.match(station):
        raise CredentialError(f"charge point id {station!r}: 1-64 of A-Z, a-z, 0-9, *, ., _, -")
    if path.exists() and station in _read(path):
        raise CredentialError(f"{path} has station {station!r} already; remove its line first")
    password = secrets.token_urlsafe(24)  # 32 characters
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as file:
        file.write(f"{station}:{hash_password(password)}\n")
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


class Credentials:
    """The stations' password hashes of a file; ``verify`` is thread-safe (and slow: scrypt,
    so call it off the event loop)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._hashes = _read(path)  # a bad file stops the start
        self._stamp = self._stat()
        self._problem: str | None = None
        # Passwords that verified, by station and SHA-256: scrypt is paid once per station
        # and process, not on every reconnect.
        self._verified: dict[str, bytes] = {}
        self._decoy = hash_password(secrets.token_urlsafe(24))

    def __len__(self) -> int:
        return len(self._hashes)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            info = self._path.stat()
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size, info.st_ino

    def _refresh(self) -> None:
        stamp = self._stat()
        if stamp == self._stamp:
            return
        self._stamp, self._verified = stamp, {}
        try:
            self._hashes, self._problem = _read(self._path), None
            logger.info("OCPP credentials read again: %d stations", len(self._hashes))
        except CredentialError as exc:
            # Refuse every station until the file is fixed: a half-read file must not let
            # a removed station back in.
            self._hashes, self._problem = {}, str(exc)
            logger.error("%s; refusing every station until it is fixed", exc)

    def verify(self, station: str, password: str) -> bool:
        """Whether ``password`` is ``station``'s (a station without a line never is)."""
        with self._lock:
            self._refresh()
            stored = self._hashes.get(station)
            known = self._verified.get(station)
        fingerprint = hashlib.sha256(password.encode()).digest()
        if stored is not None and known is not None:
            return hmac.compare_digest(known, fingerprint)
        # A station without a line pays scrypt too: the answer takes as long either way.
        ok = _matches(password, stored or self._decoy) and stored is not None
        if ok:
            with self._lock:
                self._verified[station] = fingerprint
        return ok
