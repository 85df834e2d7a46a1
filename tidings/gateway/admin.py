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
from tidings.gateway import requests
from tidings.gateway.context import Edge
from tidings.gateway.files import receive
from tidings.gateway.http import (
    json_response,
    parse_id,
    path_id,
    query_int,
    read_body,
    read_optional_body,
)
from tidings.ids import GroupId, UserId
from tidings.service.admin import Admin
from tidings.service.groups import Groups


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
    body = await read_body(request, requests.AdminCreateUser)
    user = await admin.create_user(body.username, body.display_name)
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
    body = await read_body(request, requests.AdminUpdateUser)
    user = await admin.set_display_name(_user_id(request), body.display_name)
    return json_response(user)


async def mint_token(request: web.Request) -> web.Response:
    token = await _admin(request).mint_token(_user_id(request))
    return json_response({"token": token}, 201)


async def revoke_tokens(request: web.Request) -> web.Response:
    await _admin(request).revoke_tokens(_user_id(request))
    return web.Response(status=204)


async def push(request: web.Request) -> web.Response:
    admin = _admin(request)
    body = await read_body(request, requests.AdminPush)
    count = await admin.push(
        body.event,
        user_ids=None if body.user_ids is None else [UserId(u) for u in body.user_ids],
        group=None if body.group_id is None else GroupId(body.group_id),
        everyone=body.all,
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
    body = await read_body(request, requests.AdminSend)
    stored = await admin.send_as(
        UserId(body.sender_id),
        request.match_info["conversation"],
        body.body,
        body.client_msg_id,
        body.extras(),
    )
    return json_response(
        request.app[Edge.KEY].links.signed(stored.message), 201 if stored.fresh else 200
    )


async def upload_as(request: web.Request) -> web.Response:
    """PROTOCOL-v2 §3 for a business backend: an upload in a user's name, which
    that user (or the backend, with ``sender_id``) then sends by its ``file_id``."""
    admin = _admin(request)
    user = _user_id(request)
    await admin.user(user)  # 404 for a user that does not exist
    edge = request.app[Edge.KEY]
    record = await receive(request, edge, user)
    return json_response(edge.links.file_object(record), 201)


async def recall(request: web.Request) -> web.Response:
    """A moderation recall (any message, any time), or one ``by`` a member with its rights."""
    admin = _admin(request)
    body = await read_optional_body(request, requests.AdminRecall)
    stored = await admin.recall(
        None if body.by is None else UserId(body.by),
        request.match_info["conversation"],
        path_id(request, "seq"),
        body.client_msg_id,
    )
    return json_response(stored.message, 201 if stored.fresh else 200)


async def create_group(request: web.Request) -> web.Response:
    admin = _admin(request)
    body = await read_body(request, requests.AdminCreateGroup)
    group = await admin.create_group(
        UserId(body.owner_id), body.name, [UserId(u) for u in body.member_ids]
    )
    return json_response(group, 201)


async def get_group(request: web.Request) -> web.Response:
    return json_response(await _admin(request).group(_group_id(request)))


async def set_members(request: web.Request) -> web.Response:
    admin = _admin(request)
    body = await read_body(request, requests.AdminSetMembers)
    group = await admin.set_members(_group_id(request), [UserId(u) for u in body.member_ids])
    if group is None:
        return web.Response(status=204)  # everyone removed: the group is gone
    return json_response(group)


async def delete_group(request: web.Request) -> web.Response:
    await _admin(request).delete_group(_group_id(request))
    return web.Response(status=204)


# PROTOCOL-v2 §6 run by the business backend: as the owner may, with
# ``system.actor`` null in each notice.


def _groups(request: web.Request) -> Groups:
    _admin(request)  # the service token
    return request.app[Edge.KEY].groups


async def update_group(request: web.Request) -> web.Response:
    groups = _groups(request)
    body = await read_body(request, requests.PatchGroup)
    return json_response(await groups.update(None, _group_id(request), **body.fields()))


async def set_admins(request: web.Request) -> web.Response:
    groups = _groups(request)
    body = await read_body(request, requests.SetAdmins)
    ids = [UserId(u) for u in body.user_ids]
    return json_response(await groups.set_admins(None, _group_id(request), ids))


async def set_owner(request: web.Request) -> web.Response:
    groups = _groups(request)
    body = await read_body(request, requests.SetOwner)
    return json_response(await groups.transfer(None, _group_id(request), UserId(body.user_id)))


async def mute_member(request: web.Request) -> web.Response:
    groups = _groups(request)
    body = await read_body(request, requests.MuteMember)
    user = UserId(path_id(request, "user_id"))
    return json_response(await groups.mute(None, _group_id(request), user, body.seconds))


async def unmute_member(request: web.Request) -> web.Response:
    groups = _groups(request)
    user = UserId(path_id(request, "user_id"))
    return json_response(await groups.unmute(None, _group_id(request), user))


async def dissolve_group(request: web.Request) -> web.Response:
    await _groups(request).dissolve(None, _group_id(request))
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
            web.post(f"{base}/users/{{user_id}}/files", upload_as),
            web.delete(f"{base}/users/{{user_id}}/tokens", revoke_tokens),
            web.post(f"{base}/push", push),
            web.get(f"{base}/presence", presence),
            web.post(f"{base}/conversations/{{conversation}}/messages", send_as),
            web.post(f"{base}/conversations/{{conversation}}/messages/{{seq}}/recall", recall),
            web.post(f"{base}/groups", create_group),
            web.get(f"{base}/groups/{{group_id}}", get_group),
            web.put(f"{base}/groups/{{group_id}}/members", set_members),
            web.delete(f"{base}/groups/{{group_id}}", delete_group),
            web.get(f"{base}/groups/{{group_id}}/online", group_online),
            web.patch(f"{base}/groups/{{group_id}}", update_group),
            web.put(f"{base}/groups/{{group_id}}/admins", set_admins),
            web.post(f"{base}/groups/{{group_id}}/owner", set_owner),
            web.put(f"{base}/groups/{{group_id}}/mutes/{{user_id}}", mute_member),
            web.delete(f"{base}/groups/{{group_id}}/mutes/{{user_id}}", unmute_member),
            web.post(f"{base}/groups/{{group_id}}/dissolve", dissolve_group),
            web.get(f"{base}/stats", stats),
        ]
    )
