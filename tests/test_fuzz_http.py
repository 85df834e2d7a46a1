"""Hostile HTTP: no request, generated or hand-made, gets a 500 or an error outside the contract.

Schemathesis reads the live server's ``/openapi.json`` and sends generated
requests (positive: fitting the schema; negative: breaking it) with a real
user's token. Its requests are synchronous (``requests``), so each run goes
to a worker thread while the in-process server keeps serving on the test's
event loop. Then a table of hand-made hostile requests: malformed JSON,
wrong content types, huge numbers, non-ASCII digits in paths, oversized and
deeply nested bodies, invalid UTF-8, NUL characters.

Every error answer must be ``{"error": {"code", "message"}}`` with a code
of the contract (``method_not_allowed`` only with 405, this server's
documented extension; never ``internal``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import PASSWORD, Account, RunningServer, ServerFactory, private
from tests.contract import CONTRACT_CODES
from tidings.client import Client

MAX_HTTP_BODY = 256 * 1024  # the default TIDINGS_MAX_HTTP_BODY_BYTES
AIOHTTP_MAX_TARGET = 8190  # aiohttp's max_line_size: longer request targets are refused
EXAMPLES_PER_OPERATION = 25
ADMIN_PREFIX = "/api/v1/admin/"
SERVICE_TOKEN = "fuzzing-service-token-0123456789"
# Logging out would revoke the token every other generated request uses; the
# authorization matrix (tests/test_authorization.py) covers that endpoint.
SKIPPED_OPERATIONS = {"DELETE /api/v1/sessions/current"}
# No parameter, no body, no token: a negative case cannot be made (schemathesis
# says so by failing), so these are fuzzed in positive mode only.
NOTHING_TO_BREAK = {"GET /api/v1/limits", "GET /api/v1/push/vapid-key"}
FRAMING_HEADERS = {"content-length", "transfer-encoding", "host", "connection", "expect", "upgrade"}


def contract_error_problem(status: int, body: object) -> str | None:
    """What is wrong with an answer of ``status`` carrying ``body``, or None."""
    if status >= 500 and status != 503:
        return f"server error {status}"
    if status < 400:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return f"{status} without the contract's error body"
    error = body["error"]
    code, message = error.get("code"), error.get("message")
    if not isinstance(message, str) or not isinstance(code, str):
        return f"{status} error body without string code and message"
    if code not in CONTRACT_CODES and not (code == "method_not_allowed" and status == 405):
        return f"{status} with non-contract code {code!r}"
    return None


# -- schemathesis ------------------------------------------------------------


@dataclass
class FuzzReport:
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)


def fuzz_operation(
    operation: schemathesis.APIOperation,
    session: requests.Session,
    base_url: str,
    auth: dict[str, str],
    mode: GenerationMode,
    fixed: dict[str, Any],
    report: FuzzReport,
) -> None:
    """Send ``EXAMPLES_PER_OPERATION`` generated requests; raise on the first bad answer."""
    label = f"{operation.method.upper()} {operation.path}"

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed or None))
    def run(case: schemathesis.Case) -> None:
        # Negative cases may carry made-up headers. A broken Content-Length or
        # Transfer-Encoding breaks HTTP framing itself: aiohttp's parser answers
        # it with plain text before any route runs (like the over-long header
        # case, xfailed below), so it says nothing about the API's contract.
        assume(not FRAMING_HEADERS & {name.lower() for name in (case.headers or {})})
        response = case.call(base_url=base_url, session=session, headers=auth, timeout=30)
        # A negative case's query can be long enough (repeated parameters) to
        # pass aiohttp's limit on the request target, which its parser refuses
        # with plain text before any route runs: the over-long URL case,
        # xfailed below, not something this operation's handler answered.
        assume(len(response.request.path_url or "") <= AIOHTTP_MAX_TARGET)
        report.requests += 1
        report.statuses[response.status_code] += 1
        try:
            body = response.json()
        except ValueError:
            body = response.text
        problem = contract_error_problem(response.status_code, body)
        assert problem is None, f"{label}: {problem}: {body!r:.300}\n{case.as_curl_command()}"
        checks = [not_a_server_error, content_type_conformance, status_code_conformance]
        if mode is GenerationMode.POSITIVE:
            checks.append(response_schema_conformance)
        case.validate_response(response, checks=checks, headers=auth)

    run()


def fuzz_operations(
    schema: schemathesis.BaseSchema,
    base_url: str,
    token: str,
    mode: GenerationMode,
    path_parameters: Callable[[str], dict[str, Any]],
    *,
    admin: bool = False,
) -> FuzzReport:
    """Fuzz the user API's operations of ``schema`` (or, with ``admin``, the
    integration API's) in this thread and collect the failures."""
    report = FuzzReport()
    auth = {"Authorization": f"Bearer {token}"}
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            label = f"{operation.method.upper()} {operation.path}"
            if label in SKIPPED_OPERATIONS:
                continue
            if label in NOTHING_TO_BREAK and mode is GenerationMode.NEGATIVE:
                continue
            if operation.path.startswith(ADMIN_PREFIX) != admin:
                continue
            wanted = path_parameters(operation.path).items()
            fixed = {k: v for k, v in wanted if "{" + k + "}" in operation.path}
            try:
                fuzz_operation(operation, session, base_url, auth, mode, fixed, report)
            # Collect every operation's failures, not just the first (schemathesis
            # raises a BaseExceptionGroup of its check failures).
            except (Exception, BaseExceptionGroup) as exc:
                report.failures.append(f"{label} ({mode.value}): {exc}"[:3000])
    return report


