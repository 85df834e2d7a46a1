#!/usr/bin/env python3
"""A business backend that signs its own users in to tidings: a tiny aiohttp app.

The app owns its users (here a hard-coded table) and checks their
passwords itself; tidings only learns their names. On login the app makes
sure the tidings user exists and mints a token for it through the admin
API, then hands the browser ``{"tidings_url", "token"}``: from there the
browser talks to tidings directly (``GET /ws``, ``{"type": "auth", "token"}``)::

    TIDINGS_SERVICE_TOKEN=s3cret tidings serve &
    python examples/backend_app.py --service-token s3cret &
    curl -s localhost:8000/login -d '{"username": "alice", "password": "wonderland"}'
    # {"tidings_url": "http://127.0.0.1:8080", "token": "...", "user": {...}}
"""

from __future__ import annotations

import argparse
import hmac
import os
from collections.abc import AsyncIterator

from aiohttp import web

from tidings.client import AdminClient, ApiError
from tidings.models import User

# The app's own accounts: username -> (password, display name). A real app has a database.
DEMO_USERS = {
    "alice": ("wonderland", "Alice Liddell"),
    "bob": ("the builder", "Bob"),
}

FORM = """<!doctype html>
<title>Demo shop: sign in</title>
<form method="post" action="/login">
  <input name="username" placeholder="alice"> <input name="password" type="password">
  <button>Sign in</button>
</form>
"""

ADMIN = web.AppKey("admin", AdminClient)
TIDINGS_URL = web.AppKey("tidings_url", str)
KNOWN = web.AppKey("known", dict[str, int])  # username -> tidings user id


async def tidings_user(app: web.Application, username: str, display_name: str) -> User:
    """The tidings account of one of our users, created on its first login."""
    admin = app[ADMIN]
    if username in app[KNOWN]:
        return await admin.user(app[KNOWN][username])
    try:
        user = await admin.create_user(username, display_name)
    except ApiError as exc:
        if exc.code != "username_taken":
            raise
        # Created before this process started: the admin API finds users by id
        # only, so walk the list once (a real app stores the id with its user).
        found = [u async for u in admin.iter_users() if u.username.lower() == username]
        if not found:
            raise
        user = found[0]
    app[KNOWN][username] = user.id
    return user


async def form(request: web.Request) -> web.Response:
    return web.Response(text=FORM, content_type="text/html")


async def login(request: web.Request) -> web.Response:
    """POST /login, JSON or a form: ``{"username", "password"}`` -> a tidings token."""
    if request.content_type == "application/json":
        given = await request.json()
        if not isinstance(given, dict):
            raise web.HTTPBadRequest(text="send a JSON object")
    else:
        given = dict(await request.post())
    username = str(given.get("username", "")).lower()
    password = str(given.get("password", ""))
    known = DEMO_USERS.get(username)
    if known is None or not hmac.compare_digest(known[0].encode(), password.encode()):
        return web.json_response({"error": "wrong username or password"}, status=401)
    user = await tidings_user(request.app, username, known[1])
    token = await request.app[ADMIN].mint_token(user.id)
    return web.json_response(
        {
            "tidings_url": request.app[TIDINGS_URL],
            "token": token,
            "user": {"id": user.id, "username": user.username, "display_name": user.display_name},
        }
    )


def make_app(tidings_url: str, service_token: str) -> web.Application:
    """The backend app, talking to the tidings server at ``tidings_url``."""
    app = web.Application()
    app[TIDINGS_URL] = tidings_url
    app[KNOWN] = {}

    async def admin_client(app: web.Application) -> AsyncIterator[None]:
        app[ADMIN] = AdminClient(tidings_url, service_token)
        yield
        await app[ADMIN].close()

    app.cleanup_ctx.append(admin_client)
    app.router.add_get("/", form)
    app.router.add_post("/login", login)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="A demo backend that logs users in to tidings.")
    parser.add_argument("--tidings-url", default="http://127.0.0.1:8080")
    parser.add_argument(
        "--service-token",
        default=os.environ.get("TIDINGS_SERVICE_TOKEN"),
        help="the tidings server's service token (TIDINGS_SERVICE_TOKEN)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    if not args.service_token:
        parser.error("give --service-token or set TIDINGS_SERVICE_TOKEN")
    web.run_app(make_app(args.tidings_url, args.service_token), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
