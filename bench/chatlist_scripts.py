"""What reading one chat list costs Redis: the copy's INDEX, UNCOUNTED and PAGE scripts.

    .venv/bin/python bench/chatlist_scripts.py [--conversations 1000] [--page 100]

Fills a throwaway prefix on a real Redis with one user's copy, through the
scripts the nodes use (FILL for each conversation's head, shown message,
uncounted seqs, mentions and group name; INSTALL for the user's index):
``--conversations`` of them, nine in ten groups, every one with unread
messages, some with mentions and recalled seqs. Then reads the list as a
node does, ``--reads`` times: INDEX, UNCOUNTED for every entry with
unread, PAGE for the first ``--page`` entries. Prints Redis's own median
microseconds per call of each script (``INFO commandstats``, reset
before each call: use a Redis nothing else uses), and the client's per
read (loopback round trips included, timed apart from those reads).
Run it from a worktree with ``PYTHONPATH=<worktree>`` to compare two
checkouts' scripts. The prefix is deleted at the end.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time
from typing import Any

import msgspec
import redis

from tidings.models import Message
from tidings.state import lua


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--page", type=int, default=100)
    parser.add_argument("--reads", type=int, default=300)
    args = parser.parse_args()

    client = redis.Redis.from_url(args.url)
    prefix = f"tidings_bench_{secrets.token_hex(4)}:cl2:bench.1:"
    scripts = {name: client.register_script(getattr(lua, name)) for name in _SCRIPTS}
    user = 1
    try:
        epoch = fill(scripts, prefix, user, args.conversations)
        took: list[float] = []
        for _ in range(args.reads):
            start = time.perf_counter()
            read_list(scripts, prefix, epoch, user, args.page)
            took.append(time.perf_counter() - start)
        server: dict[str, list[int]] = {name: [] for name in ("INDEX", "UNCOUNTED", "PAGE")}
        for _ in range(args.reads):
            read_list(scripts, prefix, epoch, user, args.page, client, server)
        for name, spent in server.items():
            if spent:
                print(f"{name:9} median {statistics.median(spent):7.0f} µs in Redis")
        print(f"read      median {statistics.median(took) * 1e6:7.0f} µs at the client")
    finally:
        keys = list(client.scan_iter(f"{prefix}*", count=10_000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        client.close()


_SCRIPTS = ("INDEX", "UNCOUNTED", "PAGE", "INSTALL", "FILL")


def fill(scripts: dict[str, Any], prefix: str, user: int, count: int) -> bytes:
    """One user's copy of ``count`` conversations, each with unread messages."""
    epoch, status, generation = scripts["INDEX"](args=[prefix, user, 3600])
    assert status == b"u"
    index, heads = one_users_copy(user, count)
    for start in range(0, len(heads), 100):
        batch = [value for head in heads[start : start + 100] for value in head]
        scripts["FILL"](args=[prefix, epoch, 3600, *batch])
    assert scripts["INSTALL"](args=[prefix, epoch, user, generation, 3600, *index]) == 1
    return bytes(epoch)


def one_users_copy(user: int, count: int) -> tuple[list[Any], list[list[Any]]]:
    """``user``'s index fields, and FILL's 7 values for each of ``count``
    conversations: nine in ten groups, every one unread, some with mentions
    and recalled seqs (``bench/spread_read.py`` fills a cluster with them)."""
    index: list[Any] = []
    heads: list[list[Any]] = []
    for n in range(count):
        group = n % 10 != 0
        cid = f"g:{n + 100}" if group else f"p:{user}-{n + 100}"
        last = 20 + n % 7
        read = last - 1 - n % 5
        sent_at = f"2026-12-05T05:{n // 60 % 60:02d}:{n % 60:02d}.000Z"
        shown = Message(
            id=f"{cid}#{last}",
            conversation=cid,
            seq=last,
            sender=n + 100,
            body="a message of ordinary length, about as long as most are" * 2,
            client_msg_id=None,
            sent_at=sent_at,
            time_separator=False,
        )
        uncounted = ",".join(str(s) for s in (1, last - 2) if n % 3 == 0)
        mentions = f"{last - 1}:{user},{last}:0" if n % 4 == 0 else ""
        named = f"1|group {n}" if group else ""
        head = f"{last}|{last}|{last}|{sent_at}"
        heads.append([cid, b"0", head, msgspec.msgpack.encode(shown), uncounted, mentions, named])
        index += [cid, read]
        if group:
            index += [f"j:{cid}", "1|2026-12-01T00:00:00.000Z"]
    return index, heads


def read_list(
    scripts: dict[str, Any],
    prefix: str,
    epoch: bytes,
    user: int,
    page: int,
    client: redis.Redis | None = None,
    server: dict[str, list[int]] | None = None,
) -> None:
    """What ``RedisChatList.chat_list`` asks Redis (the sort is the node's: left out).

    With ``client`` and ``server``: each script's own time in Redis, from
    ``INFO commandstats`` reset before it (nothing else may use this Redis)."""

    def run(name: str, args: list[Any]) -> Any:
        if client is not None:
            client.config_resetstat()
        answer = scripts[name](args=args)
        if client is not None and server is not None:
            server[name].append(int(client.info("commandstats")["cmdstat_evalsha"]["usec"]))
        return answer

    reply = run("INDEX", [prefix, user, 3600])
    assert reply[1] == b"ok", reply[:2]
    flat, heads = reply[2], reply[3]
    pairs = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
    reads = [(cid, read) for cid, read in pairs if cid[:2] != b"j:" and cid != b"~"]
    asked: list[Any] = []
    for (cid, read), head in zip(reads, heads, strict=True):
        if int(head.split(b"|", 1)[0]) > int(read):
            asked += [cid, read]
    if asked:
        assert run("UNCOUNTED", [prefix, epoch, 3600, *asked]) != 0
    listed = [cid for cid, _ in reads[:page]]
    assert run("PAGE", [prefix, epoch, user, 3600, *listed]) != 0


if __name__ == "__main__":
    main()