@dataclass
class World:
    """Alice (whose token the fuzzer uses), her conversations and a group."""

    alice: Account
    bob: Account
    group_id: int
    private: str


@pytest.fixture
async def world(alice: Account, bob: Account, carol: Account) -> World:
    group = await alice.client.create_group("fuzzed", [bob.id, carol.id])
    conversation = private(alice, bob)
    await alice.client.send(conversation, "hello bob")
    await bob.client.send(f"g:{group.id}", "hello group")
    return World(alice, bob, group.id, conversation)


async def load_schema(server: RunningServer) -> schemathesis.BaseSchema:
    async with Client(server.url) as anon:
        status, document = await anon.request("GET", "/openapi.json")
    assert status == 200 and isinstance(document, dict)
    return schemathesis.openapi.from_dict(document)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
async def test_generated_requests_with_random_ids_get_no_server_error_and_contract_errors(
    server: RunningServer, world: World, mode: GenerationMode
) -> None:
    schema = await load_schema(server)
    token = world.alice.client.token
    assert token is not None
    report = await asyncio.to_thread(
        fuzz_operations, schema, server.url, token, mode, lambda path: {}
    )
    assert report.requests > 100
    assert not report.failures, "\n\n".join(report.failures)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
async def test_generated_requests_on_real_conversations_get_no_server_error_and_contract_errors(
    server: RunningServer, world: World, mode: GenerationMode
) -> None:
    schema = await load_schema(server)
    token = world.alice.client.token
    assert token is not None

    def real_ids(path: str) -> dict[str, Any]:
        return {
            "conversation": world.private if "messages" in path else f"g:{world.group_id}",
            "group_id": world.group_id,
            "user_id": world.bob.id,
        }

    report = await asyncio.to_thread(fuzz_operations, schema, server.url, token, mode, real_ids)
    assert report.requests > 100
    assert not report.failures, "\n\n".join(report.failures)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
