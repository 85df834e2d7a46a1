"""The OpenAPI 3.1 document served at ``/openapi.json``.

Schemas of the values come from the msgspec Structs in ``tidings.models``,
so they cannot drift from what the server encodes; the paths are listed
here next to their request bodies.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from tidings import __version__
from tidings.models import Conversation, Group, Message, Session, User

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
) -> dict[str, Any]:
    """``also``: other success statuses with the same body, e.g. 200 for a repeated send."""
    operation: dict[str, Any] = {"summary": summary, "responses": {}}
    content = {"application/json": {"schema": response}} if response is not None else None
    for status, description in {ok: "success", **(also or {})}.items():
        operation["responses"][str(status)] = {"description": description} | (
            {"content": content} if content else {}
        )
    codes = set(errors) | ({401} if auth else set()) | ({400, 422} if body else set())
    for status in sorted(codes):
        operation["responses"][str(status)] = {
            "description": "error",
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    if auth:
        operation["security"] = [{"bearer": []}]
    if params:
        operation["parameters"] = params
    return operation


def _path(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or _INT}


def _query(name: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": "integer"}}


_CONVERSATION = _path("conversation", {"type": "string", "pattern": r"^(p:\d+-\d+|g:\d+)$"})


@cache
def openapi_document() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [User, Group, Message, Conversation, Session], ref_template="#/components/schemas/{name}"
    )
    components["Error"] = _ERROR
    conversations = _object(
        ["conversations"], conversations={"type": "array", "items": _ref("Conversation")}
    )
    messages = _object(["messages"], messages={"type": "array", "items": _ref("Message")})
    paths: dict[str, Any] = {
        "/api/v1/users": {
            "post": _op(
                "Sign up",
                201,
                _ref("User"),
                auth=False,
                errors=(409,),
                body=_object(
                    ["username", "password"],
                    username=_STRING,
                    password=_STRING,
                    display_name=_STRING,
                ),
            )
        },
        "/api/v1/sessions": {
            "post": _op(
                "Log in",
                200,
                _ref("Session"),
                auth=False,
                errors=(401, 429),
                body=_object(["username", "password"], username=_STRING, password=_STRING),
            )
        },
        "/api/v1/sessions/current": {"delete": _op("Log out", 204)},
        "/api/v1/me": {"get": _op("The caller", 200, _ref("User"))},
        "/api/v1/users/{user_id}": {
            "get": _op("A user", 200, _ref("User"), params=[_path("user_id")], errors=(404,))
        },
        "/api/v1/groups": {
            "post": _op(
                "Create a group",
                201,
                _ref("Group"),
                body=_object(["name"], name=_STRING, member_ids=_IDS),
            )
        },
        "/api/v1/groups/{group_id}": {
            "get": _op("A group", 200, _ref("Group"), params=[_path("group_id")], errors=(403, 404))
        },
        "/api/v1/groups/{group_id}/members": {
            "post": _op(
                "Add members (owner only)",
                200,
                _ref("Group"),
                params=[_path("group_id")],
                body=_object([], user_id=_INT, user_ids=_IDS),
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
                "The chat list, newest first",
                200,
                conversations,
                params=[_query("limit")],
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
            )
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
                body=_object(["body"], body=_STRING, client_msg_id=_STRING),
                errors=(403, 404, 413, 429, 503),
                also={200: _REPEAT},
            ),
        },
        "/api/v1/conversations/{conversation}/read": {
            "post": _op(
                "Mark read up to seq",
                200,
                _ref("Conversation"),
                params=[_CONVERSATION],
                body=_object(["seq"], seq=_INT),
                errors=(403, 404, 503),
            )
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "tidings", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
