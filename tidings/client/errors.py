"""ApiError: every refusal of the contract as one exception, from HTTP or a frame, so
callers branch on the contract's ``code`` whichever way the answer came."""

from __future__ import annotations


class ApiError(Exception):
    """An error answer of the server: HTTP (``status`` set) or a WebSocket error frame.

    Branch on ``code`` (``"not_member"``, ``"rate_limited"``, ...), not on the
    message. Two codes come from this client, not the server: ``"closed"``
    (the socket closed before the answer came) and ``"unexpected"`` (an
    answer of the wrong type). ``body`` holds the decoded answer, if any.
    :meth:`Client.events` raises ``"unauthorized"`` with ``body``
    ``{"close_code": 4001 or 4003}`` when the server closes its socket for a
    refused or revoked token.
    """

    def __init__(self, status: int | None, code: str, message: str, *, body: object = None):
        where = "ws" if status is None else f"HTTP {status}"
        super().__init__(f"{where} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body

    @property
    def retryable(self) -> bool:
        """True when the same request may succeed later (with the same ``client_msg_id``):
        a closed socket, storage down, a rate limit, or a 5xx."""
        if self.code in ("closed", "unavailable", "rate_limited"):
            return True
        return self.status is not None and (self.status == 429 or self.status >= 500)


def error_of(status: int | None, body: object) -> ApiError:
    """The ApiError for an HTTP error body or a WebSocket error frame."""
    detail: object = body
    if status is not None:
        detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, dict) and isinstance(detail.get("code"), str):
        message = detail.get("message")
        return ApiError(status, detail["code"], str(message or ""), body=body)
    fallback = "unexpected" if status is None else f"http_{status}"
    text = body if isinstance(body, str) else repr(body)
    return ApiError(status, fallback, text[:300], body=body)
