#!/usr/bin/env python3
"""An echo bot: answers every private message with ``echo: <body>``.

Run a server with a service token, then the bot (its account, ``echo`` by
default, is created on the first run)::

    TIDINGS_SERVICE_TOKEN=s3cret tidings serve &
    python examples/echo_bot.py http://127.0.0.1:8080 --service-token s3cret

or, with an account signed up the ordinary way::

    python examples/echo_bot.py http://127.0.0.1:8080 --username echo --password 'correct horse'

``Client.events()`` reconnects and catches up by itself, so a message sent
while the bot or the server was down is still answered once, when it is back.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os

from tidings.client import AdminClient, ApiError, Client, message_of
from tidings.models import User


async def find_or_create(admin: AdminClient, username: str) -> User:
    """The tidings user called ``username``, created if it does not exist yet."""
    try:
        return await admin.create_user(username, "Echo bot")
    except ApiError as exc:
        if exc.code != "username_taken":
            raise
    # The admin API looks users up by id only: walk the list to find the name.
    async for user in admin.iter_users():
        if user.username.lower() == username.lower():
            return user
    raise LookupError(username)


async def bot_token(args: argparse.Namespace) -> str:
    """A token of the bot's account: minted with the service token, or by logging in."""
    if args.service_token:
        async with AdminClient(args.url, args.service_token) as admin:
            user = await find_or_create(admin, args.username)
            return await admin.mint_token(user.id)
    async with Client(args.url) as client:
        session = await client.login(args.username, args.password)
        return session.token


async def run(args: argparse.Namespace) -> None:
    async with Client(args.url, await bot_token(args)) as client:
        me = await client.me()
        print(f"echo bot: user {me.id} ({me.username}) on {args.url}", flush=True)
        # unread=True: messages that came while the bot was away are answered first.
        async for event in client.events(unread=True):
            if event["type"] != "message":
                continue  # read receipts, pushes, new groups: not for a bot
            message = message_of(event)
            if message.sender == me.id or not message.conversation.startswith("p:"):
                continue  # its own answers (events() yields them too), and groups
            # The reply's client_msg_id comes from the message it answers, so an
            # answer retried, or repeated after a restart, is stored only once.
            reply_id = "echo-" + hashlib.sha256(message.id.encode()).hexdigest()[:40]
            await client.send_ws(message.conversation, f"echo: {message.body}"[:4000], reply_id)


def main() -> None:
    parser = argparse.ArgumentParser(description="A tidings bot that echoes private messages.")
    parser.add_argument("url", help="the tidings server, e.g. http://127.0.0.1:8080")
    parser.add_argument(
        "--service-token",
        default=os.environ.get("TIDINGS_SERVICE_TOKEN"),
        help="create the bot's account and mint its token (TIDINGS_SERVICE_TOKEN)",
    )
    parser.add_argument("--username", default="echo", help="the bot's account (default: echo)")
    parser.add_argument("--password", help="log in with this instead of a service token")
    args = parser.parse_args()
    if not args.service_token and not args.password:
        parser.error("give --service-token (or TIDINGS_SERVICE_TOKEN), or --password")
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
