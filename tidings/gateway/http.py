"""The HTTP API of the contract: thin handlers that parse, call one service
function, and serialize. Errors of every kind leave as the contract's
``{"error": {"code", "message"}}`` body, never as a bare 500 page.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from tidings.errors import ErrorCode, TidingsError, bad_request, not_found
from tidings.gateway import requests
from tidings.gateway.context import Edge
from tidings.gateway.openapi import openapi_document
from tidings.gateway.requests import Body, decode_body
from tidings.ids import GroupId, UserId, parse_conversation
from tidings.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from tidings.models import now_ms

log = logging.getLogger(__name__)

_encode = msgspec.json.Encoder().encode

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encode(value), status=status, content_type="application/json")


def error_response(code: ErrorCode | str, message: str, status: int) -> web.Response:
    return json_response({"error": {"code": str(code), "message": message}}, status)


_STATUS_CODES: dict[int, ErrorCode] = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.TOO_LARGE,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.UNAVAILABLE,
}


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except TidingsError as exc:
        return _refusal(request, exc.code, exc.message, exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _STATUS_CODES.get(exc.status, ErrorCode.BAD_REQUEST)
        response = _refusal(request, code, exc.reason, exc.status)
        # Headers the status needs (Allow for 405, Sec-WebSocket-Version for 426).
        for name, value in exc.headers.items():
            if name.lower() not in ("content-type", "content-length"):
                response.headers[name] = value
        return response
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return _refusal(request, ErrorCode.INTERNAL, "internal error", 500)


def _refusal(request: web.Request, code: ErrorCode, message: str, status: int) -> web.Response:
    request.app[Edge.KEY].metrics.errors.labels(code.value, "http").inc()
    return error_response(code, message, status)


# -- request parsing --------------------------------------------------------


async def read_body(request: web.Request, kind: type[Body]) -> Body:
    """The request's JSON body as a ``kind`` (``gateway/requests.py``), decoded once."""
    return decode_body(await request.read(), kind)


async def read_optional_body(request: web.Request, kind: type[Body]) -> Body:
    """Like ``read_body``, but no body at all reads as ``{}`` (every field optional)."""
    raw = await request.read()
    return decode_body(raw if raw.strip() else b"{}", kind)


# Ids and numbers in URLs: ASCII digits only (str.isdigit() also takes "²" and
# "١"), and within a signed 64-bit integer, which every database can store.
_PATH_ID = re.compile(r"[1-9][0-9]{0,17}")
_QUERY_INT = re.compile(r"-?[0-9]{1,18}")


def parse_id(text: str) -> int | None:
    """A positive id in ASCII digits, or None."""
    return int(text) if _PATH_ID.fullmatch(text) else None


def path_id(request: web.Request, name: str) -> int:
    text = request.match_info[name]
    if not _PATH_ID.fullmatch(text):
        raise not_found(f"no such {name.replace('_', ' ')}: {text!r}")
    return int(text)


def query_int(request: web.Request, name: str) -> int | None:
    text = request.query.get(name)
    if text is None:
        return None
    if not _QUERY_INT.fullmatch(text):
        raise bad_request(f"{name}: an integer of at most 18 digits")
    return int(text)


def query_bool(request: web.Request, name: str) -> bool:
    """``?name=true`` or ``false`` (also 1 and 0); absent is false."""
    text = request.query.get(name)
    if text is None:
        return False
    if text not in ("true", "false", "1", "0"):
        raise bad_request(f"{name}: true or false")
    return text in ("true", "1")


async def authenticated_user(request: web.Request, edge: Edge) -> UserId:
    """The user of the request's bearer token; 401 ``unauthorized`` without a good one."""
    return await _user(request, edge)


async def _user(request: web.Request, edge: Edge) -> UserId:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TidingsError(ErrorCode.UNAUTHORIZED, "send Authorization: Bearer <token>")
    return await edge.accounts.authenticate(token.strip())


def client_address(request: web.Request) -> str:
    """The client's address; behind a trusted proxy, the last X-Forwarded-For hop."""
    edge = request.app[Edge.KEY]
    if edge.settings.trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[-1].strip()
    return request.remote or ""


def _token(request: web.Request) -> str:
    return request.headers.get("Authorization", "").partition(" ")[2].strip()


# -- handlers ---------------------------------------------------------------


