"""What the benchmarks share: their error, the ``main()`` tail, a throw-away database,
percentiles, commit-time notifications and ``parkleit`` processes with a log file."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

R = TypeVar("R")


class BenchError(Exception):
    """The benchmark itself failed (not: the figures are poor)."""


def run_main(run: Callable[[], R], *, as_json: bool, to_json: Callable[[R], Any],
             table: Callable[[R], str], log: logging.Logger, quiet: Iterable[str] = (),
             what: str = "benchmark") -> int:
    """Log to stderr, ``run()``, print its result as JSON or a table; the exit code
    (1: BenchError or anything unexpected, 130: interrupted). ``quiet``: loggers kept at
    WARNING."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        result = run()
    except BenchError as exc:
        log.error("%s failed: %s", what, exc)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception:
        log.exception("%s failed", what)
        return 1
    print(json.dumps(to_json(result)) if as_json else table(result))
    return 0


def percentile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted values, interpolated (as percentile_cont)."""
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def with_database(url: str, name: str) -> str:
    """``url`` with its database replaced by ``name``."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextlib.contextmanager
def database(admin_url: str) -> Iterator[str]:
    """A new database ``parkleit_bench_<random>`` for the run (its URL), dropped after."""
    name = f"parkleit_bench_{secrets.token_hex(4)}"
    ident = sql.Identifier(name)
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    except psycopg.Error as exc:
        raise BenchError(f"cannot create the benchmark database: {exc}".strip()) from None
    logger.info("database %s created", name)
    try:
        yield with_database(admin_url, name)
    finally:
        try:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
            logger.info("database %s dropped", name)
        except psycopg.Error as exc:
            logger.error("could not drop database %s: %s", name, exc)


class NotifyListener:
    """LISTENs to ``parkleit_lot_state``: each notification arrives when its batch commits."""

    def __init__(self, url: str) -> None:
        self.notes: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._conn = psycopg.connect(url, autocommit=True)
        self._conn.execute("LISTEN parkleit_lot_state")
        self._thread = threading.Thread(target=self._run, name="bench-listen", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for note in self._conn.notifies(timeout=0.2):
                self.notes.append((time.time(), note.payload))

    def close(self) -> None:
        """Stop listening; idempotent."""
        self._stop.set()
        self._thread.join(5)
        if not self._conn.closed:
            self._conn.close()


# --------------------------------------------------------------------------- processes


def start_process(module_args: list[str], env: dict[str, str],
                  log: Path) -> subprocess.Popen[bytes]:
    """``python -m <module_args>`` in the project root, its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", *module_args], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def log_tail(log: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_process(process: subprocess.Popen[bytes], name: str, timeout: float = 30.0) -> None:
    """SIGTERM, and kill it when it has not exited after ``timeout``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("%s ignored SIGTERM; killing it", name)
            process.kill()
            process.wait(10)


class Service:
    """One process started with ``python -m <module_args>``, its output in a log file."""

    def __init__(self, name: str, module_args: list[str], env: dict[str, str],
                 log: Path) -> None:
        self.name, self.log = name, log
        self.process = start_process(module_args, env, log)

    def tail(self, lines: int = 20) -> str:
        return log_tail(self.log, lines)

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise BenchError(f"{self.name} exited with code {code}:\n{self.tail()}")

    def stop(self, timeout: float = 30.0) -> None:
        stop_process(self.process, self.name, timeout)
