"""Secrets kept only as scrypt hashes: the API's admin keys, the console's passwords, the
charge points' passwords.

A stored hash is ``scrypt$n$r$p$salt$hash`` (base64, a random 16-byte salt); a file of them
holds one ``{name}:{stored hash}`` line per name (blank lines and ``#`` comments allowed) and
is read again when it changes (``HashFile``), so a name is added or revoked without a restart;
a file that cannot be read then refuses every name until it is fixed. Neither a secret nor its
hash is ever logged.
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
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["HashFile", "HashFileError", "append_hash", "decoy_hash", "entries", "hash_secret",
           "read_hashes", "secret_matches"]

logger = logging.getLogger(__name__)

# scrypt's recommended interactive cost (16 MiB, some 50 ms): it guards a stolen file against
# offline guessing; a lower n only for benchmarks with thousands of names.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


class HashFileError(Exception):
    """A file of hashes cannot be used; the message is one line."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r * p,
                          dklen=32)


def hash_secret(secret: str, *, n: int = SCRYPT_N) -> str:
    """The stored form of ``secret``: ``scrypt$n$r$p$salt$hash`` with a random salt."""
    salt = secrets.token_bytes(16)
    return (f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}$"
            f"{_b64(_scrypt(secret, salt, n, SCRYPT_R, SCRYPT_P))}")


def secret_matches(secret: str, stored: str) -> bool:
    """Whether ``secret`` hashes to ``stored``, compared in constant time."""
    _, n, r, p, salt, digest = stored.split("$")
    return hmac.compare_digest(_scrypt(secret, base64.b64decode(salt), int(n), int(r), int(p)),
                               base64.b64decode(digest))


@functools.cache
def decoy_hash() -> str:
    """A hash no secret matches: an unknown name is checked against it, so an answer takes as
    long whether the name exists or not (names are not told by timing)."""
    return hash_secret(secrets.token_urlsafe(32))


def _stored(text: str) -> bool:
    parts = text.split("$")
    try:
        return (len(parts) == 6 and parts[0] == "scrypt" and all(int(x) > 0 for x in parts[1:4])
                and len(base64.b64decode(parts[4], validate=True)) >= 16
                and len(base64.b64decode(parts[5], validate=True)) == 32)
    except ValueError:
        return False


def entries(path: Path, *, what: str,
            error: type[Exception] = HashFileError) -> Iterator[tuple[int, str, str]]:
    """``(line number, name, value)`` of each ``name:value`` line of the file of ``what`` at
    ``path`` (blank lines and ``#`` comments skipped; no colon: an empty value); ``error``
    if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read the {what} {path}: {exc}") from None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition(":")
            yield number, name, value


def read_hashes(path: Path, names: re.Pattern[str], *, what: str, label: str, noun: str,
                error: type[HashFileError] = HashFileError) -> dict[str, str]:
    """Name -> stored hash, from the file of ``what`` at ``path``; ``error`` names the first
    bad line (``label`` is the name's word in ``label:scrypt$...``, ``noun`` a name's)."""
    hashes: dict[str, str] = {}
    for number, name, stored in entries(path, what=what, error=error):
        if names.match(name) is None or not _stored(stored):
            raise error(f"{path}, line {number}: not '{label}:scrypt$n$r$p$salt$hash'")
        if name in hashes:
            raise error(f"{path}, line {number}: {noun} {name!r} is there twice")
        hashes[name] = stored
    return hashes


def append_hash(path: Path, name: str, secret: str) -> None:
    """Append ``name``'s line with the hash of ``secret`` to ``path`` (made with mode 600)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as file:
        file.write(f"{name}:{hash_secret(secret)}\n")


class HashFile:
    """The hashes of a file, read again when it changes (``current``, under ``lock``).

    ``read`` reads the file (and raises the file's error); a file that cannot be read at the
    start stops it, later it leaves no hash (``problem`` says why) until it is fixed.
    ``changed`` is called, under the lock, each time the file was read again.
    """

    def __init__(self, path: Path, read: Callable[[Path], dict[str, str]], what: str) -> None:
        self.path, self._read, self._what = path, read, what
        self.lock = threading.Lock()
        self.hashes = read(path)  # a bad file stops the start
        self._stamp = self._stat()
        self.problem: str | None = None

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size, info.st_ino

    def changed(self) -> None:
        """Called when the file was read again (caches of verified secrets go)."""

    def current(self) -> None:
        """Read the file again if it changed since (call with ``lock`` held)."""
        stamp = self._stat()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        self.changed()
        try:
            self.hashes, self.problem = self._read(self.path), None
            logger.info("%s read again: %d entries", self._what, len(self.hashes))
        except HashFileError as exc:
            # A half-read file must not let a removed name back in: refuse every one.
            self.hashes, self.problem = {}, str(exc)
            logger.error("%s; every one is refused until it is fixed", exc)