async def test_generated_admin_requests_get_no_server_error_and_contract_errors(
    make_server: ServerFactory, mode: GenerationMode
) -> None:
    server = await make_server(service_token=SERVICE_TOKEN)
    schema = await load_schema(server)
    async with Client(server.url) as owner, Client(server.url) as member:
        first = await owner.signup("fuzzowner", PASSWORD)
        second = await member.signup("fuzzmember", PASSWORD)
        await owner.login("fuzzowner", PASSWORD)
        group = await owner.create_group("fuzzed by the backend", [second.id])
        conversation = f"p:{min(first.id, second.id)}-{max(first.id, second.id)}"
        await owner.send(conversation, "hello")

    def real_ids(path: str) -> dict[str, Any]:
        return {"conversation": conversation, "group_id": group.id, "user_id": second.id}

    report = await asyncio.to_thread(
        fuzz_operations, schema, server.url, SERVICE_TOKEN, mode, real_ids, admin=True
    )
    assert report.requests > 100
    assert not report.failures, "\n\n".join(report.failures)
    # The service token was taken: requests reached the handlers, not just the door.
    assert report.statuses[401] + report.statuses[403] < report.requests, report.statuses
    if mode is GenerationMode.POSITIVE:
        assert sum(n for status, n in report.statuses.items() if status < 300) > 20, report


# -- hand-made hostile requests ----------------------------------------------


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def deep_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


JSON = "application/json"


@dataclass(frozen=True)
class Hostile:
    """One hostile request and the refusal it must get (None: any non-500)."""

    id: str
    method: str
    path: str
    body: bytes | None = None
    status: int | None = None
    code: str | None = None
    content_type: str | None = JSON
    headers: tuple[tuple[str, str], ...] = ()
    anonymous: bool = False


