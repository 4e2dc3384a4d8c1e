"""What the benchmarks share: their error, the command line (parser, ``main()`` tail), the
environment passed on to services, a work directory, a throw-away database, a private broker,
percentiles, commit-time notifications, ``parkleit`` processes with a log file, and the
printed tables of figures next to their targets and references."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import paho.mqtt.client as mqtt
import psycopg
from psycopg import sql

from core import channels
from core.db import create_database, listen
from core.mqtt import mqtt_client
from core.settings import Settings
from parkleit.embedded import PrivateBroker, PrivatePostgres, free_port
from parkleit.process import ParkleitProcess

logger = logging.getLogger(__name__)

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

R = TypeVar("R")
P = TypeVar("P", bound=ParkleitProcess)


class BenchError(Exception):
    """The benchmark itself failed (not: the figures are poor)."""


# --------------------------------------------------------------------------- command line


def bench_parser(name: str, description: str) -> argparse.ArgumentParser:
    """The parser of ``python -m benchmarks.<name>``, with ``--json``."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}",
                                     description=description)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def add_keep(parser: argparse.ArgumentParser, what: str) -> None:
    """``--keep``: keep the temporary directory (``what`` it holds)."""
    parser.add_argument("--keep", action="store_true",
                        help=f"keep the temporary directory ({what})")


def refuse(name: str, message: str) -> int:
    """Say why the arguments of ``benchmarks.<name>`` are refused; exit code 2."""
    print(f"benchmarks.{name}: {message}", file=sys.stderr)
    return 2


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


def rounded(value: Any, digits: int = 3) -> Any:
    """``value`` with every float in it (lists and dicts too) rounded to ``digits``."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item, digits) for item in value]
    return value


def figures(result: Any, digits: int = 3) -> dict[str, Any]:
    """A result dataclass as the JSON object ``--json`` prints (floats rounded)."""
    found: dict[str, Any] = rounded(dataclasses.asdict(result), digits)
    return found


@dataclasses.dataclass
class Latency:
    """The quantiles of one series of times, in milliseconds (None: no times)."""

    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None

    @classmethod
    def of(cls, seconds: Iterable[float]) -> Latency:
        """The quantiles of ``seconds``."""
        ordered = sorted(seconds)
        if not ordered:
            return cls()
        return cls(*(percentile(ordered, q) * 1000 for q in (0.5, 0.95, 0.99, 1.0)))


def percentile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted values, interpolated (as percentile_cont)."""
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --------------------------------------------------------------------------- printing


def fmt(value: float | None, digits: int = 0) -> str:
    """A figure with thousands separators; ``—`` when there is none (None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}"


def met(ok: bool | None) -> str:
    """``yes``, ``NO``, or nothing when there was nothing to judge."""
    return "" if ok is None else ("yes" if ok else "NO")


def figure_table(rows: Sequence[Sequence[str]], *, measured: int, target: int,
                 reference: str = "", rule: int = 0) -> list[str]:
    """Rows of (figure, measured, target, met[, reference]) under a heading and a rule; the
    columns ``measured`` and ``target`` characters wide, the reference column headed
    ``reference`` with a rule of ``rule`` dashes."""
    width = max(len(row[0]) for row in rows)

    def line(label: str, value: str, goal: str, ok: str, ref: str = "") -> str:
        return f"{label:<{width}}  {value:>{measured}}  {goal:<{target}}  {ok:<3}  {ref}".rstrip()

    return [line("figure", "measured", "target", "met", reference),
            line("-" * width, "-" * measured, "-" * target, "---", "-" * rule),
            *(line(*row) for row in rows)]


def settings_line(settings: dict[str, str]) -> list[str]:
    """The ``settings:`` line of the variables passed on, if any."""
    return ["settings: " + " ".join(f"{k}={v}" for k, v in settings.items())] if settings else []


# --------------------------------------------------------------------------- environment


def passed_on(prefixes: tuple[str, ...]) -> dict[str, str]:
    """The variables of this environment that start with one of ``prefixes``, sorted."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(prefixes)}


def service_env(prefixes: tuple[str, ...], **values: str) -> dict[str, str]:
    """This environment without ``PARKLEIT_*`` but those with one of ``prefixes``; then
    ``values`` (``DATABASE_URL="..."`` sets ``PARKLEIT_DATABASE_URL``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARKLEIT_")
           or k.startswith(prefixes)}
    return env | {f"PARKLEIT_{name}": value for name, value in values.items()}


def admin_url() -> str:
    """The admin URL of the PostgreSQL server the benchmark databases are made on."""
    return os.environ.get("PARKLEIT_BENCH_DATABASE_URL", DEFAULT_ADMIN_URL)


# --------------------------------------------------------------------------- resources


@contextlib.contextmanager
def workdir(prefix: str, keep: bool) -> Iterator[Path]:
    """A temporary directory for the run, removed after it unless ``keep``."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield tmp
    finally:
        discard(tmp, keep)


