"""Push subscriptions (PROTOCOL-v2 §8): a user's browsers that want a Web Push.

A subscription is a browser's ``PushSubscription``: the endpoint is a URL
the client chose, so its form and address are checked here (``https``,
public addresses only, ``tidings/push/addresses.py`` says why) and again at
every send. A user keeps at most ``max_per_user``: browsers re-subscribe
with new endpoints over time and the old ones only fail when used, so a
new one pushes out the oldest instead of being refused.

Subscribing resolves the endpoint's name (the address check), so it is
rate-limited per user: a browser subscribes once and again only when its
push service rotates the endpoint, and a loop of subscribes must not turn
the server into a DNS prober.
"""

from __future__ import annotations

from collections.abc import Callable

from tidings.errors import ErrorCode, TidingsError, bad_request
from tidings.ids import UserId
from tidings.push.addresses import EndpointRefused, check_endpoint
from tidings.push.keys import check_subscription_keys
from tidings.ratelimit import TokenBucket
from tidings.store import PushRecord, PushSubscription

# A key is 87 characters, an auth secret 22: room for padding, no more.
MAX_KEY_CHARS = 128
# Subscribe calls per user per minute (in a burst of as many), accepted or not.
SUBSCRIBES_PER_MINUTE = 10


class PushSubscriptions:
    def __init__(
        self,
        records: PushRecord,
        application_server_key: Callable[[], str],
        *,
        allow_private: bool,
        max_per_user: int,
    ) -> None:
        self._records = records
        self._key = application_server_key
        self._allow_private = allow_private
        self._max_per_user = max_per_user
        self._buckets: dict[UserId, TokenBucket] = {}

    def vapid_key(self) -> str:
        """The application server key a browser subscribes with (base64url P-256 point)."""
        return self._key()

    async def subscribe(
        self, user: UserId, endpoint: str, p256dh: str, auth: str, expiration_time: int | None
    ) -> None:
        self._rate_limit(user)
        if len(p256dh) > MAX_KEY_CHARS or len(auth) > MAX_KEY_CHARS:
            raise bad_request(f"keys: at most {MAX_KEY_CHARS} characters each")
        try:
            check_subscription_keys(p256dh.rstrip("="), auth.rstrip("="))
            await check_endpoint(endpoint, allow_private=self._allow_private)
        except (ValueError, EndpointRefused) as refused:
            raise bad_request(str(refused)) from None
        subscription = PushSubscription(
            user, endpoint, p256dh.rstrip("="), auth.rstrip("="), expiration_time
        )
        await self._records.subscribe(subscription, keep=self._max_per_user)

    def _rate_limit(self, user: UserId) -> None:
        bucket = self._buckets.get(user)
        if bucket is None:
            if len(self._buckets) > 10_000:
                self._buckets = {u: b for u, b in self._buckets.items() if not b.idle()}
            rate = SUBSCRIBES_PER_MINUTE
            bucket = self._buckets[user] = TokenBucket(rate / 60, burst=rate)
        if not bucket.take():
            raise TidingsError(
                ErrorCode.RATE_LIMITED,
                f"at most {SUBSCRIBES_PER_MINUTE} push subscriptions a minute; try later",
            )

    async def unsubscribe(self, user: UserId, endpoint: str) -> None:
        """Forget the user's subscription at ``endpoint``; none there is not an error
        (a browser unsubscribing twice, or after a 410 deleted it)."""
        await self._records.unsubscribe(user, endpoint)