# {mine}: alice and bob's private conversation; {group}: alice's group; {me}: alice's id.
SEND = "/api/v1/conversations/{mine}/messages"
READ = "/api/v1/conversations/{mine}/read"
SIGN_UP = "/api/v1/users"
MEMBERS = "/api/v1/groups/{group}/members"
HOSTILE = [
    # Malformed JSON and bodies that are not objects.
    Hostile("truncated-json", "POST", SEND, b'{"body": "hi"', status=400, code="bad_request"),
    Hostile("trailing-comma", "POST", SEND, b'{"body": "hi",}', status=400, code="bad_request"),
    Hostile("single-quotes", "POST", SEND, b"{'body': 'hi'}", status=400, code="bad_request"),
    Hostile("empty-body", "POST", SEND, b"", status=400, code="bad_request"),
    Hostile("two-documents", "POST", SEND, b'{"body": "a"} {"body": "b"}', 400, "bad_request"),
    Hostile("nan", "POST", READ, b'{"seq": NaN}', status=400, code="bad_request"),
    Hostile("array-body", "POST", SEND, b'["hi"]', status=422, code="bad_request"),
    Hostile("string-body", "POST", SEND, b'"hi"', status=422, code="bad_request"),
    Hostile("null-body", "POST", SEND, b"null", status=422, code="bad_request"),
    Hostile("duplicate-key", "POST", SEND, b'{"body": "hi", "body": 5}', 422, "bad_request"),
    Hostile(
        "json-in-sign-up", "POST", SIGN_UP, b"{", status=400, code="bad_request", anonymous=True
    ),
    # Wrong content types: the body is judged, never the label; none is a 500.
    Hostile(
        "form-encoded",
        "POST",
        SEND,
        b"body=hi",
        400,
        "bad_request",
        "application/x-www-form-urlencoded",
    ),
    Hostile(
        "multipart",
        "POST",
        SEND,
        b'--x\r\nContent-Disposition: form-data; name="body"\r\n\r\nhi\r\n--x--\r\n',
        400,
        "bad_request",
        "multipart/form-data; boundary=x",
    ),
    Hostile("xml", "POST", SEND, b"<body>hi</body>", 400, "bad_request", "application/xml"),
    Hostile("no-content-type", "POST", SEND, b"not json", 400, "bad_request", content_type=None),
    Hostile("json-as-text-plain", "POST", SEND, b'{"body": "hi"}', content_type="text/plain"),
    Hostile(
        "bogus-charset",
        "POST",
        SEND,
        b'{"body": "hi"}',
        content_type="application/json; charset=x-bogus",
    ),
    # Huge and odd numbers.
    Hostile(
        "seq-2**63", "POST", READ, b'{"seq": 9223372036854775808}', status=422, code="bad_request"
    ),
    Hostile("seq-10**400", "POST", READ, b'{"seq": 1' + b"0" * 400 + b"}", 422, "bad_request"),
    Hostile("seq-1e400", "POST", READ, b'{"seq": 1e400}', status=None),
    Hostile("seq-negative", "POST", READ, b'{"seq": -1}', status=422, code="bad_request"),
    Hostile("seq-float", "POST", READ, b'{"seq": 1.5}', status=422, code="bad_request"),
    Hostile("seq-true", "POST", READ, b'{"seq": true}', status=422, code="bad_request"),
    Hostile("seq-string", "POST", READ, b'{"seq": "1"}', status=422, code="bad_request"),
    Hostile(
        "member-2**64", "POST", MEMBERS, b'{"user_ids": [18446744073709551616]}', 422, "bad_request"
    ),
    Hostile(
        "member-10**30",
        "POST",
        MEMBERS,
        b'{"user_id": 1000000000000000000000000000000}',
        422,
        "bad_request",
    ),
    Hostile("member-zero", "POST", MEMBERS, b'{"user_id": 0}', 422, "bad_request"),
    Hostile("member-float", "POST", MEMBERS, b'{"user_id": 2.0}', 422, "bad_request"),
    Hostile(
        "group-member-10**30",
        "POST",
        "/api/v1/groups",
        b'{"name": "x", "member_ids": [1000000000000000000000000000000]}',
        status=422,
        code="bad_request",
    ),
    Hostile(
        "limit-10**30",
        "GET",
        "/api/v1/conversations?limit=1000000000000000000000000000000",
        None,
        422,
        "bad_request",
    ),
    Hostile(
        "limit-arabic-digit", "GET", "/api/v1/conversations?limit=%D9%A3", None, 422, "bad_request"
    ),
    Hostile(
        "limit-superscript", "GET", "/api/v1/conversations?limit=%C2%B2", None, 422, "bad_request"
    ),
    Hostile("limit-empty", "GET", "/api/v1/conversations?limit=", None, 422, "bad_request"),
    Hostile(
        "before-10**30",
        "GET",
        SEND + "?before=1000000000000000000000000000000",
        None,
        422,
        "bad_request",
    ),
    Hostile("after-negative", "GET", SEND + "?after=-1", None, 422, "bad_request"),
    Hostile("before-and-after", "GET", SEND + "?before=5&after=1", None, 422, "bad_request"),
    # Non-ASCII digits and junk in path segments.
    Hostile("user-superscript-two", "GET", "/api/v1/users/²", None, 404, "not_found"),
    Hostile("user-arabic-one", "GET", "/api/v1/users/١", None, 404, "not_found"),
    Hostile("user-fullwidth-one", "GET", "/api/v1/users/１", None, 404, "not_found"),
    Hostile("user-emoji", "GET", "/api/v1/users/😀", None, 404, "not_found"),
    Hostile("user-nul", "GET", "/api/v1/users/%00", None, 404, "not_found"),
    Hostile("user-zero", "GET", "/api/v1/users/0", None, 404, "not_found"),
    Hostile("user-negative", "GET", "/api/v1/users/-1", None, 404, "not_found"),
    Hostile("user-2**63", "GET", "/api/v1/users/9223372036854775808", None, 404, "not_found"),
    Hostile("user-20-digits", "GET", "/api/v1/users/99999999999999999999", None, 404, "not_found"),
    Hostile("group-superscript", "GET", "/api/v1/groups/²", None, 404, "not_found"),
    Hostile(
        "members-superscript",
        "POST",
        "/api/v1/groups/²/members",
        b'{"user_id": 1}',
        status=404,
        code="not_found",
    ),
    Hostile("remove-arabic", "DELETE", "/api/v1/groups/{group}/members/١", None, 404, "not_found"),
    Hostile(
        "conversation-superscripts",
        "GET",
        "/api/v1/conversations/p:¹-²/messages",
        None,
        404,
        "not_found",
    ),
    Hostile("conversation-arabic", "GET", "/api/v1/conversations/g:١", None, 404, "not_found"),
    Hostile(
        "conversation-huge",
        "GET",
        "/api/v1/conversations/g:" + "9" * 40 + "/messages",
        None,
        404,
        "not_found",
    ),
    Hostile(
        "conversation-huge-private",
        "POST",
        "/api/v1/conversations/p:1-" + "9" * 40 + "/messages",
        b'{"body": "x"}',
        status=404,
        code="not_found",
    ),
    Hostile("conversation-nul", "GET", "/api/v1/conversations/g:1%00", None, 404, "not_found"),
    Hostile(
        "conversation-traversal",
        "GET",
        "/api/v1/conversations/..%2F..%2Fme",
        None,
        404,
        "not_found",
    ),
    Hostile("unknown-path", "GET", "/api/v1/nothing/here", None, 404, "not_found"),
    Hostile("wrong-method", "PUT", "/api/v1/me", b"{}", status=405, code="method_not_allowed"),
    # Sizes.
    Hostile(
        "message-body-4001", "POST", SEND, b'{"body": "' + b"x" * 4001 + b'"}', 413, "too_large"
    ),
    Hostile(
        "http-body-over-limit",
        "POST",
        SEND,
        b'{"body": "' + b"x" * MAX_HTTP_BODY + b'"}',
        413,
        "too_large",
    ),
    Hostile(
        "sign-up-over-limit",
        "POST",
        SIGN_UP,
        b'{"username": "' + b"x" * MAX_HTTP_BODY + b'"}',
        413,
        "too_large",
        anonymous=True,
    ),
    # Deep nesting: a parser that recurses must not turn this into a 500.
    Hostile("nested-arrays-10000", "POST", SEND, deep(10_000), status=None, code="bad_request"),
    Hostile(
        "nested-objects-10000", "POST", SEND, deep_object(10_000), status=None, code="bad_request"
    ),
    Hostile(
        "nested-in-field-10000",
        "POST",
        SEND,
        b'{"body": ' + deep(10_000) + b"}",
        status=None,
        code="bad_request",
    ),
    Hostile(
        "nested-sign-up-10000",
        "POST",
        SIGN_UP,
        deep(10_000),
        status=None,
        code="bad_request",
        anonymous=True,
    ),
    Hostile(
        "nested-group-1000",
        "POST",
        "/api/v1/groups",
        b'{"name": "x", "member_ids": ' + deep(1_000) + b"}",
        status=None,
        code="bad_request",
    ),
    # Invalid UTF-8 and odd characters.
    Hostile("invalid-utf8", "POST", SEND, b'{"body": "\xff\xfe"}', status=400, code="bad_request"),
    Hostile("overlong-utf8", "POST", SEND, b'{"body": "\xc0\xaf"}', status=400, code="bad_request"),
    Hostile(
        "utf8-surrogate", "POST", SEND, b'{"body": "\xed\xa0\x80"}', status=400, code="bad_request"
    ),
    Hostile("escaped-lone-surrogate", "POST", SEND, b'{"body": "\\ud800"}', status=None),
    Hostile(
        "utf16-body",
        "POST",
        SEND,
        '{"body": "hi"}'.encode("utf-16"),
        status=400,
        code="bad_request",
    ),
    # NUL is refused everywhere: PostgreSQL cannot store it in text.
    Hostile("nul-in-body", "POST", SEND, b'{"body": "a\\u0000b"}', 422, "bad_request"),
    Hostile(
        "nul-in-client-msg-id",
        "POST",
        SEND,
        b'{"body": "a", "client_msg_id": "\\u0000"}',
        422,
        "bad_request",
    ),
    Hostile(
        "nul-in-group-name", "POST", "/api/v1/groups", b'{"name": "a\\u0000b"}', 422, "bad_request"
    ),
    Hostile(
        "nul-in-display-name",
        "POST",
        SIGN_UP,
        b'{"username": "nulname", "password": "correct horse", "display_name": "a\\u0000b"}',
        422,
        "bad_request",
        anonymous=True,
    ),
    Hostile(
        "nul-in-username",
        "POST",
        SIGN_UP,
        b'{"username": "nul\\u0000x", "password": "correct horse"}',
        status=422,
        code="bad_request",
        anonymous=True,
    ),
    Hostile(
        "nul-in-password",
        "POST",
        "/api/v1/sessions",
        b'{"username": "alice", "password": "\\u0000"}',
        status=401,
        code="unauthorized",
        anonymous=True,
    ),
    Hostile("nul-in-lookup", "GET", "/api/v1/users?username=a%00b", None, 404, "not_found"),
    # Authorization headers that are not a bearer token.
    Hostile(
        "auth-basic",
        "GET",
        "/api/v1/me",
        None,
        401,
        "unauthorized",
        headers=(("Authorization", "Basic YWxpY2U6eA=="),),
        anonymous=True,
    ),
    Hostile(
        "auth-bearer-empty",
        "GET",
        "/api/v1/me",
        None,
        401,
        "unauthorized",
        headers=(("Authorization", "Bearer "),),
        anonymous=True,
    ),
    Hostile(
        "auth-bearer-long",
        "GET",
        "/api/v1/me",
        None,
        401,
        "unauthorized",
        headers=(("Authorization", "Bearer " + "x" * 7000),),
        anonymous=True,
    ),
    Hostile(
        "auth-bearer-latin1",
        "GET",
        "/api/v1/me",
        None,
        401,
        "unauthorized",
        headers=(("Authorization", "Bearer tök\u00e9n"),),
        anonymous=True,
    ),
]


