"""Start the server under test (``--spawn``): tidings or the socketio peer, pinned to its CPUs.

The server gets its own core(s) with ``taskset`` and the load gets the
others, so that neither steals the other's time and the figures say what
one server core does. Rate limits are turned off: they exist to protect a
production server from a flood, and a benchmark is a flood on purpose.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from tidings.harness.spawn import (
    SOURCE_ROOT,
    ServerProcess,
    free_port,
    serve_command,
    serve_env,
)

PEER_SCRIPT = SOURCE_ROOT / "bench" / "peers" / "socketio_relay.py"


def _pinned(command: list[str], cpus: str) -> list[str]:
    if cpus and shutil.which("taskset"):
        return ["taskset", "-c", cpus, *command]
    return command


def spawn_tidings(
    database_url: str | None, redis_url: str | None, cpus: str, workdir: str
) -> ServerProcess:
    """``tidings serve`` on a free port; a temp SQLite file when no database is given.

    Password hashing is made cheap (unless set in the environment): it costs
    the setup's sign-ups and logins, never a measured request. The server
    run is this checkout's code (:func:`tidings.harness.spawn.serve_env`).
    """
    settings = {
        "TIDINGS_DATABASE_URL": database_url or f"sqlite+aiosqlite:///{workdir}/bench.db",
        "TIDINGS_RATE_LIMIT_CONNECTION": "0",
        "TIDINGS_RATE_LIMIT_USER": "0",
        # The connect scenario reuses a few users' tokens for thousands of sockets.
        "TIDINGS_MAX_CONNECTIONS_PER_USER": "1000000",
        "TIDINGS_LOG_LEVEL": "WARNING",
    }
    if redis_url:
        settings["TIDINGS_REDIS_URL"] = redis_url
    env = serve_env(
        settings, defaults={"TIDINGS_ARGON2_TIME_COST": "1", "TIDINGS_ARGON2_MEMORY_KIB": "8192"}
    )
    command = _pinned(serve_command(), cpus)
    return ServerProcess(command, env, cwd=workdir, log=Path(workdir) / "server.log")


def spawn_socketio_peer(redis_url: str | None, cpus: str, workdir: str) -> ServerProcess:
    """The python-socketio relay of bench/peers/ on uvicorn (a source checkout is needed)."""
    if not PEER_SCRIPT.exists():
        raise RuntimeError(f"the socketio peer needs a source checkout: {PEER_SCRIPT} not found")
    port = free_port()
    command = [sys.executable, str(PEER_SCRIPT), "--port", str(port)]
    if redis_url:
        command += ["--redis", redis_url]
    log = Path(workdir) / "server.log"
    return ServerProcess(_pinned(command, cpus), os.environ, cwd=workdir, port=port, log=log)
