"""``tidings user|group|push|stats``: the integration API from a shell.

::

    tidings user create NAME [--display-name D]
    tidings user token ID
    tidings user list [--after-id N] [--limit N]
    tidings group create NAME --owner ID [--members 1,2,3]
    tidings group add GROUP USER...
    tidings group remove GROUP USER...
    tidings push (--users 1,2 | --group G | --all) EVENT_JSON
    tidings stats

Each takes ``--url`` (else ``TIDINGS_URL``, else http://127.0.0.1:8080) and
``--service-token`` (else ``TIDINGS_SERVICE_TOKEN``), prints its result as
one line of JSON and exits 0; a refusal of the server, or a server it cannot
reach, is printed to stderr with exit status 1 (bad arguments: 2).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence

import aiohttp
import msgspec

from tidings.client import AdminClient, ApiError

DEFAULT_URL = "http://127.0.0.1:8080"

Handler = Callable[[AdminClient, argparse.Namespace], Awaitable[object]]


def _ids(text: str) -> list[int]:
    """``"1,2, 3"`` -> ``[1, 2, 3]`` (argparse turns a ValueError into a usage error)."""
    return [int(part) for part in text.split(",") if part.strip()]


def _event(text: str) -> object:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        raise argparse.ArgumentTypeError(f"not JSON: {text!r}") from None


async def _user_create(admin: AdminClient, args: argparse.Namespace) -> object:
    return await admin.create_user(args.name, args.display_name)


async def _user_token(admin: AdminClient, args: argparse.Namespace) -> object:
    return {"token": await admin.mint_token(args.id)}


async def _user_list(admin: AdminClient, args: argparse.Namespace) -> object:
    return {"users": await admin.users(args.after_id, args.limit)}


async def _group_create(admin: AdminClient, args: argparse.Namespace) -> object:
    return await admin.create_group(args.name, args.owner, args.members)


async def _group_add(admin: AdminClient, args: argparse.Namespace) -> object:
    group = await admin.group(args.group)
    members = group.member_ids + [u for u in args.users if u not in group.member_ids]
    return await admin.set_members(args.group, members)


async def _group_remove(admin: AdminClient, args: argparse.Namespace) -> object:
    group = await admin.group(args.group)
    members = [u for u in group.member_ids if u not in args.users]
    found = await admin.set_members(args.group, members)
    return found if found is not None else {"id": args.group, "deleted": True}


async def _push(admin: AdminClient, args: argparse.Namespace) -> object:
    reached = await admin.push(
        args.event, user_ids=args.users, group_id=args.group, all=args.everyone
    )
    return {"connections": reached}


async def _stats(admin: AdminClient, args: argparse.Namespace) -> object:
    return await admin.stats()


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"the server (TIDINGS_URL, {DEFAULT_URL})")
    common.add_argument("--service-token", help="its service token (TIDINGS_SERVICE_TOKEN)")

    parser = argparse.ArgumentParser(
        prog="tidings", description="The integration API of a tidings server."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def leaf(
        group: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        handler: Handler,
        help: str,
    ) -> argparse.ArgumentParser:
        sub = group.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    user = commands.add_parser("user", help="create users, mint tokens, list users")
    users = user.add_subparsers(dest="action", required=True)
    create = leaf(users, "create", _user_create, "create a user (no password)")
    create.add_argument("name")
    create.add_argument("--display-name")
    token = leaf(users, "token", _user_token, "mint a token for a user")
    token.add_argument("id", type=int)
    listing = leaf(users, "list", _user_list, "list users, ascending by id")
    listing.add_argument("--after-id", type=int, default=0)
    listing.add_argument("--limit", type=int, default=100)

    group = commands.add_parser("group", help="create groups, add and remove members")
    groups = group.add_subparsers(dest="action", required=True)
    made = leaf(groups, "create", _group_create, "create a group")
    made.add_argument("name")
    made.add_argument("--owner", type=int, required=True, help="the owner's user id")
    made.add_argument("--members", type=_ids, default=[], help="user ids, e.g. 1,2,3")
    for name, handler, what in (("add", _group_add, "add"), ("remove", _group_remove, "remove")):
        change = leaf(groups, name, handler, f"{what} members")
        change.add_argument("group", type=int, metavar="GROUP")
        change.add_argument("users", type=int, nargs="+", metavar="USER")

    push = leaf(commands, "push", _push, "push an event to users' open connections")
    to = push.add_mutually_exclusive_group(required=True)
    to.add_argument("--users", type=_ids, help="user ids, e.g. 1,2")
    to.add_argument("--group", type=int, help="a group id: all its members")
    to.add_argument("--all", dest="everyone", action="store_true", help="everyone online")
    push.add_argument("event", type=_event, metavar="EVENT_JSON")

    leaf(commands, "stats", _stats, "connections per node, users online, messages per second")
    return parser


async def _run(handler: Handler, args: argparse.Namespace, url: str, token: str) -> object:
    async with AdminClient(url, token) as admin:
        return await handler(admin, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one admin command; the exit status (0 done, 1 refused or unreachable)."""
    parser = _parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    token = args.service_token or os.environ.get("TIDINGS_SERVICE_TOKEN")
    if not token:
        parser.error("no service token: pass --service-token or set TIDINGS_SERVICE_TOKEN")
    url = args.url or os.environ.get("TIDINGS_URL") or DEFAULT_URL
    try:
        result = asyncio.run(_run(args.handler, args, url, token))
    except ApiError as exc:
        print(f"tidings: {exc}", file=sys.stderr)
        return 1
    except (aiohttp.ClientError, OSError) as exc:
        print(f"tidings: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    print(msgspec.json.encode(result).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
