"""A typed async client and SDK for the tidings wire contract (docs/protocol.md).

The SDK in six lines: one user's client that sends, then keeps a
connection open and sees every event, reconnecting and catching up by
itself so that no message is missed or seen twice::

    async with Client("http://127.0.0.1:8080", token) as c:
        await c.send("p:1-2", "hello")
        async for event in c.events():        # {"type": "message", "message": {...}}, ...
            if event["type"] == "message":
                print(event["message"]["body"])

:class:`Client` speaks HTTP and opens :class:`Socket` connections by hand
when you want the frames themselves. Answers decode into the Structs of
:mod:`tidings.models`; every refusal raises :class:`ApiError` with the
contract's error code. Events (``message``, ``read``, ``conversation``,
``push``, ...) stay raw dicts::

    async with Client("http://127.0.0.1:8080") as alice:
        await alice.signup("alice", "correct horse")
        await alice.login("alice", "correct horse")
        async with await alice.connect() as sock:
            sent = await sock.send("p:1-2", "hello", client_msg_id="m1")
            event = await sock.next_event(timeout=5)   # e.g. {"type": "message", ...}
            history = await alice.messages(sent.conversation, after=0)

Keep reading events (``next_event``/``events``): the server cuts off a
connection whose unread backlog grows too large (close code 1013).

:class:`AdminClient` is the business backend's side: the integration API
under ``/api/v1/admin``, authenticated with the server's service token
(create users, mint their tokens, push events, presence, send in a user's
name, manage groups, stats)::

    async with AdminClient("http://127.0.0.1:8080", "s3cret") as admin:
        user = await admin.create_user("alice", "Alice")
        token = await admin.mint_token(user.id)      # hand it to the app's client
        await admin.push({"kind": "order_shipped"}, user_ids=[user.id])
"""

from __future__ import annotations

from tidings.client.admin import AdminClient
from tidings.client.calls import Limits
from tidings.client.conversations import (
    Frame,
    group_conversation,
    message_of,
    private_conversation,
)
from tidings.client.errors import ApiError
from tidings.client.stream import (
    CATCH_UP_PAGE,
    CHAT_LIST_LIMIT,
    FATAL_CLOSE_CODES,
    FIRST_RETRY_DELAY,
    MAX_RETRY_DELAY,
    Client,
)
from tidings.client.transport import Params
from tidings.client.websocket import Socket
from tidings.models import (
    ChatList,
    Conversation,
    Draft,
    File,
    ForwardedFrom,
    Group,
    GroupOnline,
    Message,
    NodeStats,
    ReadBy,
    ReplyTo,
    SearchResults,
    Session,
    Stats,
    User,
)

__all__ = [
    "CATCH_UP_PAGE",
    "CHAT_LIST_LIMIT",
    "FATAL_CLOSE_CODES",
    "FIRST_RETRY_DELAY",
    "MAX_RETRY_DELAY",
    "AdminClient",
    "ApiError",
    "ChatList",
    "Client",
    "Conversation",
    "Draft",
    "File",
    "ForwardedFrom",
    "Frame",
    "Group",
    "GroupOnline",
    "Limits",
    "Message",
    "NodeStats",
    "Params",
    "ReadBy",
    "ReplyTo",
    "SearchResults",
    "Session",
    "Socket",
    "Stats",
    "User",
    "group_conversation",
    "message_of",
    "private_conversation",
]
