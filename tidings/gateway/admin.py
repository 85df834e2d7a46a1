"""The integration API under ``/api/v1/admin``, for a business backend.

Every route needs ``Authorization: Bearer <service token>``. With no
``TIDINGS_SERVICE_TOKEN`` configured the whole API is off (403), so a
deployment never exposes it by accident.
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from tidings.errors import ErrorCode, TidingsError, bad_request
from tidings.gateway.context import Edge
from tidings.gateway.http import (
    json_response,
    parse_id,
    path_id,
    query_int,
    read_json,
    string_field,
)
from tidings.ids import MAX_BIGINT, GroupId, UserId
from tidings.service.admin import Admin
from tidings.service.groups import user_ids_field


def _admin(request: web.Request) -> Admin:
    edge = request.app[Edge.KEY]
    expected = edge.settings.service_token
    if not expected:
        raise TidingsError(
            ErrorCode.FORBIDDEN, "the admin API is off: set TIDINGS_SERVICE_TOKEN to enable it"
        )
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.encode()
    ):
        raise TidingsError(ErrorCode.UNAUTHORIZED, "send Authorization: Bearer <service token>")
    return edge.admin


def _user_id(request: web.Request) -> UserId:
    return UserId(path_id(request, "user_id"))


def _group_id(request: web.Request) -> GroupId:
    return GroupId(path_id(request, "group_id"))


async def create_user(request: web.Request) -> web.Response:
    admin = _admin(request)
    body = await read_json(request)
    user = await admin.create_user(
        string_field(body, "username"), string_field(body, "display_name", required=False)
    )
    return json_response(user, 201)


async def list_users(request: web.Request) -> web.Response:
    admin = _admin(request)
    found = await admin.users(
        query_int(request, "after_id") or 0, query_int(request, "limit") or 100
    )
    return json_response({"users": found})


async def get_user(request: web.Request) -> web.Response:
    return json_response(await _admin(request).user(_user_id(request)))


async def update_user(request: web.Request) -> web.Response:
    admin = _admin(request)
    body = await read_json(request)
    user = await admin.set_display_name(_user_id(request), string_field(body, "display_name"))
    return json_response(user)


async def mint_token(request: web.Request) -> web.Response:
    token = await _admin(request).mint_token(_user_id(request))
    return json_response({"token": token}, 201)


async def revoke_tokens(request: web.Request) -> web.Response:
    await _admin(request).revoke_tokens(_user_id(request))
    return web.Response(status=204)


async def push(request: web.Request) -> web.Response:
    admin = _admin(request)
    body = await read_json(request)
    if "event" not in body:
        raise bad_request("event: any JSON value is required")
    user_ids = user_ids_field(body["user_ids"], "user_ids") if "user_ids" in body else None
    group = body.get("group_id")
    if group is not None and (
        isinstance(group, bool) or not isinstance(group, int) or not 0 < group <= MAX_BIGINT
    ):
        raise bad_request("group_id: an integer")
    everyone = body.get("all", False)
    if not isinstance(everyone, bool):
        raise bad_request("all: true or false")
    count = await admin.push(
        body["event"],
        user_ids=user_ids,
        group=GroupId(group) if group is not None else None,
        everyone=everyone,
    )
    return json_response({"connections": count})


async def presence(request: web.Request) -> web.Response:
    admin = _admin(request)
    text = request.query.get("user_ids", "")
    parsed = [parse_id(part.strip()) for part in text.split(",") if part.strip()]
    if any(p is None for p in parsed):
        raise bad_request("user_ids: comma-separated user ids, e.g. ?user_ids=1,2,3")
    ids = [UserId(p) for p in parsed if p is not None]
    if not ids:
        raise bad_request("user_ids: give at least one, e.g. ?user_ids=1,2,3")
    online = await admin.presence(ids)
    return json_response({"online": {str(user): up for user, up in online.items()}})


async def send_as(request: web.Request) -> web.Response:
    admin = _admin(request)
    body = await read_json(request)
    sender = body.get("sender_id")
    if isinstance(sender, bool) or not isinstance(sender, int) or not 0 < sender <= MAX_BIGINT:
        raise bad_request("sender_id: a user id")
    stored = await admin.send_as(
        UserId(sender),
        request.match_info["conversation"],
        body.get("body"),
        body.get("client_msg_id"),
    )
    return json_response(stored.message, 201 if stored.fresh else 200)


async def create_group(request: web.Request) -> web.Response:
    admin = _admin(request)
    body = await read_json(request)
    owner = body.get("owner_id")
    if isinstance(owner, bool) or not isinstance(owner, int) or not 0 < owner <= MAX_BIGINT:
        raise bad_request("owner_id: a user id")
    group = await admin.create_group(UserId(owner), body.get("name"), body.get("member_ids", []))
    return json_response(group, 201)


async def get_group(request: web.Request) -> web.Response:
    return json_response(await _admin(request).group(_group_id(request)))


async def set_members(request: web.Request) -> web.Response:
    admin = _admin(request)
    body = await read_json(request)
    members = user_ids_field(body.get("member_ids"), "member_ids")
    group = await admin.set_members(_group_id(request), members)
    if group is None:
        return web.Response(status=204)  # everyone removed: the group is gone
    return json_response(group)


async def delete_group(request: web.Request) -> web.Response:
    await _admin(request).delete_group(_group_id(request))
    return web.Response(status=204)


async def group_online(request: web.Request) -> web.Response:
    return json_response(await _admin(request).group_online(_group_id(request)))


async def stats(request: web.Request) -> web.Response:
    nodes = await _admin(request).stats()
    result: dict[str, Any] = {"connections": sum(n.connections for n in nodes), "nodes": nodes}
    return json_response(result)


def add_routes(app: web.Application) -> None:
    base = "/api/v1/admin"
    app.router.add_routes(
        [
            web.post(f"{base}/users", create_user),
            web.get(f"{base}/users", list_users),
            web.get(f"{base}/users/{{user_id}}", get_user),
            web.patch(f"{base}/users/{{user_id}}", update_user),
            web.post(f"{base}/users/{{user_id}}/tokens", mint_token),
            web.delete(f"{base}/users/{{user_id}}/tokens", revoke_tokens),
            web.post(f"{base}/push", push),
            web.get(f"{base}/presence", presence),
            web.post(f"{base}/conversations/{{conversation}}/messages", send_as),
            web.post(f"{base}/groups", create_group),
            web.get(f"{base}/groups/{{group_id}}", get_group),
            web.put(f"{base}/groups/{{group_id}}/members", set_members),
            web.delete(f"{base}/groups/{{group_id}}", delete_group),
            web.get(f"{base}/groups/{{group_id}}/online", group_online),
            web.get(f"{base}/stats", stats),
        ]
    )
