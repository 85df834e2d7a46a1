"""Start ``tidings serve`` (or another server) as a subprocess on loopback, wait for it, stop it.

The one spawner of the tests (``spawn_server``), ``tidings bench --spawn``
and ``tidings soak --spawn``. A server is ready when its port accepts a
connection; one that exits first, or is not listening after
:data:`START_TIMEOUT`, is an error that carries the end of its log. Only
the process started here is ever signalled, by its own PID (other servers
may run on the machine).

Every call blocks (a ``subprocess.Popen``); asyncio callers start it with
``wait=False`` and run :meth:`~ServerProcess.wait_listening` and
:meth:`~ServerProcess.stop` in a thread (``asyncio.to_thread``), so that
their clients keep running meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"
#: How long a server may take to listen after start (migrations run first).
START_TIMEOUT = 60.0
#: How long SIGTERM may take to drain before the server is killed.
STOP_TIMEOUT = 20.0
KILL_TIMEOUT = 10.0
#: The folder that holds this ``tidings`` package (a source checkout, or site-packages).
SOURCE_ROOT = Path(__file__).resolve().parents[2]

#: Password hashing made cheap: setups sign up many users; the cost is a setting.
CHEAP_HASHING = {"TIDINGS_ARGON2_TIME_COST": "1", "TIDINGS_ARGON2_MEMORY_KIB": "1024"}


def free_port() -> int:
    """A loopback port free right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def serve_command() -> list[str]:
    """``python -m tidings serve`` with this interpreter."""
    return [sys.executable, "-m", "tidings", "serve"]


def serve_env(
    settings: Mapping[str, str], *, defaults: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a spawned ``tidings serve``.

    In order, each overriding the one before: ``defaults``, this process's
    environment, ``TIDINGS_HOST`` loopback and ``TIDINGS_PORT`` a free port,
    then ``settings`` (which may name the port: a restart on the same one).
    From a source checkout, the server run is that checkout's code, not
    whatever an editable install points at: comparing two checkouts (git
    worktree) with one virtualenv runs each checkout's own server.
    """
    env = {**(defaults or {}), **os.environ}
    env.update(TIDINGS_HOST=LOOPBACK, TIDINGS_PORT=str(free_port()))
    env.update(settings)
    if (SOURCE_ROOT / "pyproject.toml").exists():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE_ROOT), env.get("PYTHONPATH")]))
    return env


class ServerProcess:
    """A server subprocess; the constructor returns once it accepts connections on ``port``.

    (With ``wait=False`` it returns at once: call :meth:`wait_listening`.)
    ``port`` defaults to the environment's ``TIDINGS_PORT``. ``log``: a file
    that gets the server's stderr and stdout, appended (None: this
    process's); ``discard_stdout`` sends stdout nowhere (``tidings serve``
    prints only its "listening on" line there).
    """

    def __init__(
        self,
        command: Sequence[str],
        env: Mapping[str, str],
        *,
        cwd: str | Path,
        port: int | None = None,
        log: Path | None = None,
        discard_stdout: bool = False,
        wait: bool = True,
    ) -> None:
        self.port = port if port is not None else int(env["TIDINGS_PORT"])
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.log = log
        with contextlib.ExitStack() as files:
            out = files.enter_context(log.open("ab")) if log is not None else None
            self.process = subprocess.Popen(
                list(command),
                env=dict(env),
                cwd=cwd,
                stdout=subprocess.DEVNULL if discard_stdout else out,
                stderr=out,
            )
        if wait:
            self.wait_listening()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def wait_listening(self, timeout: float = START_TIMEOUT) -> None:
        """Return once the port accepts a connection; raise if the server exits or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited at start (code {self.process.returncode}):\n{self.log_tail()}"
                )
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server not listening after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, size: int = 3000) -> str:
        """The end of the log file ("" without one)."""
        if self.log is None:
            return ""
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL (if still running) and reap."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(KILL_TIMEOUT)

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM; the exit code. Raises ``subprocess.TimeoutExpired`` if it does not drain."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(
        self, sig: signal.Signals = signal.SIGTERM, timeout: float = STOP_TIMEOUT
    ) -> tuple[int | None, float, bool]:
        """Signal, wait, SIGKILL after ``timeout``: (exit code, seconds to exit, drained).

        ``drained``: the process exited by itself within ``timeout``.
        """
        if self.process.poll() is not None:
            return self.process.returncode, 0.0, True
        started = time.monotonic()
        self.process.send_signal(sig)
        drained = True
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            drained = False
            self.kill()
        return self.process.returncode, time.monotonic() - started, drained
