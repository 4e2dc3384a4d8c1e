"""API keys of the admin endpoints, stored hashed in ``API_KEYS_FILE``.

A key is ``{name}.{secret}`` (the name says whose it is, so one hash is checked, not all); the
file holds one ``{name}:scrypt${n}${r}${p}${salt}${hash}`` line per key (base64, blank lines
and ``#`` comments allowed), written by ``parkleit api add-key NAME``. Neither the key nor its
hash is ever logged. The file is read again when it changes, so a key is added or revoked
without a restart; a file that cannot be read then refuses every key until it is fixed.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import threading
from pathlib import Path

from core.hashfile import (
    HashFile,
    HashFileError,
    append_hash,
    decoy_hash,
    read_hashes,
    secret_matches,
)
from core.hashfile import hash_secret as hash_key

__all__ = ["KeyFileError", "KeyStore", "add_key", "decoy_hash", "hash_key", "hash_matches"]

KEY_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# scrypt's interactive cost (core.hashfile): keys are random, so it only guards a stolen file
# against offline guessing of weak keys, which add_key never makes.
hash_matches = secret_matches


class KeyFileError(HashFileError):
    """The keys file cannot be used; the message is one line."""


_read = functools.partial(read_hashes, names=KEY_NAME, what="API keys file", label="name",
                          noun="key", error=KeyFileError)


def add_key(path: Path, name: str) -> str:
    """Make a new key ``name``, append its hash to ``path`` (mode 600) and return the key."""
    if not KEY_NAME.match(name):
        raise KeyFileError(f"key name {name!r}: 1-40 of a-z, 0-9, _ and -, starting alphanumeric")
    if path.exists() and name in _read(path):
        raise KeyFileError(f"{path} has a key {name!r} already; remove its line first")
    key = f"{name}.{secrets.token_urlsafe(32)}"
    append_hash(path, name, key)
    return key


class KeyStore:
    """The keys of ``API_KEYS_FILE`` (none without one); ``verify`` is thread-safe."""

    def __init__(self, path: Path | None) -> None:
        self._file = _Keys(path) if path is not None else None
        self._lock = self._file.lock if self._file is not None else threading.Lock()

    def _refresh(self) -> dict[bytes, str]:
        """Keys that verified, by their SHA-256 (the file read again if it changed)."""
        if self._file is None:
            return _NONE_VERIFIED
        self._file.current()
        return self._file.verified

    def cached(self, key: str) -> str | None:
        """The name of ``key`` if it verified before (no hashing); else None."""
        with self._lock:
            return self._refresh().get(hashlib.sha256(key.encode()).digest())

    def verify(self, key: str) -> str | None:
        """The name of ``key``, or None if it is not a valid key; KeyFileError if unreadable."""
        with self._lock:
            verified = self._refresh()
            if self._file is not None and self._file.problem is not None:
                raise KeyFileError(self._file.problem)
            digest = hashlib.sha256(key.encode()).digest()
            name = verified.get(digest)
            if name is not None:
                return name
            name, dot, _ = key.rpartition(".")
            stored = self._file.hashes.get(name) if dot and self._file is not None else None
        # An unknown name is hashed too (against the decoy): it answers no faster.
        matched = hash_matches(key, decoy_hash() if stored is None else stored)
        if stored is None or not matched:
            return None
        with self._lock:
            verified[digest] = name
        return name


_NONE_VERIFIED: dict[bytes, str] = {}


class _Keys(HashFile):
    def __init__(self, path: Path) -> None:
        # Keys that verified, by their SHA-256: scrypt is paid once per key and process.
        self.verified: dict[bytes, str] = {}
        super().__init__(path, _read, "API keys")

    def changed(self) -> None:
        self.verified = {}
