"""The OpenAPI 3.1 document served at ``/openapi.json``.

Schemas of the values come from the msgspec Structs in ``tidings.models``,
and of the request bodies from those in ``gateway/requests.py``, so they
cannot drift from what the server encodes and decodes; the paths are
listed here.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from tidings import __version__
from tidings.gateway.requests import BODIES
from tidings.models import (
    ChatList,
    Conversation,
    File,
    Group,
    Message,
    ReadBy,
    SearchResults,
    Session,
    User,
)

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_STRING = {"type": "string"}
_INT = {"type": "integer"}
_IDS = {"type": "array", "items": _INT}


_REPEAT = "a repeat of (sender, client_msg_id): the original message"


def _op(
    summary: str,
    ok: int,
    response: Any = None,
    *,
    body: dict[str, Any] | None = None,
    auth: bool = True,
    params: list[dict[str, Any]] | None = None,
    errors: tuple[int, ...] = (),
    also: dict[int, str] | None = None,
    service: bool = False,
    body_required: bool = True,
) -> dict[str, Any]:
    """``also``: other success statuses with the same body, e.g. 200 for a repeated send."""
    operation: dict[str, Any] = {"summary": summary, "responses": {}}
    content = {"application/json": {"schema": response}} if response is not None else None
    for status, description in {ok: "success", **(also or {})}.items():
        operation["responses"][str(status)] = {"description": description} | (
            {"content": content} if content and status != 204 else {}
        )
    codes = set(errors) | ({401} if auth else set()) | ({400, 422} if body else set())
    if service:  # 401 without the service token; 403 while the admin API is off
        codes |= {401, 403}
    for status in sorted(codes):
        operation["responses"][str(status)] = {
            "description": "error",
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    if body is not None:
        operation["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": body}},
        }
    if service:
        operation["security"] = [{"service": []}]
    elif auth:
        operation["security"] = [{"bearer": []}]
    if params:
        operation["parameters"] = params
    return operation


def _path(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or _INT}


def _query(name: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": "integer"}}


def _optional_string(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": _STRING,
    }


_SEARCH_Q = {
    "name": "q",
    "in": "query",
    "required": True,
    "description": "1 to 100 characters after trimming white space; a case-insensitive "
    "substring in any script",
    "schema": {"type": "string", "minLength": 1, "maxLength": 100},
}

_CONVERSATION = _path("conversation", {"type": "string", "pattern": r"^(p:\d+-\d+|g:\d+)$"})


def _upload_operation() -> dict[str, Any]:
    """PROTOCOL-v2 §3's upload: the raw bytes, or a multipart form's ``file`` field."""
    operation = _op(
        "Upload a file (PROTOCOL-v2 section 3); its type is found from the bytes",
        201,
        _ref("File"),
        errors=(413, 422, 429, 503),
        params=[
            _optional_string("name", "the file's name (its path and control characters go)"),
            {
                "name": "duration_ms",
                "in": "query",
                "required": False,
                "description": "audio only: the recorded length, kept when the container "
                "gives none (a tidings extension)",
                "schema": {"type": "integer", "minimum": 1, "maximum": 3_600_000},
            },
        ],
    )
    binary = {"type": "string", "format": "binary"}
    operation["requestBody"] = {
        "required": True,
        "content": {
            "application/octet-stream": {"schema": binary},
            "multipart/form-data": {"schema": _object(["file"], file=binary)},
        },
    }
    return operation


def _download_operation() -> dict[str, Any]:
    """A file's bytes: by a signed link (no token), or with a token."""
    operation = _op(
        "A file's bytes (or its thumbnail): a signed link, or a token of its uploader or "
        "of a member who can see a message carrying it",
        200,
        errors=(403, 404, 416, 422),
        params=[
            _path("file_id", {"type": "string"}),
            _optional_string("thumbnail", "1 or true: the thumbnail (images only)")
            | {"schema": {"type": "string", "enum": ["1", "0", "true", "false"]}},
            _optional_string("exp", "a signed link's expiry (epoch seconds)"),
            _optional_string("sig", "a signed link's signature"),
        ],
    )
    binary = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    operation["responses"]["200"]["content"] = binary
    operation["responses"]["206"] = {"description": "one range (Range)", "content": binary}
    operation["responses"]["304"] = {"description": "not modified (If-None-Match)"}
    operation["security"] = [{"bearer": []}, {}]
    return operation


