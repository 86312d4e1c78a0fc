"""Start FleetMeter programs as child processes, wait for their ready line, stop them for sure.

Every long-running ``fleetmeter`` program prints one JSON line ``{"ready": true, ...}`` on
stdout once it listens. The demo and the end-to-end tests start real processes through this
module so that what they exercise is exactly what an operator runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any


class ProgramFailed(RuntimeError):
    """A child program exited or never said it was ready."""


class Program:
    """One child process running ``python -m fleetmeter ARGS``."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        *,
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.args = [sys.executable, "-m", "fleetmeter", *args]
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 (closed in stop())
        # A new session: Ctrl-C in the terminal reaches only the demo, which then stops its
        # children in order, and a stray signal cannot kill a child half-way.
        self.proc = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            self.args,
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
        self.ready: dict[str, Any] = {}

    def wait_ready(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Block until the ready line arrives; raise ProgramFailed with the log tail otherwise."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        buffer = b""
        try:
            while time.monotonic() < deadline:
                if not sel.select(timeout=0.2):
                    if self.proc.poll() is not None:
                        break
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    with contextlib.suppress(ValueError):
                        doc = json.loads(line)
                        if isinstance(doc, dict) and doc.get("ready") is True:
                            self.ready = doc
                            return doc
        finally:
            sel.close()
        self.stop()
        raise ProgramFailed(f"{self.name} did not start: {self.log_tail()}")

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``: nothing is left running."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
        return self.proc.returncode


def run_command(
    args: Sequence[str], *, env: dict[str, str] | None = None, timeout_s: float = 120
) -> str:
    """Run ``fleetmeter ARGS`` to completion; return stdout or raise with its stderr."""
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "fleetmeter", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        raise ProgramFailed(f"fleetmeter {' '.join(args[:2])} failed: {proc.stderr.strip()}")
    return proc.stdout


@contextlib.contextmanager
def programs() -> Iterator[list[Program]]:
    """A list to add Programs to; all are stopped, last started first, on leaving."""
    started: list[Program] = []
    try:
        yield started
    finally:
        for program in reversed(started):
            program.stop()
