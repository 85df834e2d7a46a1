"""A real S3-compatible server for the blob store's tests: OpenStack Swift, all in one.

Debian packages Swift (``swift-proxy``, ``swift-account``, ``swift-container``,
``swift-object``; ``.ci/run`` installs them with ``memcached``), and its
``s3api`` middleware speaks S3 (SigV4, multipart uploads, ranged GETs,
ListObjectsV2). ``SwiftS3`` lays out a one-replica cluster in a temp folder
(its own rings, ``swift.conf`` and device directory: nothing under
``/etc/swift`` is read or written), starts memcached (tempauth keeps its
tokens there), the account, container and object servers and the proxy, each
on a free loopback port, and stops them all. A cold start takes a few seconds,
so the suite starts it once per session.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tidings.harness.spawn import free_port

# tempauth's user "test:tester" with key "testing" is the S3 access key and secret.
ACCESS_KEY = "test:tester"
SECRET_KEY = "testing"
REGION = "us-east-1"

SERVERS = ("account", "container", "object")
BINARIES = (*(f"swift-{name}-server" for name in SERVERS), "swift-proxy-server", "memcached")

SWIFT_CONF = """\
[swift-hash]
swift_hash_path_suffix = tidings-test
swift_hash_path_prefix = tidings-test

[storage-policy:0]
name = Policy-0
default = yes
"""

COMMON = """\
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
user = {user}
swift_dir = {root}
devices = {root}/devices
mount_check = false
workers = 0
log_level = WARNING
log_facility = LOG_LOCAL0
"""

STORAGE_SERVER = (
    COMMON
    + """
[pipeline:main]
pipeline = {name}-server

[app:{name}-server]
use = egg:swift#{name}
"""
)

# The pipeline of the s3api docs: s3api before tempauth; slo because Swift
# stores an S3 multipart upload as a static large object.
PROXY_SERVER = (
    COMMON
    + """
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats
    s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true

[filter:s3api]
use = egg:swift#s3api
location = {region}

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = {secret} .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:{memcached_port}

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo
"""
)


# 2^6 partitions, one replica, one device: the smallest ring that works.
BUILD_RINGS = """
import ast, sys
from swift.common.ring import RingBuilder
root, ports = sys.argv[1], ast.literal_eval(sys.argv[2])
for name, port in ports.items():
    builder = RingBuilder(6, 1, 0)
    builder.add_dev({"region": 1, "zone": 1, "ip": "127.0.0.1", "port": port,
                     "device": "d1", "weight": 100})
    builder.rebalance()
    builder.get_ring().save(f"{root}/{name}.ring.gz")
"""


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if shutil.which(name) is None]


@dataclass
class SwiftS3:
    """One Swift cluster in ``root``; ``endpoint`` is its S3 API once started."""

    root: Path
    endpoint: str = ""
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, timeout: float = 30.0) -> None:
        missing = missing_binaries()
        if missing:
            raise FileNotFoundError(f"not on PATH: {', '.join(missing)}")
        user = _current_user()
        ports = {name: free_port() for name in (*SERVERS, "proxy", "memcached")}
        (self.root / "devices" / "d1").mkdir(parents=True, exist_ok=True)
        (self.root / "swift.conf").write_text(SWIFT_CONF)
        self._build_rings({name: ports[name] for name in SERVERS})
        self._spawn(
            ["memcached", "-l", "127.0.0.1", "-p", str(ports["memcached"]), "-U", "0"]
            + (["-u", user] if user == "root" else [])
        )
        for name in SERVERS:
            conf = self.root / f"{name}-server.conf"
            conf.write_text(
                STORAGE_SERVER.format(port=ports[name], user=user, root=self.root, name=name)
            )
            self._spawn([f"swift-{name}-server", str(conf)])
        proxy = self.root / "proxy-server.conf"
        proxy.write_text(
            PROXY_SERVER.format(
                port=ports["proxy"],
                user=user,
                root=self.root,
                region=REGION,
                secret=SECRET_KEY,
                memcached_port=ports["memcached"],
            )
        )
        self._spawn(["swift-proxy-server", str(proxy)])
        self.endpoint = f"http://127.0.0.1:{ports['proxy']}"
        self._wait_ready(ports, timeout)

    def create_bucket(self, name: str) -> None:
        """An S3 bucket is a Swift container: made through Swift's own API, synchronously."""
        login = urllib.request.Request(
            f"{self.endpoint}/auth/v1.0",
            headers={"X-Auth-User": ACCESS_KEY, "X-Auth-Key": SECRET_KEY},
        )
        with urllib.request.urlopen(login, timeout=10) as answer:
            token, account = answer.headers["X-Auth-Token"], answer.headers["X-Storage-Url"]
        create = urllib.request.Request(
            f"{account}/{name}", method="PUT", headers={"X-Auth-Token": token}
        )
        with urllib.request.urlopen(create, timeout=10) as answer:
            assert answer.status in (201, 202), answer.status

    def stop(self) -> None:
        for process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self._processes.clear()

    def _build_rings(self, ports: dict[str, int]) -> None:
        # One run of Swift's own Python for the three rings (swift-ring-builder
        # costs a second of imports per call, nine calls in all).
        result = subprocess.run(
            [_swift_python(), "-c", BUILD_RINGS, str(self.root), repr(ports)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"building Swift's rings failed: {result.stderr[-2000:]}")

    def _spawn(self, command: list[str]) -> None:
        # The child keeps its own copy of the log's descriptor.
        with open(self.root / "servers.log", "ab") as log:
            self._processes.append(
                subprocess.Popen(
                    command,
                    cwd=self.root,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            )

    def _wait_ready(self, ports: dict[str, int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for port in ports.values():
            while not _accepts(port):
                self._check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"swift did not listen on {port}: {self._log_tail()}")
                time.sleep(0.1)
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/healthcheck", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"swift's proxy is not healthy: {self._log_tail()}")
            time.sleep(0.1)

    def _check_alive(self) -> None:
        for process in self._processes:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{process.args[0]} exited with {process.returncode}: {self._log_tail()}"
                )

    def _log_tail(self) -> str:
        log = self.root / "servers.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"


def _swift_python() -> str:
    """The interpreter Swift is installed for: the one its scripts start with."""
    script = shutil.which("swift-proxy-server")
    assert script is not None
    with open(script) as source:
        return source.readline().removeprefix("#!").strip().split()[0]


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    return False


def _current_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name
