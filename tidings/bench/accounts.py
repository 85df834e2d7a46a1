"""Users for a run, made through the public API (there is no admin API to skip it).

Sign-up and login each cost an argon2 hash on the server (~50 ms), so a
pool is made once per ``tidings bench`` invocation and shared by every
scenario and repetition; its tokens may be reused by many sockets.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

from tidings.client import Client

PASSWORD = "bench password"


@dataclass(frozen=True, slots=True)
class BenchUser:
    id: int
    username: str
    token: str


class UserPool:
    """Grows on demand: ``await pool.take(n)`` returns the first ``n`` users."""

    def __init__(self, url: str, prefix: str, *, concurrency: int = 8) -> None:
        self.url = url
        self.prefix = prefix
        self.concurrency = concurrency
        self.users: list[BenchUser] = []

    async def take(self, count: int) -> list[BenchUser]:
        missing = range(len(self.users), count)
        if missing:
            gate = asyncio.Semaphore(self.concurrency)
            connector = aiohttp.TCPConnector(limit=self.concurrency)
            async with aiohttp.ClientSession(connector=connector) as session:

                async def one(index: int) -> BenchUser:
                    async with gate:
                        return await make_user(self.url, f"{self.prefix}{index}", session)

                self.users += await asyncio.gather(*(one(i) for i in missing))
        return self.users[:count]


async def make_user(
    url: str, username: str, session: aiohttp.ClientSession | None = None
) -> BenchUser:
    """Sign up (or reuse an existing account of that name) and log in."""
    async with Client(url, session=session) as client:
        try:
            user = await client.signup(username, PASSWORD)
        except Exception as exc:
            if getattr(exc, "code", None) != "username_taken":
                raise
        login = await client.login(username, PASSWORD)
        user = login.user
        return BenchUser(user.id, username, login.token)
