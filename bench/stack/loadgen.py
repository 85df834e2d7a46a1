"""Load generator for the relay_*.py stack benchmark (asyncio + uvloop, one process).

Default client (``--client raw``) is a minimal WebSocket client written directly on an
asyncio.Protocol: frames are pre-encoded once (mask key 0, which RFC 6455 permits on the wire) and
received frames are only length-parsed and counted, so the load generator spends far less CPU per
message than any of the servers. ``--client aiohttp`` (private scenario only) is a cross-check.

Scenarios (one JSON line per result on stdout):
  private  P sender->receiver pairs, each sender keeps W messages in flight to its partner;
           delivered msgs/s measured over --duration after --warmup.
  group    G receivers + S senders; senders send gsend (fanned out to every other user) with an
           aggregate window of S*W gsends in flight; deliveries/s measured like private.
  idle     connect N idle authenticated connections; server RSS delta per connection (psutil).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any, cast

import orjson
import psutil
import uvloop

HANDSHAKE_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 sample key
HANDSHAKE_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
CONNECT_TIMEOUT = 15.0


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """Encode one final client frame with mask key 0 (payload unchanged by masking)."""
    n = len(payload)
    b0 = 0x80 | opcode
    if n < 126:
        hdr = bytes((b0, 0x80 | n))
    elif n < 65536:
        hdr = bytes((b0, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        hdr = bytes((b0, 0x80 | 127)) + n.to_bytes(8, "big")
    return hdr + b"\x00\x00\x00\x00" + payload


def j(obj: Any) -> bytes:
    return orjson.dumps(obj)


class WSClient(asyncio.Protocol):
    """Raw WebSocket client: counts data frames, answers pings, keeps the first payload."""

    def __init__(self, host: str, port: int, path: str = "/ws") -> None:
        self.request = (
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            ).encode()
            + b"Sec-WebSocket-Key: "
            + HANDSHAKE_KEY
            + b"\r\n\r\n"
        )
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.handshaken = False
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.first_frame: asyncio.Future[bytes] = loop.create_future()
        self.frames = 0
        self.on_frames: Callable[[int], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        transport = self.transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        for fut in (self.opened, self.first_frame):
            if not fut.done():
                fut.set_exception(ConnectionError(f"connection lost: {exc!r}"))
                fut.exception()  # mark retrieved: nobody may be awaiting it any more

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end])
            del buf[: end + 4]
            if not head.startswith(b"HTTP/1.1 101") or HANDSHAKE_ACCEPT not in head:
                self.opened.set_exception(ConnectionError(f"bad handshake: {head[:200]!r}"))
                return
            self.handshaken = True
            self.opened.set_result(None)
        n = 0
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            op = buf[pos] & 0x0F
            ln = buf[pos + 1] & 0x7F
            hdr = 2
            if ln == 126:
                if size - pos < 4:
                    break
                ln = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                hdr = 4
            elif ln == 127:
                if size - pos < 10:
                    break
                ln = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                hdr = 10
            end = pos + hdr + ln
            if end > size:
                break
            if op <= 0x2:
                n += 1
                if not self.first_frame.done():
                    self.first_frame.set_result(bytes(buf[pos + hdr : end]))
            elif op == 0x9:  # ping -> pong
                self.write(client_frame(bytes(buf[pos + hdr : end]), 0xA))
            elif op == 0x8 and self.transport is not None:
                self.transport.close()
            pos = end
        if pos:
            del buf[:pos]
        if n:
            self.frames += n
            if self.on_frames is not None:
                self.on_frames(n)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


async def open_client(host: str, port: int, user: int) -> WSClient:
    """Connect, authenticate, and confirm registration by relaying one message to ourselves."""
    loop = asyncio.get_running_loop()
    last: Exception | None = None
    for _ in range(3):  # bounded retries
        proto = WSClient(host, port)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await loop.create_connection(lambda p=proto: p, host, port)
                await proto.opened
                proto.write(client_frame(j({"type": "auth", "user": user})))
                proto.write(client_frame(j({"type": "send", "to": user, "body": "ping"})))
                first = orjson.loads(await proto.first_frame)
            if first != {"type": "message", "from": user, "body": "ping"}:
                raise RuntimeError(f"unexpected self-ping reply {first!r}")
            proto.frames = 0
            proto.first_frame = loop.create_future()
            return proto
        except (OSError, TimeoutError) as e:
            last = e
            proto.close()
            await asyncio.sleep(0.2)
    raise RuntimeError(f"could not connect user {user}: {last!r}")


async def open_many(host: str, port: int, users: list[int], concurrency: int) -> list[WSClient]:
    sem = asyncio.Semaphore(concurrency)

    async def one(u: int) -> WSClient:
        async with sem:
            return await open_client(host, port, u)

    return list(await asyncio.gather(*(one(u) for u in users)))


class CpuProbe:
    """Server/loadgen CPU use and hypervisor steal on core 0 over a window (% of one core)."""

    def __init__(self, pid: int) -> None:
        self.server = psutil.Process(pid)
        self.me = psutil.Process()

    def snap(self) -> tuple[float, float, float, float, float]:
        s = self.server.cpu_times()
        m = self.me.cpu_times()
        steal = getattr(psutil.cpu_times(percpu=True)[0], "steal", 0.0)
        allc = psutil.cpu_times()
        busy = sum(allc) - allc.idle - getattr(allc, "iowait", 0.0)
        return time.perf_counter(), s.user + s.system, m.user + m.system, steal, busy

    @staticmethod
    def other(a: tuple[float, ...], b: tuple[float, ...]) -> float:
        """CPU used by everything except server and load generator (other tenants' jobs)."""
        used = (b[4] - a[4]) - (b[1] - a[1]) - (b[2] - a[2])
        return round(100 * used / (b[0] - a[0]), 1)

    @staticmethod
    def util(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, float, float]:
        dt = b[0] - a[0]
        server, me, steal = (round(100 * (b[i] - a[i]) / dt, 1) for i in (1, 2, 3))
        return server, me, steal


def body_of(size: int) -> str:
    return ("hello from tidings bench " * (size // 25 + 1))[:size]


async def measure(
    counter: Callable[[], int], probe: CpuProbe, warmup: float, duration: float
) -> dict[str, Any]:
    await asyncio.sleep(warmup)
    c0, s0 = counter(), probe.snap()
    await asyncio.sleep(duration)
    c1, s1 = counter(), probe.snap()
    server_cpu, lg_cpu, steal = CpuProbe.util(s0, s1)
    rate = (c1 - c0) / (s1[0] - s0[0])
    return {
        "rate": round(rate, 1),
        "server_cpu_pct": server_cpu,
        "loadgen_cpu_pct": lg_cpu,
        "core0_steal_pct": steal,
        "other_cpu_pct": CpuProbe.other(s0, s1),
        # messages per second of server CPU: less sensitive to VM noise than the raw rate
        "per_server_cpu_s": round(rate / max(server_cpu, 1.0) * 100, 1),
    }


async def scenario_private(a: argparse.Namespace, probe: CpuProbe) -> dict[str, Any]:
    body = body_of(a.body_size)
    senders_u = [2 * i + 1 for i in range(a.pairs)]
    receivers_u = [2 * i + 2 for i in range(a.pairs)]
    receivers = await open_many(a.host, a.port, receivers_u, a.concurrency)
    senders = await open_many(a.host, a.port, senders_u, a.concurrency)
    state = {"delivered": 0, "running": True}

    for s, r, ru in zip(senders, receivers, receivers_u, strict=True):
        frame = client_frame(j({"type": "send", "to": ru, "body": body}))

        def on_frames(n: int, s: WSClient = s, frame: bytes = frame) -> None:
            state["delivered"] += n
            if state["running"]:
                s.write(frame * n)  # refill the window

        r.on_frames = on_frames
        s.write(frame * a.window)
    res = await measure(lambda: state["delivered"], probe, a.warmup, a.duration)
    state["running"] = False
    sample = orjson.loads(await asyncio.wait_for(receivers[0].first_frame, 5))
    assert sample == {"type": "message", "from": senders_u[0], "body": body}, sample
    for c in senders + receivers:
        c.close()
    return {"metric": "msgs_per_s", **res, "pairs": a.pairs, "window": a.window}


async def scenario_private_aiohttp(a: argparse.Namespace, probe: CpuProbe) -> dict[str, Any]:
    import aiohttp

    body = body_of(a.body_size)
    url = f"http://{a.host}:{a.port}/ws"
    state = {"delivered": 0, "running": True}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def connect(u: int) -> aiohttp.ClientWebSocketResponse:
            ws = await session.ws_connect(url, compress=0)
            await ws.send_frame(j({"type": "auth", "user": u}), aiohttp.WSMsgType.TEXT)
            ping = j({"type": "send", "to": u, "body": "ping"})
            await ws.send_frame(ping, aiohttp.WSMsgType.TEXT)
            await ws.receive(timeout=CONNECT_TIMEOUT)
            return ws

        pairs = [
            (await connect(2 * i + 1), await connect(2 * i + 2), 2 * i + 2) for i in range(a.pairs)
        ]

        async def sender(
            ws: aiohttp.ClientWebSocketResponse, sem: asyncio.Semaphore, to: int
        ) -> None:
            payload = j({"type": "send", "to": to, "body": body})
            while state["running"]:
                await sem.acquire()
                await ws.send_frame(payload, aiohttp.WSMsgType.TEXT)

        async def receiver(ws: aiohttp.ClientWebSocketResponse, sem: asyncio.Semaphore) -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    state["delivered"] += 1
                    sem.release()

        tasks: list[asyncio.Task[None]] = []
        for s, r, ru in pairs:
            sem = asyncio.Semaphore(a.window)
            tasks.append(asyncio.create_task(sender(s, sem, ru)))
            tasks.append(asyncio.create_task(receiver(r, sem)))
        res = await measure(lambda: state["delivered"], probe, a.warmup, a.duration)
        state["running"] = False
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for s, r, _ in pairs:
            await s.close()
            await r.close()
    return {"metric": "msgs_per_s", **res, "pairs": a.pairs, "window": a.window}


async def scenario_group(a: argparse.Namespace, probe: CpuProbe) -> dict[str, Any]:
    body = body_of(a.body_size)
    receivers = await open_many(a.host, a.port, list(range(1, a.receivers + 1)), a.concurrency)
    senders_u = list(range(a.receivers + 1, a.receivers + a.senders + 1))
    senders = await open_many(a.host, a.port, senders_u, a.concurrency)
    fanout = a.receivers + a.senders - 1  # every other connected user gets each gsend
    limit = (a.senders * a.window - 1) * fanout
    frame = client_frame(j({"type": "gsend", "body": body}))
    state = {"delivered": 0, "sent": 0, "rr": 0, "running": True}

    def on_frames(n: int) -> None:
        state["delivered"] += n
        # aggregate window: at most senders*window gsends' worth of deliveries outstanding
        while state["running"] and state["sent"] * fanout - state["delivered"] <= limit:
            senders[state["rr"] % a.senders].write(frame)
            state["rr"] += 1
            state["sent"] += 1

    for c in receivers + senders:
        c.on_frames = on_frames
    for s in senders:
        s.write(frame * a.window)
    state["sent"] = a.senders * a.window
    res = await measure(lambda: state["delivered"], probe, a.warmup, a.duration)
    state["running"] = False
    sample = orjson.loads(await asyncio.wait_for(receivers[-1].first_frame, 5))
    assert sample["type"] == "message" and sample["from"] in senders_u, sample
    assert sample["body"] == body
    for c in senders + receivers:
        c.close()
    return {
        "metric": "deliveries_per_s",
        **res,
        "receivers": a.receivers,
        "senders": a.senders,
        "window": a.window,
    }


async def scenario_idle(a: argparse.Namespace, probe: CpuProbe) -> dict[str, Any]:
    base = await open_many(a.host, a.port, list(range(1, a.idle_base + 1)), a.concurrency)
    await asyncio.sleep(1.0)
    rss0 = probe.server.memory_info().rss
    t0 = time.perf_counter()
    users = list(range(a.idle_base + 1, a.idle_base + a.idle_conns + 1))
    conns = await open_many(a.host, a.port, users, a.concurrency)
    connect_s = time.perf_counter() - t0
    await asyncio.sleep(2.0)
    rss1 = probe.server.memory_info().rss
    for c in conns + base:
        c.close()
    return {
        "metric": "rss_kib_per_conn",
        "rate": round((rss1 - rss0) / a.idle_conns / 1024, 2),
        "rss_base_mib": round(rss0 / 2**20, 1),
        "rss_after_mib": round(rss1 / 2**20, 1),
        "conns": a.idle_conns,
        "connect_per_s": round(a.idle_conns / connect_s, 1),
    }


async def wait_port(host: str, port: int, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:  # bounded by time
        try:
            _, w = await asyncio.wait_for(asyncio.open_connection(host, port), 1)
            w.close()
            return
        except (OSError, TimeoutError):
            await asyncio.sleep(0.1)
    raise RuntimeError(f"server on {host}:{port} not up after {limit_s}s")


async def amain(a: argparse.Namespace) -> None:
    await wait_port(a.host, a.port, 20)
    probe = CpuProbe(a.pid)
    if a.scenario == "private":
        run = scenario_private_aiohttp if a.client == "aiohttp" else scenario_private
        res = await run(a, probe)
    elif a.scenario == "group":
        res = await scenario_group(a, probe)
    else:
        res = await scenario_idle(a, probe)
    await asyncio.sleep(0.2)  # let close frames/FINs flush
    out = {"server": a.server, "scenario": a.scenario, "rep": a.rep, "client": a.client, **res}
    print(json.dumps(out), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("scenario", choices=["private", "group", "idle"])
    ap.add_argument("--server", default="?", help="label for the output line")
    ap.add_argument("--pid", type=int, required=True, help="server pid (CPU/RSS via psutil)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--rep", type=int, default=0)
    ap.add_argument("--client", choices=["raw", "aiohttp"], default="raw")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--body-size", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=100, help="parallel connects")
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--window", type=int, default=10, help="in-flight msgs per sender")
    ap.add_argument("--receivers", type=int, default=1000)
    ap.add_argument("--senders", type=int, default=2)
    ap.add_argument("--idle-conns", type=int, default=5000)
    ap.add_argument("--idle-base", type=int, default=100, help="connections before baseline RSS")
    a = ap.parse_args()
    if a.client == "aiohttp" and a.scenario != "private":
        sys.exit("--client aiohttp is only implemented for the private scenario")
    uvloop.run(asyncio.wait_for(amain(a), timeout=300))


if __name__ == "__main__":
    main()
