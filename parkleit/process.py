"""A ``parkleit`` command run as a child process: the one wrapper the demo, the benchmarks and
the tests start services with (a real process, so it can be stopped with SIGTERM and killed)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

__all__ = ["ROOT", "ParkleitProcess"]

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent


class ParkleitProcess:
    """``python -m parkleit ARGS`` with ``env``; its output appended to ``log`` (None: this
    process's own output; ``os.devnull`` to discard it)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path | None = None, *,
                 name: str | None = None, own_group: bool = False, nice: int = 0) -> None:
        self.args, self.env, self.log = args, env, log
        self.name = name or " ".join(args[:2])
        self.own_group = own_group  # Ctrl-C at a terminal does not reach it
        self.nice = nice
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        with contextlib.ExitStack() as stack:
            out = None if self.log is None else stack.enter_context(self.log.open("ab"))
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "parkleit", *self.args], env=self.env, cwd=ROOT,
                stdout=out, stderr=None if out is None else subprocess.STDOUT,
                stdin=subprocess.DEVNULL, process_group=0 if self.own_group else None)
        if self.nice:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, self.proc.pid, self.nice)
        return self

    @property
    def returncode(self) -> int | None:
        """The exit code once it has ended, else None."""
        return None if self.proc is None else self.proc.poll()

    def tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of its log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if (
                self.log is not None) else "(no log)"
        except OSError:
            return "(no log)"

    def wait_log(self, text: str, timeout: float = 15) -> None:
        """Wait until it has logged ``text``; AssertionError with its log's tail if not."""
        assert self.log is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return
            if self.returncode is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not logged by {self.name}; log:\n{self.tail(60)}")

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, then its exit code (subprocess.TimeoutExpired if it does not end)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def ask_to_stop(self) -> None:
        """SIGTERM, if it still runs (``wait_stopped`` then waits for it)."""
        if self.returncode is None and self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout: float = 30) -> int | None:
        """Its exit code; SIGKILL if it has not ended within ``timeout``."""
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in %.0f s; killing it", self.name, timeout)
                self.kill()
        return self.returncode

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, and SIGKILL if it has not ended after ``timeout``; its exit code."""
        self.ask_to_stop()
        return self.wait_stopped(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        """Kill it if it still runs (the end of a test)."""
        if self.returncode is None and self.proc is not None:
            self.kill()