async def sign_up(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    body = await read_body(request, requests.SignUp)
    user = await edge.accounts.sign_up(body.username, body.password, body.display_name)
    return json_response(user, 201)


async def log_in(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    body = await read_body(request, requests.LogIn)
    session = await edge.accounts.log_in(body.username, body.password, client_address(request))
    return json_response(session)


async def log_out(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    await _user(request, edge)
    await edge.accounts.log_out(_token(request))
    return web.Response(status=204)


async def me(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    return json_response(await edge.accounts.user(await _user(request, edge)))


async def update_me(request: web.Request) -> web.Response:
    """``PATCH /api/v1/me``: the caller's new display name; its online peers hear of it."""
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    body = await read_body(request, requests.UpdateMe)
    return json_response(await edge.accounts.set_display_name(user, body.display_name))


async def change_password(request: web.Request) -> web.Response:
    """``POST /api/v1/me/password``: every other session of the caller is revoked."""
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    body = await read_body(request, requests.ChangePassword)
    await edge.accounts.change_password(
        user, _token(request), body.current, body.new, client_address(request)
    )
    return web.Response(status=204)


async def get_user(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    await _user(request, edge)
    return json_response(await edge.accounts.user(UserId(path_id(request, "user_id"))))


async def find_user(request: web.Request) -> web.Response:
    """``GET /api/v1/users?username=NAME``: look a user up by name (any case)."""
    edge = request.app[Edge.KEY]
    await _user(request, edge)
    username = request.query.get("username")
    if not username:
        raise bad_request("username: give ?username=NAME")
    return json_response(await edge.accounts.find(username))


async def create_group(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    body = await read_body(request, requests.CreateGroup)
    group = await edge.groups.create(user, body.name, [UserId(u) for u in body.member_ids])
    return json_response(group, 201)


async def get_group(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    return json_response(await edge.groups.get(user, GroupId(path_id(request, "group_id"))))


async def add_members(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    gid = GroupId(path_id(request, "group_id"))
    body = await read_body(request, requests.AddMembers)
    ids = [UserId(u) for u in body.ids()]
    return json_response(await edge.groups.add(user, gid, ids))


async def remove_member(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    gid = GroupId(path_id(request, "group_id"))
    await edge.groups.remove(user, gid, UserId(path_id(request, "user_id")))
    return web.Response(status=204)


async def update_group(request: web.Request) -> web.Response:
    """``PATCH /api/v1/groups/{id}``: name, announcement, muted_all (PROTOCOL-v2 §6)."""
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    gid = GroupId(path_id(request, "group_id"))
    body = await read_body(request, requests.PatchGroup)
    return json_response(await edge.groups.update(user, gid, **body.fields()))


async def set_admins(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    gid = GroupId(path_id(request, "group_id"))
    body = await read_body(request, requests.SetAdmins)
    return json_response(
        await edge.groups.set_admins(user, gid, [UserId(u) for u in body.user_ids])
    )


async def set_owner(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    gid = GroupId(path_id(request, "group_id"))
    body = await read_body(request, requests.SetOwner)
    return json_response(await edge.groups.transfer(user, gid, UserId(body.user_id)))


async def dissolve_group(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    await edge.groups.dissolve(user, GroupId(path_id(request, "group_id")))
    return web.Response(status=204)


async def mute_member(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    gid = GroupId(path_id(request, "group_id"))
    body = await read_body(request, requests.MuteMember)
    target = UserId(path_id(request, "user_id"))
    return json_response(await edge.groups.mute(user, gid, target, body.seconds))


async def unmute_member(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    gid = GroupId(path_id(request, "group_id"))
    target = UserId(path_id(request, "user_id"))
    return json_response(await edge.groups.unmute(user, gid, target))


async def chat_list(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    with_hidden = query_bool(request, "hidden")
    found = await edge.chat_lists.chat_list(
        user, query_int(request, "limit"), with_hidden=with_hidden
    )
    return json_response(edge.links.signed(found))


async def update_entry(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    body = await read_body(request, requests.PatchEntry)
    entry = await edge.chat_lists.update_entry(
        user, request.match_info["conversation"], body.change(now_ms())
    )
    return json_response(edge.links.signed(entry))


async def get_conversation(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    ref = parse_conversation(request.match_info["conversation"])
    if ref is None:
        raise not_found(f"no conversation {request.match_info['conversation']!r}")
    return json_response(edge.links.signed(await edge.conversations.entry(user, ref)))


async def history(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    found = await edge.conversations.history(
        user,
        request.match_info["conversation"],
        before=query_int(request, "before"),
        after=query_int(request, "after"),
        limit=query_int(request, "limit"),
    )
    return json_response({"messages": edge.links.signed(found)})


async def vapid_key(request: web.Request) -> web.Response:
    """PROTOCOL-v2 §8: the key a browser passes to ``pushManager.subscribe``."""
    return json_response({"key": request.app[Edge.KEY].push.vapid_key()})


async def subscribe_push(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    body = await read_body(request, requests.PushSubscribe)
    await edge.push.subscribe(
        user, body.endpoint, body.keys.p256dh, body.keys.auth, body.expiration_time
    )
    return web.Response(status=201)


async def unsubscribe_push(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    body = await read_body(request, requests.PushUnsubscribe)
    await edge.push.unsubscribe(user, body.endpoint)
    return web.Response(status=204)


async def search_messages(request: web.Request) -> web.Response:
    """PROTOCOL-v2 §7."""
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    found = await edge.search.messages(
        user,
        request.query.get("q"),
        conversation=request.query.get("conversation"),
        before=request.query.get("before"),
        limit=query_int(request, "limit"),
    )
    return json_response(edge.links.signed(found))


async def send(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    body = await read_body(request, requests.Send)
    stored = await edge.conversations.send(
        user, request.match_info["conversation"], body.body, body.client_msg_id, body.extras()
    )
    return json_response(edge.links.signed(stored.message), 201 if stored.fresh else 200)


async def recall(request: web.Request) -> web.Response:
    """PROTOCOL-v2 §4: 201 with the recall notice; 200 with it again for a repeat."""
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    body = await read_optional_body(request, requests.Recall)
    stored = await edge.conversations.recall(
        user, request.match_info["conversation"], path_id(request, "seq"), body.client_msg_id
    )
    return json_response(stored.message, 201 if stored.fresh else 200)


async def edit(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    body = await read_body(request, requests.Edit)
    stored = await edge.conversations.edit(
        user,
        request.match_info["conversation"],
        path_id(request, "seq"),
        body.body,
        body.client_msg_id,
    )
    return json_response(stored.message, 201 if stored.fresh else 200)


async def read_by(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    seq = path_id(request, "seq")
    found = await edge.conversations.read_by(user, request.match_info["conversation"], seq)
    return json_response(found)


async def limits(request: web.Request) -> web.Response:
    """What a client needs to know before it offers a send, a recall or an edit."""
    return json_response(request.app[Edge.KEY].conversations.limits())


async def mark_read(request: web.Request) -> web.Response:
    edge = request.app[Edge.KEY]
    user = await _user(request, edge)
    body = await read_body(request, requests.Read)
    entry = await edge.conversations.mark_read(user, request.match_info["conversation"], body.seq)
    return json_response(edge.links.signed(entry))


async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document())


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves requests."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the database answers and, with several nodes, Redis carries events.

    ``node`` names the node that answered (with ``--workers``, the worker).
    """
    edge = request.app[Edge.KEY]
    checks = await edge.readiness()
    ready = all(state == "ok" for state in checks.values())
    body = {"ready": ready, "node": edge.node, "checks": checks}
    return json_response(body, 200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[Edge.KEY].metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = METRICS_CONTENT_TYPE
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_routes(
        [
            web.post("/api/v1/users", sign_up),
            web.post("/api/v1/sessions", log_in),
            web.delete("/api/v1/sessions/current", log_out),
            web.get("/api/v1/me", me),
            web.patch("/api/v1/me", update_me),
            web.post("/api/v1/me/password", change_password),
            web.get("/api/v1/users", find_user),
            web.get("/api/v1/users/{user_id}", get_user),
            web.post("/api/v1/groups", create_group),
            web.get("/api/v1/groups/{group_id}", get_group),
            web.post("/api/v1/groups/{group_id}/members", add_members),
            web.delete("/api/v1/groups/{group_id}/members/{user_id}", remove_member),
            web.patch("/api/v1/groups/{group_id}", update_group),
            web.delete("/api/v1/groups/{group_id}", dissolve_group),
            web.put("/api/v1/groups/{group_id}/admins", set_admins),
            web.post("/api/v1/groups/{group_id}/owner", set_owner),
            web.put("/api/v1/groups/{group_id}/mutes/{user_id}", mute_member),
            web.delete("/api/v1/groups/{group_id}/mutes/{user_id}", unmute_member),
            web.get("/api/v1/conversations", chat_list),
            web.get("/api/v1/conversations/{conversation}", get_conversation),
            web.patch("/api/v1/conversations/{conversation}", update_entry),
            web.get("/api/v1/conversations/{conversation}/messages", history),
            web.post("/api/v1/conversations/{conversation}/messages", send),
            web.post("/api/v1/conversations/{conversation}/messages/{seq}/recall", recall),
            web.post("/api/v1/conversations/{conversation}/messages/{seq}/edit", edit),
            web.get("/api/v1/conversations/{conversation}/messages/{seq}/reads", read_by),
            web.post("/api/v1/conversations/{conversation}/read", mark_read),
            web.get("/api/v1/search/messages", search_messages),
            web.get("/api/v1/push/vapid-key", vapid_key),
            web.post("/api/v1/push/subscriptions", subscribe_push),
            web.delete("/api/v1/push/subscriptions", unsubscribe_push),
            web.get("/api/v1/limits", limits),
            web.get("/openapi.json", openapi),
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/metrics", metrics),
        ]
    )