def expand(template: str, world: World) -> str:
    return template.format(mine=world.private, group=world.group_id, me=world.alice.id)


async def send_hostile(server: RunningServer, world: World, case: Hostile) -> tuple[int, object]:
    """Send the request byte for byte, with aiohttp directly (no client-side checks)."""
    headers: dict[str, str] = dict(case.headers)
    if not case.anonymous and "Authorization" not in headers:
        headers["Authorization"] = f"Bearer {world.alice.client.token}"
    if case.content_type is not None and case.body is not None:
        headers["Content-Type"] = case.content_type
    url = server.url + expand(case.path, world)
    async with (
        aiohttp.ClientSession(skip_auto_headers=["Content-Type"]) as http,
        http.request(case.method, url, data=case.body, headers=headers) as response,
    ):
        raw = await response.read()
        try:
            return response.status, await response.json(content_type=None)
        except ValueError:
            return response.status, raw.decode("utf-8", "replace")


@pytest.mark.parametrize("case", HOSTILE, ids=[case.id for case in HOSTILE])
async def test_a_hostile_request_gets_its_contract_refusal_and_never_a_500(
    server: RunningServer, world: World, case: Hostile
) -> None:
    status, body = await send_hostile(server, world, case)
    problem = contract_error_problem(status, body)
    assert problem is None, f"{problem}: {body!r:.300}"
    if case.status is not None:
        assert status == case.status, body
    if case.code is not None:
        assert status >= 400, body
        assert isinstance(body, dict) and body["error"]["code"] == case.code, body


