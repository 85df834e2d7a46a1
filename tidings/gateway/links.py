"""Signed file links (PROTOCOL-v2 §3): ``/api/v1/files/{id}?exp=…&sig=…``.

A link works without a token until ``exp`` (epoch seconds), so ``<img src>``
works; ``sig`` is an HMAC-SHA256 of the file id, which of its two variants
(the file or its thumbnail) and ``exp``, under one key every node shares
(``TIDINGS_FILE_URL_SECRET``, or a key kept in the database). Links are
signed here, at the edge, each time a message leaves the server (an
answer, an ack, an event): the stored message, and the Redis copy of the
chat list, keep only the file object, so no link is ever served stale.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any, TypeVar
from urllib.parse import quote

import msgspec

from tidings.errors import forbidden
from tidings.models import ChatList, Conversation, Message, SearchResults
from tidings.store import FileRecord

T = TypeVar("T")
# The file object's fields, in the contract's order (the stored one may carry more).
FIELDS = ("id", "name", "size", "content_type", "width", "height", "duration_ms")


class FileLinks:
    def __init__(self, ttl_seconds: float, key: str | None = None) -> None:
        self._ttl = ttl_seconds
        self._key = b"" if key is None else key.encode()

    def use_key(self, key: str) -> None:
        """Set the signing key (read from the database at start when no setting gives it)."""
        self._key = key.encode()

    def path(self, file_id: str, *, thumbnail: bool = False, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self._ttl)
        variant = "&thumbnail=1" if thumbnail else ""
        signature = self._sign(file_id, thumbnail, expires)
        return f"/api/v1/files/{quote(file_id)}?exp={expires}{variant}&sig={signature}"

    def check(self, file_id: str, thumbnail: bool, exp: str | None, sig: str | None) -> None:
        """Raise 403 ``forbidden`` unless ``exp`` and ``sig`` sign this link, unexpired."""
        # isascii: compare_digest refuses (TypeError) a str with other characters.
        if not exp or not sig or not exp.isdigit() or len(exp) > 12 or not sig.isascii():
            raise forbidden("this link is not signed (exp and sig)")
        expected = self._sign(file_id, thumbnail, int(exp))
        if not hmac.compare_digest(expected, sig):
            raise forbidden("this link's signature is wrong")
        if int(exp) < time.time():
            raise forbidden("this link has expired; fetch the message again for a fresh one")

    def _sign(self, file_id: str, thumbnail: bool, expires: int) -> str:
        if not self._key:
            raise RuntimeError("FileLinks used before its key was set")
        text = f"{file_id}\n{'thumbnail' if thumbnail else 'file'}\n{expires}".encode()
        return hmac.new(self._key, text, hashlib.sha256).hexdigest()[:40]

    # -- what leaves the server -------------------------------------------------

    def file_object(self, record: FileRecord) -> dict[str, Any]:
        """The 201 answer of an upload."""
        return self.attachment(
            {
                "id": record.id,
                "name": record.name,
                "size": record.size,
                "content_type": record.content_type,
                "width": record.width,
                "height": record.height,
                "duration_ms": record.duration_ms,
                "thumbnail": record.thumbnail_key is not None,
            }
        )

    def attachment(self, stored: dict[str, Any]) -> dict[str, Any]:
        """A stored file object with fresh ``url`` and ``thumbnail_url``."""
        now = time.time()
        file_id = str(stored["id"])
        shown = {name: stored.get(name) for name in FIELDS}
        shown["url"] = self.path(file_id, now=now)
        shown["thumbnail_url"] = (
            self.path(file_id, thumbnail=True, now=now) if stored.get("thumbnail") else None
        )
        return shown

    def message(self, message: Message) -> Message:
        if message.attachment is None:
            return message
        return msgspec.structs.replace(message, attachment=self.attachment(message.attachment))

    def entry(self, entry: Conversation) -> Conversation:
        last = entry.last_message
        if last is None or last.attachment is None:
            return entry
        return msgspec.structs.replace(entry, last_message=self.message(last))

    def signed(self, value: T) -> T:
        """``value`` (a message, an entry, a chat list, search results, or a list
        of them) with every file object's links signed now."""
        result: Any = value
        if isinstance(value, Message):
            result = self.message(value)
        elif isinstance(value, Conversation):
            result = self.entry(value)
        elif isinstance(value, ChatList):
            result = msgspec.structs.replace(
                value, conversations=[self.entry(c) for c in value.conversations]
            )
        elif isinstance(value, SearchResults):
            result = msgspec.structs.replace(
                value, messages=[self.message(m) for m in value.messages]
            )
        elif isinstance(value, list):
            result = [self.signed(item) for item in value]
        return result  # type: ignore[no-any-return]