def discard(tmp: Path, keep: bool) -> None:
    """Remove the run's temporary directory, or say where it is kept."""
    if keep:
        logger.info("kept %s", tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def killed_at_end(processes: list[P]) -> Iterator[list[P]]:
    """``processes``, the run's services as it starts them, each killed when the block ends
    however it ends (the run stops them first, while what they use still stands)."""
    try:
        yield processes
    finally:
        for process in processes:
            process.kill()


def stop_all(processes: Iterable[ParkleitProcess]) -> None:
    """Stop each of ``processes`` (SIGTERM, a drain, SIGKILL after its deadline)."""
    for process in processes:
        process.stop()


@contextlib.contextmanager
def private_postgres(directory: Path) -> Iterator[tuple[PrivatePostgres, str]]:
    """A PostgreSQL of the run's own (so that it can be stopped) with a database parkleit,
    and that database's URL; stopped after it."""
    postgres = PrivatePostgres(directory, port=free_port())
    try:
        try:
            admin = postgres.start()
        except RuntimeError as exc:
            raise BenchError(str(exc)) from None
        create_database(admin, "parkleit")
        yield postgres, with_database(admin, "parkleit")
    finally:
        with contextlib.suppress(RuntimeError):
            postgres.stop("fast")


@contextlib.contextmanager
def private_broker(directory: Path, port: int | None = None) -> Iterator[PrivateBroker]:
    """A Mosquitto of the run's own (the project's tuned config), stopped after it."""
    broker = PrivateBroker(directory, port=port, backend="mosquitto")
    try:
        try:
            broker.start()
        except RuntimeError as exc:
            raise BenchError(str(exc)) from None
        yield broker
    finally:
        broker.stop()


def connected(mqtt_url: str, client_id: str) -> mqtt.Client:
    """A ``core.mqtt`` client connected to the broker at ``mqtt_url``, its loop running."""
    settings = Settings(MQTT_URL=mqtt_url)
    client = mqtt_client(settings, client_id)
    client.connect(settings.mqtt.host, settings.mqtt.port, keepalive=30)
    client.loop_start()
    return client


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
    """LISTENs to ``channel`` (``parkleit_lot_state`` unless told): ``notes`` holds (arrival
    time, payload) of each notification, which arrives when its transaction commits."""

    def __init__(self, url: str, channel: str = channels.LOT_STATE) -> None:
        self.notes: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._conn = psycopg.connect(url, autocommit=True)
        listen(self._conn, [channel])
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


def status_kb(pid: int, key: str) -> int | None:
    """A size from ``/proc/<pid>/status`` in kB (``VmRSS``: resident now, ``VmHWM``: its
    peak); None when the process is gone."""
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/status").read_text()
        match = re.search(rf"^{key}:\s+(\d+)\s+kB", status, re.MULTILINE)
        if match:
            return int(match[1])
    return None


class Failed:
    """What a child process sends instead of its report when it failed."""

    def __init__(self, error: BaseException) -> None:
        self.message = f"{type(error).__name__}: {error}"


def report_through(out: multiprocessing.connection.Connection,
                   work: Callable[[], Any]) -> None:
    """In a child process: send ``work()``'s report through ``out`` (or what failed)."""
    try:
        out.send(work())
    except BaseException as exc:  # the parent reports it
        out.send(Failed(exc))
    finally:
        out.close()


class Child:
    """``target(*args, out)`` in a spawned process of its own (so it shares no GIL with the
    measuring), which sends one report through ``out`` (``report_through``)."""

    def __init__(self, name: str, target: Callable[..., None], *args: Any) -> None:
        self.name = name
        context = multiprocessing.get_context("spawn")
        self._receive, send = context.Pipe(duplex=False)
        self.process = context.Process(target=target, name=name, daemon=True,
                                       args=(*args, send))
        self.process.start()
        send.close()

    def reported(self, timeout: float = 0.0) -> bool:
        """Whether its report (or its end) is there to read, waiting up to ``timeout``."""
        return self._receive.poll(timeout)

    def receive(self) -> Any:
        """Its report; BenchError when it failed or died without one."""
        try:
            report = self._receive.recv()
        except EOFError:
            raise BenchError(f"the {self.name} died (exit code {self.process.exitcode})") from None
        self.process.join(10)
        if isinstance(report, Failed):
            raise BenchError(f"the {self.name} failed: {report.message}")
        return report

    def close(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self._receive.close()


class Service(ParkleitProcess):
    """One process started with ``python -m <module_args>``, its output in a log file."""

    log: Path

    def __init__(self, name: str, module_args: list[str], env: dict[str, str],
                 log: Path) -> None:
        module, *args = module_args
        super().__init__(args, env, log, name=name, module=module)
        self.start()

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self.proc is not None
        return self.proc

    def check_alive(self) -> None:
        code = self.returncode
        if code is not None:
            raise BenchError(f"{self.name} exited with code {code}:\n{self.tail()}")

    def wait_log(self, text: str, timeout: float = 15) -> None:
        """Wait until its log holds ``text``; BenchError if it dies or ``timeout`` passes."""
        try:
            super().wait_log(text, timeout)
        except AssertionError as exc:
            raise BenchError(str(exc)) from None


def sse_events(response: httpx.Response) -> Iterator[dict[str, str]]:
    """The events of a streamed ``text/event-stream`` answer, each as its fields (comments
    and blocks without an ``event`` field, such as a lone ``retry``, skipped)."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        elif "event" in fields:
            yield fields
            fields = {}
