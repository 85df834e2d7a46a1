"""A real Redis Cluster on loopback for the tests: six ``redis-server`` processes
in cluster mode (three primaries, one replica each), joined by
``redis-cli --cluster create``, stopped and removed afterwards.

Each cluster is private to one test (its own ports and folder), so nothing
leaks between tests. Without ``redis-server`` and ``redis-cli`` the test skips,
or fails under TIDINGS_TEST_SERVICES=required.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.backends import unavailable

# A primary that stops answering is failed over after this long (ms): short,
# so a failover test takes seconds, long enough for a loaded CI machine.
NODE_TIMEOUT_MS = 1500


def _free_ports(count: int) -> list[int]:
    # Cluster mode needs each port and port + 10000 (the cluster bus) free.
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


@dataclass
class RedisCluster:
    folder: Path
    ports: list[int]
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Any node's address: a cluster client learns the rest from it."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def cli(self, port: int, *args: str) -> str:
        return subprocess.run(
            ["redis-cli", "-p", str(port), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout

    def primary_of(self, key: str) -> int:
        """The port of the primary that owns ``key``'s slot now."""
        slot = int(self.cli(self.live_port(), "CLUSTER", "KEYSLOT", key).strip())
        for line in self.cli(self.live_port(), "CLUSTER", "NODES").splitlines():
            parts = line.split()
            if "master" not in parts[2] or "fail" in parts[2]:
                continue
            for span in parts[8:]:
                low, _, high = span.partition("-")
                if low.startswith("["):
                    continue
                if int(low) <= slot <= int(high or low):
                    return int(parts[1].split(":")[1].split("@")[0])
        raise LookupError(f"no primary owns slot {slot}")

    def primaries(self) -> list[int]:
        """The ports of the primaries now."""
        ports = []
        for line in self.cli(self.live_port(), "CLUSTER", "NODES").splitlines():
            parts = line.split()
            if "master" in parts[2] and "fail" not in parts[2]:
                ports.append(int(parts[1].split(":")[1].split("@")[0]))
        return ports

    def promote_replica_of(self, primary: int, timeout: float = 30.0) -> int:
        """``CLUSTER FAILOVER`` on a replica of ``primary``: it takes over, no data lost.
        Returns the replica's port once every node agrees."""
        primary_id = self.cli(primary, "CLUSTER", "MYID").strip()
        replica = next(
            int(line.split()[1].split(":")[1].split("@")[0])
            for line in self.cli(primary, "CLUSTER", "NODES").splitlines()
            if line.split()[3] == primary_id
        )
        self.cli(replica, "CLUSTER", "FAILOVER")
        deadline = time.monotonic() + timeout
        while "role:master" not in self.cli(replica, "INFO", "replication"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the replica {replica} did not take over")
            time.sleep(0.05)
        self.wait_ok(timeout)
        return replica

    def wait_failover(self, key: str, dead: int, timeout: float = 60.0) -> int:
        """Until a replica has taken ``key``'s slot over from the killed primary
        ``dead`` and the cluster is ok again; returns the new primary's port."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(LookupError, subprocess.SubprocessError):
                now = self.primary_of(key)
                if now != dead:
                    self.wait_ok(max(1.0, deadline - time.monotonic()))
                    return now
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica took over from {dead}")
            time.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(5)

    def live_port(self) -> int:
        return next(port for port, p in self.processes.items() if p.poll() is None)

    def kill(self, port: int) -> None:
        process = self.processes[port]
        process.kill()
        process.wait(5)

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says the cluster is ok, and every live replica
        has its primary's data (else it could not take over)."""
        deadline = time.monotonic() + timeout
        while True:
            states = []
            for port, process in self.processes.items():
                if process.poll() is None:
                    with contextlib.suppress(subprocess.SubprocessError):
                        states.append("cluster_state:ok" in self.cli(port, "CLUSTER", "INFO"))
                        role = self.cli(port, "INFO", "replication")
                        states.append(
                            "role:master" in role
                            or "master_link_status:up" in role
                            and "master_sync_in_progress:0" in role
                        )
            if states and all(states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not become ok")
            time.sleep(0.1)


def _start(binary: str, folder: Path, port: int) -> subprocess.Popen[bytes]:
    node_dir = folder / str(port)
    node_dir.mkdir(parents=True)
    return subprocess.Popen(
        [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            # A replica may take over however long ago it last heard its primary.
            "--cluster-replica-validity-factor", "0",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(node_dir),
            "--logfile", str(node_dir / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def _create(binary: str, folder: Path) -> RedisCluster:
    """Start six servers on free ports and join them; raises if they do not join."""
    cluster = RedisCluster(folder, _free_ports(6))
    try:
        for port in cluster.ports:
            cluster.processes[port] = _start(binary, folder, port)
        for port in cluster.ports:
            for _ in range(100):
                with contextlib.suppress(OSError):
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                time.sleep(0.05)
        created = subprocess.run(
            [
                "redis-cli", "--cluster", "create",
                *(f"127.0.0.1:{port}" for port in cluster.ports),
                "--cluster-replicas", "1", "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
        if created.returncode != 0:
            said = created.stdout[-500:] + created.stderr
            raise RuntimeError(f"redis-cli --cluster create failed: {said}")
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextlib.contextmanager
def redis_cluster(folder: Path) -> Iterator[RedisCluster]:
    """Six nodes, three primaries with a replica each, ready when it returns."""
    binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if binary is None or cli is None:
        unavailable("redis-server and redis-cli", FileNotFoundError("not on PATH"))
    assert binary is not None
    # A port chosen free may be taken before its server binds it (the cluster
    # bus needs port + 10000 too, which the kernel may hand to an outgoing
    # connection meanwhile): then start again on other ports.
    for attempt in range(3):
        try:
            cluster = _create(binary, folder / f"attempt{attempt}")
            break
        except RuntimeError:
            if attempt == 2:
                raise
    try:
        cluster.wait_ok()
        yield cluster
    finally:
        cluster.stop()
