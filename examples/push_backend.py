#!/usr/bin/env python3
"""A backend that sends tidings' offline pushes itself (to FCM, APNs, …): a tiny aiohttp app.

tidings decides who gets a push (no open connection on any node, not
muted unless mentioned, one per user and conversation per collapse
window) and, with ``TIDINGS_WEBHOOK_URL`` set, POSTs that decision signed
with the service token::

    {"type": "push", "user_id": 2, "conversation": "p:1-2", "seq": 7,
     "title": "Alice", "body": "are you there?", "total_unread": 3}

This app checks the signature, keeps the ``push`` bodies (other webhook
events are ignored here) and hands each to ``forward``: replace it with
your FCM or APNs call, looking up the user's device tokens in your own
database. Answer 2xx quickly; tidings retries a 5xx with backoff::

    TIDINGS_SERVICE_TOKEN=s3cret TIDINGS_WEBHOOK_URL=http://127.0.0.1:8001/tidings tidings serve &
    python examples/push_backend.py --service-token s3cret
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger("push_backend")

Forward = Callable[[dict[str, Any]], Awaitable[None]]


def signed(secret: str, body: bytes, header: str) -> bool:
    """Whether ``header`` (``X-Tidings-Signature``) signs ``body``; compared in constant time."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


async def log_push(push: dict[str, Any]) -> None:
    """Stands in for FCM/APNs: a real app sends ``title``/``body`` and the badge
    ``total_unread`` to each device of ``user_id``, collapsed by ``conversation``."""
    log.info(
        "push to user %s: %s: %s (badge %s)",
        push["user_id"],
        push["title"],
        push["body"],
        push["total_unread"],
    )


def make_app(service_token: str, forward: Forward = log_push) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        if not signed(service_token, body, request.headers.get("X-Tidings-Signature", "")):
            return web.Response(status=401)
        event = json.loads(body)
        if event.get("type") == "push":
            await forward(event)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/tidings", receive)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Receive tidings' push webhooks.")
    parser.add_argument(
        "--service-token",
        default=os.environ.get("TIDINGS_SERVICE_TOKEN"),
        help="the service token (TIDINGS_SERVICE_TOKEN): webhooks are signed with it",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    if not args.service_token:
        parser.error("give --service-token or set TIDINGS_SERVICE_TOKEN")
    logging.basicConfig(level=logging.INFO)
    web.run_app(make_app(args.service_token), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