# aiohttp's HTTP parser answers these itself, as text/plain, before any
# middleware runs; the app cannot shape that body today. Kept as the record
# of a gap in the contract's error shape, not as a goal of this suite alone.
ABOVE_THE_APP = pytest.mark.xfail(
    reason="aiohttp answers an over-long request line or header with a plain-text 400",
    strict=False,
)


@ABOVE_THE_APP
async def test_a_url_over_the_line_limit_gets_a_contract_error(
    server: RunningServer, world: World
) -> None:
    case = Hostile("long-url", "GET", "/api/v1/users/" + "1" * 20_000)
    status, body = await send_hostile(server, world, case)
    assert status in (400, 404, 414), body
    assert contract_error_problem(status, body) is None, body


@ABOVE_THE_APP
async def test_a_header_over_the_size_limit_gets_a_contract_error(
    server: RunningServer, world: World
) -> None:
    case = Hostile("long-header", "GET", "/api/v1/me", None, headers=(("X-Junk", "j" * 20_000),))
    status, body = await send_hostile(server, world, case)
    assert status in (400, 431), body
    assert contract_error_problem(status, body) is None, body


async def test_the_server_still_serves_after_the_hostile_requests(
    server: RunningServer, world: World
) -> None:
    for case in HOSTILE:
        await send_hostile(server, world, case)
    sent = await world.alice.client.send(world.private, "still fine")
    assert sent.body == "still fine"
    history = await world.bob.client.messages(world.private)
    assert [m.body for m in history][-1] == "still fine"