@cache
def openapi_document() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [
            User,
            Group,
            Message,
            Conversation,
            ChatList,
            ReadBy,
            SearchResults,
            Session,
            File,
            *BODIES,
        ],
        ref_template="#/components/schemas/{name}",
    )
    components["Error"] = _ERROR
    messages = _object(["messages"], messages={"type": "array", "items": _ref("Message")})
    paths: dict[str, Any] = {
        "/api/v1/users": {
            "post": _op(
                "Sign up",
                201,
                _ref("User"),
                auth=False,
                errors=(409,),
                body=_ref("SignUp"),
            )
        },
        "/api/v1/sessions": {
            "post": _op(
                "Log in",
                200,
                _ref("Session"),
                auth=False,
                errors=(401, 429),
                body=_ref("LogIn"),
            )
        },
        "/api/v1/sessions/current": {"delete": _op("Log out", 204)},
        "/api/v1/me": {
            "get": _op("The caller", 200, _ref("User")),
            "patch": _op(
                "Set the caller's display name (its online peers get a conversation event)",
                200,
                _ref("User"),
                body=_ref("UpdateMe"),
            ),
        },
        "/api/v1/me/password": {
            "post": _op(
                "Change the caller's password (every other session is revoked)",
                204,
                body=_ref("ChangePassword"),
                errors=(403, 429),
            )
        },
        "/api/v1/users/{user_id}": {
            "get": _op("A user", 200, _ref("User"), params=[_path("user_id")], errors=(404,))
        },
        "/api/v1/groups": {
            "post": _op(
                "Create a group",
                201,
                _ref("Group"),
                body=_ref("CreateGroup"),
            )
        },
        "/api/v1/groups/{group_id}": {
            "get": _op(
                "A group", 200, _ref("Group"), params=[_path("group_id")], errors=(403, 404)
            ),
            "patch": _op(
                "Rename, announce, mute all (owner and admins; PROTOCOL-v2 §6)",
                200,
                _ref("Group"),
                params=[_path("group_id")],
                body=_ref("PatchGroup"),
                errors=(403, 404),
            ),
            "delete": _op(
                "Dissolve the group (owner only)",
                204,
                params=[_path("group_id")],
                errors=(403, 404),
            ),
        },
        "/api/v1/groups/{group_id}/admins": {
            "put": _op(
                "Set the admins (owner only)",
                200,
                _ref("Group"),
                params=[_path("group_id")],
                body=_ref("SetAdmins"),
                errors=(403, 404),
            )
        },
        "/api/v1/groups/{group_id}/owner": {
            "post": _op(
                "Hand the group to another member (owner only)",
                200,
                _ref("Group"),
                params=[_path("group_id")],
                body=_ref("SetOwner"),
                errors=(403, 404),
            )
        },
        "/api/v1/groups/{group_id}/mutes/{user_id}": {
            "put": _op(
                "Mute a member for some seconds (owner and admins)",
                200,
                _ref("Group"),
                params=[_path("group_id"), _path("user_id")],
                body=_ref("MuteMember"),
                errors=(403, 404),
            ),
            "delete": _op(
                "Unmute a member (owner and admins)",
                200,
                _ref("Group"),
                params=[_path("group_id"), _path("user_id")],
                errors=(403, 404),
            ),
        },
        "/api/v1/groups/{group_id}/members": {
            "post": _op(
                "Add members (owner and admins)",
                200,
                _ref("Group"),
                params=[_path("group_id")],
                body=_ref("AddMembers"),
                errors=(403, 404),
            )
        },
        "/api/v1/groups/{group_id}/members/{user_id}": {
            "delete": _op(
                "Remove a member, or leave",
                204,
                params=[_path("group_id"), _path("user_id")],
                errors=(403, 404),
            )
        },
        "/api/v1/conversations": {
            "get": _op(
                "The chat list: pinned first, then newest first; total_unread (PROTOCOL-v2 §5)",
                200,
                _ref("ChatList"),
                params=[
                    _query("limit"),
                    {
                        "name": "hidden",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "boolean"},
                        "description": "true: hidden entries too",
                    },
                ],
                errors=(422,),
            )
        },
        "/api/v1/conversations/{conversation}": {
            "get": _op(
                "One chat-list entry",
                200,
                _ref("Conversation"),
                params=[_CONVERSATION],
                errors=(403, 404),
            ),
            "patch": _op(
                "Pin, mute, hide, mark unread or keep a draft (PROTOCOL-v2 §5): the entry",
                200,
                _ref("Conversation"),
                params=[_CONVERSATION],
                body=_ref("PatchEntry"),
                errors=(403, 404, 413),
            ),
        },
        "/api/v1/conversations/{conversation}/messages": {
            "get": _op(
                "History, ascending by seq",
                200,
                messages,
                errors=(403, 404, 422),
                params=[_CONVERSATION, _query("before"), _query("after"), _query("limit")],
            ),
            "post": _op(
                "Send a message",
                201,
                _ref("Message"),
                params=[_CONVERSATION],
                body=_ref("Send"),
                errors=(403, 404, 413, 429, 503),
                also={200: _REPEAT},
            ),
        },
        "/api/v1/files": {"post": _upload_operation()},
        "/api/v1/files/{file_id}": {"get": _download_operation()},
        "/api/v1/search/messages": {
            "get": _op(
                "Search the messages the caller can see now (PROTOCOL-v2 §7), newest first",
                200,
                _ref("SearchResults"),
                errors=(403, 404, 422),
                params=[
                    _SEARCH_Q,
                    _optional_string("conversation", "only this conversation (one you are in)"),
                    _optional_string("before", "the next_before of the previous page"),
                    _query("limit") | {"schema": {"type": "integer", "minimum": 1, "maximum": 50}},
                ],
            )
        },
        "/api/v1/push/vapid-key": {
            "get": _op(
                "The VAPID application server key (PROTOCOL-v2 section 8), base64url",
                200,
                _object(["key"], key=_STRING),
                auth=False,
                errors=(503,),
            )
        },
        "/api/v1/push/subscriptions": {
            "post": _op(
                "Subscribe a browser to offline pushes; the same endpoint again replaces it"
                " (at most 10 a minute per user)",
                201,
                body=_ref("PushSubscribe"),
                errors=(429, 503),
            ),
            "delete": _op(
                "Unsubscribe the caller's browser at this endpoint",
                204,
                body=_ref("PushUnsubscribe"),
                errors=(503,),
            ),
        },
        "/api/v1/conversations/{conversation}/messages/{seq}/recall": {
            "post": _op(
                "Recall a message (PROTOCOL-v2 section 4): the recall notice",
                201,
                _ref("Message"),
                params=[_CONVERSATION, _path("seq")],
                body=_ref("Recall"),
                body_required=False,
                errors=(403, 404, 429, 503),
                also={200: "already recalled: the same notice"},
            )
        },
        "/api/v1/conversations/{conversation}/messages/{seq}/edit": {
            "post": _op(
                "Edit a text message (PROTOCOL-v2 section 4): the edit notice",
                201,
                _ref("Message"),
                params=[_CONVERSATION, _path("seq")],
                body=_ref("Edit"),
                errors=(403, 404, 413, 429, 503),
                also={200: _REPEAT},
            )
        },
        "/api/v1/conversations/{conversation}/messages/{seq}/reads": {
            "get": _op(
                "Who read a message (PROTOCOL-v2 section 6): for its sender or the group's owner",
                200,
                _ref("ReadBy"),
                params=[_CONVERSATION, _path("seq")],
                errors=(403, 404, 422),
            )
        },
        "/api/v1/limits": {
            "get": _op(
                "Limits a client checks before it offers a send, a recall or an edit",
                200,
                _object(
                    ["max_body_chars", "max_mentions", "recall_seconds", "edit_seconds"],
                    max_body_chars=_INT,
                    max_mentions=_INT,
                    recall_seconds={"type": "number"},
                    edit_seconds={"type": "number"},
                ),
                auth=False,
            )
        },
        "/api/v1/conversations/{conversation}/read": {
            "post": _op(
                "Mark read up to seq",
                200,
                _ref("Conversation"),
                params=[_CONVERSATION],
                body=_ref("Read"),
                errors=(403, 404, 503),
            )
        },
    }
    paths.update(_admin_paths())
    return {
        "openapi": "3.1.0",
        "info": {"title": "tidings", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "a user's token"},
                "service": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the service token (TIDINGS_SERVICE_TOKEN)",
                },
            },
        },
    }


