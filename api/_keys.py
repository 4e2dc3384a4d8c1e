"""API keys of the admin endpoints, stored hashed in ``API_KEYS_FILE``.

A key is ``{name}.{secret}`` (the name says whose it is, so one hash is checked, not all); the
file holds one ``{name}:scrypt${n}${r}${p}${salt}${hash}`` line per key (base64, blank lines
and ``#`` comments allowed), written by ``parkleit api add-key NAME``. Neither the key nor its
hash is ever logged. The file is read again when it changes, so a key is added or revoked
without a restart; a file that cannot be read then refuses every key until it is fixed.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
from pathlib import Path

__all__ = ["KeyFileError", "KeyStore", "add_key", "decoy_hash", "hash_key", "hash_matches"]

logger = logging.getLogger(__name__)

KEY_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# scrypt's recommended interactive cost (16 MiB, some 50 ms); keys are random, so this only
# guards a stolen file against offline guessing of weak keys, which add_key never makes.
_N, _R, _P = 2**14, 8, 1


class KeyFileError(Exception):
    """The keys file cannot be used; the message is one line."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _scrypt(key: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(key.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r * p,
                          dklen=32)


def hash_key(key: str) -> str:
    """The stored form of ``key`` (or of a console password): ``scrypt$n$r$p$salt$hash``
    with a random salt."""
    salt = secrets.token_bytes(16)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(_scrypt(key, salt, _N, _R, _P))}"


def hash_matches(key: str, stored: str) -> bool:
    """Whether ``key`` hashes to ``stored``, compared in constant time."""
    _, n, r, p, salt, digest = stored.split("$")
    return hmac.compare_digest(
        _scrypt(key, base64.b64decode(salt), int(n), int(r), int(p)), base64.b64decode(digest))


@functools.cache
def decoy_hash() -> str:
    """A hash no key matches: a key (or a console login) with an unknown name is checked
    against it, so an answer takes as long whether the name exists or not (names are not
    told by timing)."""
    return hash_key(secrets.token_urlsafe(32))


def _read(path: Path) -> dict[str, str]:
    """Key name -> stored hash, from the file; KeyFileError names the first bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read the API keys file {path}: {exc}") from None
    hashes: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, stored = line.partition(":")
        parts = stored.split("$")
        try:
            valid = (KEY_NAME.match(name) is not None and len(parts) == 6
                     and parts[0] == "scrypt" and all(int(x) > 0 for x in parts[1:4])
                     and len(base64.b64decode(parts[4], validate=True)) >= 16
                     and len(base64.b64decode(parts[5], validate=True)) == 32)
        except ValueError:
            valid = False
        if not valid:
            raise KeyFileError(f"{path}, line {number}: not 'name:scrypt$n$r$p$salt$hash'")
        if name in hashes:
            raise KeyFileError(f"{path}, line {number}: key {name!r} is there twice")
        hashes[name] = stored
    return hashes


def add_key(path: Path, name: str) -> str:
    """Make a new key ``name``, append its hash to ``path`` (mode 600) and return the key."""
    if not KEY_NAME.match(name):
        raise KeyFileError(f"key name {name!r}: 1-40 of a-z, 0-9, _ and -, starting alphanumeric")
    if path.exists() and name in _read(path):
        raise KeyFileError(f"{path} has a key {name!r} already; remove its line first")
    key = f"{name}.{secrets.token_urlsafe(32)}"
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as file:
        file.write(f"{name}:{hash_key(key)}\n")
    return key


class KeyStore:
    """The keys of ``API_KEYS_FILE`` (none without one); ``verify`` is thread-safe."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._hashes: dict[str, str] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._problem: str | None = None
        # Keys that verified, by their SHA-256: scrypt is paid once per key and process.
        self._verified: dict[bytes, str] = {}
        if path is not None:
            self._hashes, self._stamp = _read(path), self._stat()  # a bad file stops the start

    def _stat(self) -> tuple[int, int, int] | None:
        assert self._path is not None
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
            assert self._path is not None
            self._hashes, self._problem = _read(self._path), None
            logger.info("API keys read again: %d keys", len(self._hashes))
        except KeyFileError as exc:
            self._hashes, self._problem = {}, str(exc)
            logger.error("%s; every API key is refused until it is fixed", exc)

    def cached(self, key: str) -> str | None:
        """The name of ``key`` if it verified before (no hashing); else None."""
        with self._lock:
            if self._path is not None:
                self._refresh()
            return self._verified.get(hashlib.sha256(key.encode()).digest())

    def verify(self, key: str) -> str | None:
        """The name of ``key``, or None if it is not a valid key; KeyFileError if unreadable."""
        with self._lock:
            if self._path is not None:
                self._refresh()
            if self._problem is not None:
                raise KeyFileError(self._problem)
            digest = hashlib.sha256(key.encode()).digest()
            name = self._verified.get(digest)
            if name is not None:
                return name
            name, dot, _ = key.rpartition(".")
            stored = self._hashes.get(name) if dot else None
        # An unknown name is hashed too (against the decoy): it answers no faster.
        matched = hash_matches(key, decoy_hash() if stored is None else stored)
        if stored is None or not matched:
            return None
        with self._lock:
            self._verified[digest] = name
        return name
