"""The error codes of the contract and the one exception that carries them.

Every refusal the server gives, over HTTP or WebSocket, is a ``TidingsError``
with a code from docs/protocol.md; the edges turn it into a status and a body.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    BAD_REQUEST = "bad_request"
    UNKNOWN_TYPE = "unknown_type"
    NOT_MEMBER = "not_member"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    USERNAME_TAKEN = "username_taken"
    UNAVAILABLE = "unavailable"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    INTERNAL = "internal"
    # PROTOCOL-v2 §10
    RECALL_EXPIRED = "recall_expired"
    EDIT_EXPIRED = "edit_expired"
    MUTED = "muted"
    GROUP_DISSOLVED = "group_dissolved"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.BAD_REQUEST: 422,
    ErrorCode.UNKNOWN_TYPE: 422,
    ErrorCode.NOT_MEMBER: 403,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.USERNAME_TAKEN: 409,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.INTERNAL: 500,
    ErrorCode.RECALL_EXPIRED: 403,
    ErrorCode.EDIT_EXPIRED: 403,
    ErrorCode.MUTED: 403,
    ErrorCode.GROUP_DISSOLVED: 403,
}


class TidingsError(Exception):
    """A refusal with a contract code; ``status`` overrides the usual HTTP status."""

    def __init__(self, code: ErrorCode, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status if status is not None else HTTP_STATUS[code]

    def __repr__(self) -> str:
        return f"TidingsError({self.code.value!r}, {self.message!r})"


def bad_request(message: str) -> TidingsError:
    return TidingsError(ErrorCode.BAD_REQUEST, message)


def not_found(message: str) -> TidingsError:
    return TidingsError(ErrorCode.NOT_FOUND, message)


def not_member(conversation: str) -> TidingsError:
    return TidingsError(ErrorCode.NOT_MEMBER, f"you are not a member of {conversation}")


def unavailable(
    message: str = "storage is unavailable; retry with the same client_msg_id",
) -> TidingsError:
    return TidingsError(ErrorCode.UNAVAILABLE, message)


def forbidden(message: str) -> TidingsError:
    return TidingsError(ErrorCode.FORBIDDEN, message)


# A driver or client library that is an optional extra of the package.
_EXTRAS = {
    "asyncpg": "postgres",
    "asyncmy": "mysql",
    "redis": "redis",
    "aiobotocore": "s3",
    "psutil": "bench",
    "pyarrow": "archive",
}


def missing_extra(module: str) -> str:
    """What to install when importing ``module`` failed: its extra, if it is one."""
    top = module.partition(".")[0]
    extra = _EXTRAS.get(top)
    if extra is None:
        return f"the Python module {module!r} is missing"
    return f"{top} is not installed; it is in the {extra} extra: pip install 'tidings[{extra}]'"