def _admin_paths() -> dict[str, Any]:
    """The integration API, for a business backend (the service token)."""
    base = "/api/v1/admin"
    user = [_path("user_id")]
    group = [_path("group_id")]
    users = _object(["users"], users={"type": "array", "items": _ref("User")})
    online = {"type": "object", "additionalProperties": {"type": "boolean"}}
    node = _object(
        ["node", "connections", "users_online", "messages_per_second"],
        node=_STRING,
        connections=_INT,
        users_online=_INT,
        messages_per_second={"type": "number"},
    )
    return {
        f"{base}/users": {
            "post": _op(
                "Create a user without a password",
                201,
                _ref("User"),
                service=True,
                errors=(409,),
                body=_ref("AdminCreateUser"),
            ),
            "get": _op(
                "Users, ascending by id",
                200,
                users,
                service=True,
                params=[_query("after_id"), _query("limit")],
                errors=(422,),
            ),
        },
        f"{base}/users/{{user_id}}": {
            "get": _op("A user", 200, _ref("User"), service=True, params=user, errors=(404,)),
            "patch": _op(
                "Set a display name",
                200,
                _ref("User"),
                service=True,
                params=user,
                body=_ref("AdminUpdateUser"),
                errors=(404,),
            ),
        },
        f"{base}/users/{{user_id}}/tokens": {
            "post": _op(
                "Mint a token for the user",
                201,
                _object(["token"], token=_STRING),
                service=True,
                params=user,
                errors=(404,),
            ),
            "delete": _op(
                "Revoke every token of the user (closes its sockets)",
                204,
                service=True,
                params=user,
                errors=(404,),
            ),
        },
        f"{base}/push": {
            "post": _op(
                "Push any JSON to users, a group or everyone",
                200,
                _object(["connections"], connections=_INT),
                service=True,
                body=_ref("AdminPush"),
                errors=(404,),
            )
        },
        f"{base}/presence": {
            "get": _op(
                "Who is online, on any node",
                200,
                _object(["online"], online=online),
                service=True,
                params=[
                    {
                        "name": "user_ids",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "example": "1,2,3"},
                    }
                ],
                errors=(422,),
            )
        },
        f"{base}/conversations/{{conversation}}/messages": {
            "post": _op(
                "Send a message in a user's name",
                201,
                _ref("Message"),
                service=True,
                params=[_CONVERSATION],
                body=_ref("AdminSend"),
                errors=(403, 404, 413, 503),
                also={200: _REPEAT},
            )
        },
        f"{base}/conversations/{{conversation}}/messages/{{seq}}/recall": {
            "post": _op(
                "A moderation recall at any time (or, with by, as that member)",
                201,
                _ref("Message"),
                service=True,
                params=[_CONVERSATION, _path("seq")],
                body=_ref("AdminRecall"),
                body_required=False,
                errors=(403, 404, 503),
                also={200: "already recalled: the same notice"},
            )
        },
        f"{base}/groups": {
            "post": _op(
                "Create a group owned by a user",
                201,
                _ref("Group"),
                service=True,
                body=_ref("AdminCreateGroup"),
                errors=(404,),
            )
        },
        f"{base}/groups/{{group_id}}": {
            "get": _op("A group", 200, _ref("Group"), service=True, params=group, errors=(404,)),
            "patch": _op(
                "Rename, announce, mute all",
                200,
                _ref("Group"),
                service=True,
                params=group,
                body=_ref("PatchGroup"),
                errors=(403, 404),
            ),
            "delete": _op("Delete a group", 204, service=True, params=group, errors=(404,)),
        },
        f"{base}/groups/{{group_id}}/members": {
            "put": _op(
                "Set the members (none left: the group is deleted, 204)",
                200,
                _ref("Group"),
                service=True,
                params=group,
                body=_ref("AdminSetMembers"),
                errors=(404,),
                also={204: "everyone removed: the group is gone"},
            )
        },
        f"{base}/groups/{{group_id}}/admins": {
            "put": _op(
                "Set the admins",
                200,
                _ref("Group"),
                service=True,
                params=group,
                body=_ref("SetAdmins"),
                errors=(404,),
            )
        },
        f"{base}/groups/{{group_id}}/owner": {
            "post": _op(
                "Hand the group to a member",
                200,
                _ref("Group"),
                service=True,
                params=group,
                body=_ref("SetOwner"),
                errors=(404,),
            )
        },
        f"{base}/groups/{{group_id}}/mutes/{{user_id}}": {
            "put": _op(
                "Mute a member",
                200,
                _ref("Group"),
                service=True,
                params=[*group, _path("user_id")],
                body=_ref("MuteMember"),
                errors=(403, 404),
            ),
            "delete": _op(
                "Unmute a member",
                200,
                _ref("Group"),
                service=True,
                params=[*group, _path("user_id")],
                errors=(403, 404),
            ),
        },
        f"{base}/groups/{{group_id}}/dissolve": {
            "post": _op(
                "Dissolve a group (history stays with its members)",
                204,
                service=True,
                params=group,
                errors=(403, 404),
            )
        },
        f"{base}/groups/{{group_id}}/online": {
            "get": _op(
                "Online members of a group",
                200,
                _object(
                    ["members", "online", "connections"],
                    members=_INT,
                    online=_INT,
                    connections=_INT,
                ),
                service=True,
                params=group,
                errors=(404,),
            )
        },
        f"{base}/stats": {
            "get": _op(
                "Connections and messages per second, per node",
                200,
                _object(
                    ["connections", "nodes"],
                    connections=_INT,
                    nodes={"type": "array", "items": node},
                ),
                service=True,
            )
        },
    }
