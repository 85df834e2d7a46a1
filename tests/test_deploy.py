"""deploy/nginx.conf, run as written in front of two nodes sharing PostgreSQL and Redis."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.backends import unavailable
from tests.conftest import PASSWORD
from tidings.client import Client
from tidings.harness.spawn import ServerProcess, free_port

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).parent.parent / "deploy" / "nginx.conf"


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[[list[int]], str]]:
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        unavailable("nginx", FileNotFoundError("nginx is not installed"))
    assert binary is not None
    processes: list[subprocess.Popen[bytes]] = []

    def start(node_ports: list[int]) -> str:
        port = free_port()
        site = CONFIG.read_text()
        servers = "".join(
            f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n" for p in node_ports
        )
        site = re.sub(r"(    server 127\.0\.0\.1:\d+ [^\n]*\n)+", servers, site, count=1)
        site = site.replace("listen 8080;", f"listen 127.0.0.1:{port};")
        (tmp_path / "site.conf").write_text(site)
        (tmp_path / "nginx.conf").write_text(
            f"daemon off;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
            "events {}\n"
            f"http {{\n access_log off;\n client_body_temp_path {tmp_path};\n"
            f" proxy_temp_path {tmp_path};\n include {tmp_path}/site.conf;\n}}\n"
        )
        process = subprocess.Popen(
            [binary, "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)]
        )
        processes.append(process)
        for _ in range(50):
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return f"http://127.0.0.1:{port}"
            time.sleep(0.1)
        raise RuntimeError("nginx did not start: " + (tmp_path / "error.log").read_text())

    yield start
    for process in processes:
        process.terminate()
        process.wait(5)


async def test_clients_chat_through_nginx_and_survive_a_node_dying(
    cluster_env: dict[str, str],
    spawn_server: Callable[..., ServerProcess],
    nginx: Callable[[list[int]], str],
) -> None:
    nodes = [spawn_server(**cluster_env) for _ in range(2)]
    url = nginx([int(n.url.rsplit(":", 1)[1]) for n in nodes])
    alice, bob = Client(url), Client(url)
    ids = []
    for client, name in ((alice, "alice"), (bob, "bob")):
        ids.append((await client.signup(name, PASSWORD)).id)
        await client.login(name, PASSWORD)
    conversation = f"p:{min(ids)}-{max(ids)}"
    async with await alice.connect() as a, await bob.connect() as b:
        sent = await a.send(conversation, "through the proxy")
        assert (await b.next_event())["message"]["id"] == sent.id  # type: ignore[index]
        pong = await b.request({"type": "ping"})
        assert pong["type"] == "pong"

    nodes[0].kill()
    # Every request still lands on a live node; sockets reconnect to it.
    for n in range(4):
        await alice.send(conversation, f"after the kill {n}")
    async with await bob.connect() as b:
        missed = await bob.messages(conversation, after=1)
        assert [m.seq for m in missed] == [2, 3, 4, 5]
        async with await alice.connect() as a:
            await a.send(conversation, "live again")
            assert (await b.next_event(timeout=10))["message"]["seq"] == 6  # type: ignore[index]
    for client in (alice, bob):
        await client.close()