# -- client_msg_id: whatever the sender supplied, compared exactly ------------------

NEAR_TWINS = [
    ("case", "retry-key", "RETRY-KEY"),
    ("accent", "cafe-1", "café-1"),
    ("trailing-space", "pad", "pad "),
    ("supplementary-plane", "k-𐀀", "k-𐀁"),
    ("emoji", "k-😀", "k-😁"),
    ("width", "key-1", "key-１"),
]


@pytest.mark.parametrize(
    ("first", "second"),
    [(a, b) for _, a, b in NEAR_TWINS],
    ids=[name for name, _, _ in NEAR_TWINS],
)
async def test_client_msg_ids_that_differ_only_in_collation_are_two_messages(
    server: RunningServer, world: World, first: str, second: str
) -> None:
    alice = world.alice.client
    path = f"/api/v1/conversations/{world.private}/messages"
    one = await alice.request("POST", path, {"body": "one", "client_msg_id": first})
    two = await alice.request("POST", path, {"body": "two", "client_msg_id": second})
    assert one[0] == 201, one
    assert two[0] == 201, two
    assert (two[1]["body"], two[1]["client_msg_id"]) == ("two", second)
    assert two[1]["seq"] == one[1]["seq"] + 1
    again = await alice.request("POST", path, {"body": "three", "client_msg_id": second})
    assert again == (200, two[1])


async def test_a_nul_in_one_send_never_fails_the_sends_committed_with_it(
    server: RunningServer, world: World
) -> None:
    alice, bob = world.alice.client, world.bob.client
    path = f"/api/v1/conversations/{world.private}/messages"
    answers = await asyncio.gather(
        *(alice.request("POST", path, {"body": f"nul {i}\x00"}) for i in range(10)),
        *(bob.request("POST", path, {"body": f"bob {i}"}) for i in range(20)),
    )
    assert all(status == 422 for status, _ in answers[:10]), answers[:10]
    assert [status for status, _ in answers[10:]] == [201] * 20, answers[10:]


async def test_one_users_odd_client_msg_id_never_fails_another_users_send(
    server: RunningServer, world: World
) -> None:
    alice, bob = world.alice.client, world.bob.client
    path = f"/api/v1/conversations/{world.private}/messages"
    await alice.request("POST", path, {"body": "first", "client_msg_id": "twin"})
    answers = await asyncio.gather(
        alice.request("POST", path, {"body": "odd", "client_msg_id": "TWIN"}),
        *(bob.request("POST", path, {"body": f"bob {i}"}) for i in range(20)),
    )
    assert contract_error_problem(*answers[0]) is None, answers[0]
    assert [status for status, _ in answers[1:]] == [201] * 20, answers[1:]
