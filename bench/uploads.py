"""Uploads: throughput, the server's memory while many clients upload, and thumbnail time.

    .venv/bin/python bench/uploads.py --clients 20 --sizes 1,10,25 --rounds 3

Each round spawns ``tidings serve`` on a fresh SQLite database with its
files on disk (or ``--files-url``), signs up ``--clients`` users, then for
every size in ``--sizes`` (MiB) has all of them upload one file of that
size at once (random bytes, streamed from memory in 64 KiB chunks, so the
client holds one copy). While they upload, the server's resident memory is
read from ``/proc/PID/status`` every 10 ms. Printed per size: aggregate
MB/s (bytes uploaded / wall time of the whole burst) and the server's RSS
before the burst and at its peak. Memory must not grow with file size: the
peak above the idle RSS for 10 MiB files should match that for 1 MiB.

Thumbnail time is measured in this process on the server's own function
(``tidings.files.images.examine``, which the server runs in a thread per
upload) for a few generated images: a 12 MP photo-like JPEG, a 1080p
screenshot-like PNG and a 1 MP WebP; the median of ``--repeat`` runs each.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from PIL import Image, ImageDraw, ImageFilter

from tidings.bench.accounts import UserPool
from tidings.files.images import examine
from tidings.harness.spawn import CHEAP_HASHING, ServerProcess, serve_command, serve_env

CHUNK = 64 * 1024
MIB = 1024 * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--sizes", default="1,10,25", help="MiB per file, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files-url", default="", help="TIDINGS_FILES_URL ('' = disk)")
    parser.add_argument("--repeat", type=int, default=5, help="thumbnail runs per image")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"machine: {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}", flush=True)
    results: dict[int, list[tuple[float, float, float]]] = {size: [] for size in sizes}
    for round_ in range(1, args.rounds + 1):
        for size, figures in asyncio.run(one_round(args, sizes)).items():
            results[size].append(figures)
            mbps, idle, peak = figures
            print(
                f"round {round_}: {args.clients} x {size} MiB: {mbps:.1f} MB/s, "
                f"server RSS idle {idle:.1f} MiB, peak {peak:.1f} MiB (+{peak - idle:.1f})",
                flush=True,
            )
    for size, rows in results.items():
        mbps = statistics.median(row[0] for row in rows)
        grown = statistics.median(row[2] - row[1] for row in rows)
        peak = statistics.median(row[2] for row in rows)
        print(
            f"median {args.clients} x {size} MiB: {mbps:.1f} MB/s, "
            f"peak RSS {peak:.1f} MiB (+{grown:.1f} over idle)"
        )
    for name, image, seconds in thumbnail_times(args.repeat):
        print(f"thumbnail {name} {image}: median {seconds * 1000:.1f} ms")
    return 0


async def one_round(
    args: argparse.Namespace, sizes: list[int]
) -> dict[int, tuple[float, float, float]]:
    with tempfile.TemporaryDirectory(prefix="tidings-uploads-") as folder:
        settings = {
            "TIDINGS_DATABASE_URL": f"sqlite+aiosqlite:///{folder}/tidings.db",
            "TIDINGS_FILES_URL": args.files_url or f"file://{folder}/files",
            "TIDINGS_MAX_FILE_BYTES": str((max(sizes) + 1) * MIB),
            "TIDINGS_RATE_LIMIT_UPLOADS": "0",
            "TIDINGS_RATE_LIMIT_USER": "0",
            "TIDINGS_LOG_LEVEL": "WARNING",
            **CHEAP_HASHING,
        }
        server = ServerProcess(
            serve_command(), serve_env(settings), cwd=folder, log=Path(folder) / "server.log"
        )
        try:
            users = await UserPool(server.url, "up").take(args.clients)
            tokens = [user.token for user in users]
            # Warm up (threads, pools, the first file's folders) before reading the idle RSS.
            await burst(server, tokens, 64 * 1024)
            out: dict[int, tuple[float, float, float]] = {}
            for size in sizes:
                out[size] = await burst(server, tokens, size * MIB)
            return out
        finally:
            server.stop()


async def burst(server: ServerProcess, tokens: list[str], size: int) -> tuple[float, float, float]:
    """All tokens upload ``size`` bytes at once: (MB/s, idle RSS MiB, peak RSS MiB)."""
    payload = os.urandom(size)  # incompressible; one copy, shared by every client
    idle = rss_mib(server.pid)
    peak = idle
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mib(server.pid))
            await asyncio.sleep(0.01)

    async with aiohttp.ClientSession() as session:
        watcher = asyncio.create_task(watch())
        started = time.perf_counter()
        await asyncio.gather(*(upload(session, server.url, token, payload) for token in tokens))
        elapsed = time.perf_counter() - started
        done.set()
        await watcher
    return len(tokens) * size / elapsed / 1e6, idle, peak


async def upload(session: aiohttp.ClientSession, url: str, token: str, payload: bytes) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        view = memoryview(payload)
        for start in range(0, len(payload), CHUNK):
            yield bytes(view[start : start + CHUNK])

    async with session.post(
        f"{url}/api/v1/files?name=blob.bin",
        data=chunks(),
        headers={"Authorization": f"Bearer {token}"},
    ) as answer:
        if answer.status != 201:
            sys.exit(f"upload answered {answer.status}: {await answer.text()}")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def thumbnail_times(repeat: int) -> list[tuple[str, str, float]]:
    times = []
    for name, data in sample_images():
        with Image.open(io.BytesIO(data)) as image:
            shape = f"{image.width}x{image.height} {len(data) // 1024} KiB"
        runs = []
        for _ in range(repeat):
            started = time.perf_counter()
            examine(io.BytesIO(data))
            runs.append(time.perf_counter() - started)
        times.append((name, shape, statistics.median(runs)))
    return times


def sample_images() -> list[tuple[str, bytes]]:
    """A phone photo, a screenshot and a web image, made up but shaped like real ones."""
    photo = Image.effect_noise((4000, 3000), 40).convert("RGB")
    photo = Image.merge(
        "RGB", [photo.getchannel(0), photo.getchannel(0).rotate(180), photo.getchannel(0)]
    )
    photo = photo.filter(ImageFilter.GaussianBlur(2))
    screen = Image.new("RGB", (1920, 1080), (245, 245, 245))
    draw = ImageDraw.Draw(screen)
    for row in range(0, 1080, 36):
        draw.rectangle((40, row + 6, 40 + (row * 7) % 1500, row + 26), fill=(40, 90, 160))
    web = Image.effect_noise((1000, 1000), 60).convert("RGB").filter(ImageFilter.SMOOTH)
    out = []
    for name, image, form in (
        ("JPEG", photo, "JPEG"),
        ("PNG", screen, "PNG"),
        ("WebP", web, "WEBP"),
    ):
        buffer = io.BytesIO()
        image.save(buffer, form, quality=90)
        out.append((name, buffer.getvalue()))
    return out


if __name__ == "__main__":
    sys.exit(main())
