"""Accounts and sessions: sign up, log in, log out, who a token belongs to,
and what a user changes of its own account (display name, password).

Passwords are hashed with argon2 in a worker thread (it takes tens of
milliseconds of CPU by design and must not stall the event loop). Tokens
are 32 random bytes; only their SHA-256 is stored, and a node keeps a
bounded cache of token -> user so a request costs no query.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections import OrderedDict

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from tidings.errors import ErrorCode, TidingsError, bad_request, not_found
from tidings.events import ConversationAdded, Event, Publisher, SessionRevoked
from tidings.ids import UserId
from tidings.models import Session, User
from tidings.presence import Presence
from tidings.ratelimit import TokenBucket
from tidings.service.text import without_nul
from tidings.store import Store

USERNAME = re.compile(r"[A-Za-z0-9_.\-]{3,32}")
MAX_DISPLAY_NAME = 64
_TOKEN_CACHE_SIZE = 100_000
# A rename builds its peers' entries this many at a time; up to this many
# peers, all of them get the event, online or not; past it, the online only.
_PEERS_PER_QUERY = 500
TELL_EVERY_PEER_UP_TO = 1000


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(
        self,
        store: Store,
        broker: Publisher,
        hasher: PasswordHasher,
        *,
        presence: Presence | None = None,
        login_failures_per_minute: int = 20,
    ) -> None:
        self._store = store
        self._broker = broker
        self._hasher = hasher
        self._presence = presence
        self._failures_per_minute = login_failures_per_minute
        self._failures: dict[str, TokenBucket] = {}
        self._tokens: OrderedDict[str, UserId] = OrderedDict()
        # Verified against when a username is unknown, so a wrong username
        # costs as long as a wrong password and names cannot be probed.
        self._decoy_hash = hasher.hash(secrets.token_hex(16))

    async def sign_up(self, username: str, password: str, display_name: str | None) -> User:
        check_username(username)
        check_password(password)
        name = check_display_name(display_name) if display_name is not None else username
        password_hash = await asyncio.to_thread(self._hasher.hash, password)
        return await self._store.create_user(username, name, password_hash)

    async def create_user(self, username: str, display_name: str | None) -> User:
        """A user without a password, for a business backend that logs users in itself."""
        check_username(username)
        name = check_display_name(display_name) if display_name is not None else username
        return await self._store.create_user(username, name, None)

    async def log_in(self, username: str, password: str, address: str = "") -> Session:
        """A new session; ``rate_limited`` once ``address`` failed too often lately."""
        failures = self._failure_bucket(address)
        _check_not_limited(failures)
        found = await self._store.credentials(username) if USERNAME.fullmatch(username) else None
        stored_hash = found[1] if found is not None else None
        ok = await asyncio.to_thread(self._verify, stored_hash or self._decoy_hash, password)
        if found is None or stored_hash is None or not ok:
            if failures is not None:
                failures.take()
            raise TidingsError(ErrorCode.UNAUTHORIZED, "wrong username or password")
        return Session(token=await self.issue_token(UserId(found[0].id)), user=found[0])

    async def set_display_name(self, user_id: UserId, display_name: str) -> User:
        """Rename a user (``PATCH /api/v1/me``, and the integration API's rename).

        Chat lists take titles from the users table when read, so every
        fetch after this shows the new name; the user's peers that are
        online get their private entry at once, as a ``conversation`` event.
        """
        updated = await self._store.set_display_name(user_id, check_display_name(display_name))
        if updated is None:
            raise not_found(f"no user {user_id}")
        await self._tell_peers(user_id)
        return updated

    async def _tell_peers(self, user_id: UserId) -> None:
        peers = await self._store.private_peers(user_id)
        if not peers:
            return
        # Presence lags a socket just opened on another node by a Redis round
        # trip: asking it could miss a peer that connected a moment ago. So
        # every peer is told (the hub drops events for users not connected)
        # unless there are so many that only the online ones are worth it.
        if len(peers) > TELL_EVERY_PEER_UP_TO and self._presence is not None:
            try:
                counts = await self._presence.connections(peers)
            except TidingsError:
                pass  # presence unknown (Redis away): tell every peer, as if online
            else:
                peers = [peer for peer in peers if counts.get(peer)]
        for start in range(0, len(peers), _PEERS_PER_QUERY):
            chunk = peers[start : start + _PEERS_PER_QUERY]
            entries = await self._store.peer_entries(user_id, chunk)
            for peer, entry in entries.items():
                self._broker.publish(ConversationAdded(peer, entry))

    async def change_password(
        self, user_id: UserId, token: str, current: str, new: str, address: str = ""
    ) -> None:
        """Set a new password; every other session of the user is revoked.

        The session of ``token`` (the one that asked) stays. A wrong
        ``current`` is ``forbidden`` and counts as a failed login from
        ``address``, under the same limit.
        """
        check_password(new, "new")
        failures = self._failure_bucket(address)
        _check_not_limited(failures)
        stored_hash = await self._store.password_hash(user_id)
        ok = await asyncio.to_thread(self._verify, stored_hash or self._decoy_hash, current)
        if stored_hash is None or not ok:
            if failures is not None:
                failures.take()
            raise TidingsError(ErrorCode.FORBIDDEN, "current: not the password of this account")
        new_hash = await asyncio.to_thread(self._hasher.hash, new)
        revoked = await self._store.set_password_hash(
            user_id, new_hash, keep_session=hash_token(token)
        )
        for token_hash in revoked:
            self._tokens.pop(token_hash, None)
            self._broker.publish(SessionRevoked(token_hash))

    def _failure_bucket(self, address: str) -> TokenBucket | None:
        per_minute = self._failures_per_minute
        if per_minute <= 0:
            return None
        bucket = self._failures.get(address)
        if bucket is None:
            if len(self._failures) > 10_000:
                self._failures = {a: b for a, b in self._failures.items() if not b.idle()}
            bucket = self._failures[address] = TokenBucket(per_minute / 60, burst=per_minute)
        return bucket

    async def issue_token(self, user: UserId) -> str:
        token = secrets.token_urlsafe(32)
        token_hash = hash_token(token)
        await self._store.create_session(token_hash, user)
        self._remember(token_hash, user)
        return token

    async def log_out(self, token: str) -> None:
        token_hash = hash_token(token)
        await self._store.delete_session(token_hash)
        self._tokens.pop(token_hash, None)
        self._broker.publish(SessionRevoked(token_hash))

    async def authenticate(self, token: str) -> UserId:
        """The user a token belongs to, or ``unauthorized``."""
        token_hash = hash_token(token)
        user = self._tokens.get(token_hash)
        if user is not None:
            self._tokens.move_to_end(token_hash)
            return user
        user = await self._store.session_user(token_hash)
        if user is None:
            raise TidingsError(ErrorCode.UNAUTHORIZED, "the token is missing, wrong or revoked")
        self._remember(token_hash, user)
        return user

    def hear(self, event: Event) -> None:
        """The broker's subscriber: a token revoked on any node leaves this node's cache."""
        if isinstance(event, SessionRevoked):
            self._tokens.pop(event.token_hash, None)

    async def user(self, user_id: UserId) -> User:
        found = await self._store.user(user_id)
        if found is None:
            raise not_found(f"no user {user_id}")
        return found

    async def find(self, username: str) -> User:
        """The user with this username, ignoring case."""
        found = await self._store.credentials(username) if USERNAME.fullmatch(username) else None
        if found is None:
            raise not_found(f"no user named {username!r}")
        return found[0]

    def _remember(self, token_hash: str, user: UserId) -> None:
        self._tokens[token_hash] = user
        if len(self._tokens) > _TOKEN_CACHE_SIZE:
            self._tokens.popitem(last=False)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


def _check_not_limited(failures: TokenBucket | None) -> None:
    if failures is not None and failures.empty():
        raise TidingsError(
            ErrorCode.RATE_LIMITED, "too many failed password attempts from here; wait a minute"
        )


def check_username(username: str) -> None:
    if not USERNAME.fullmatch(username):
        raise bad_request("username: 3 to 32 characters of A-Z a-z 0-9 _ . -")


def check_password(password: str, field: str = "password") -> None:
    if not 8 <= len(password) <= 256:
        raise bad_request(f"{field}: 8 to 256 characters")


def check_display_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= MAX_DISPLAY_NAME:
        raise bad_request(f"display_name: 1 to {MAX_DISPLAY_NAME} characters")
    return without_nul(name, "display_name")
