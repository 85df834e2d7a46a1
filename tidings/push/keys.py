"""The VAPID key pair (RFC 8292) every node signs with, and the header it signs.

The private key is kept in the database (``server_secrets``), made by the first
node that starts, so every node and every restart uses the same one and
browsers' subscriptions stay valid; a setting can give it instead.
"""

from __future__ import annotations

import base64
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

# RFC 8292 §2: at most 24 hours. A token is reused for a push service until
# an hour before it runs out: one ECDSA signature per origin per 11 hours.
TOKEN_LIFETIME = 12 * 3600
_RENEW_BEFORE = 3600


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_private_key() -> str:
    """A fresh P-256 private key, as base64url of its 32 raw bytes."""
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url(key.private_numbers().private_value.to_bytes(32, "big"))


def load_private_key(text: str) -> ec.EllipticCurvePrivateKey:
    """A key from a setting or the database: PEM, or base64url of the 32 raw bytes."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError("a VAPID key is a P-256 (prime256v1) EC key")
        return key
    raw = unb64url(text)
    if len(raw) != 32:
        raise ValueError("a VAPID private key is 32 bytes, base64url-encoded")
    return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())


class VapidKeys:
    """Signs the ``Authorization: vapid t=…, k=…`` header per push-service origin."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, subject: str) -> None:
        self._vapid = Vapid02(private_key)
        self._subject = subject
        point = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        # The browser's applicationServerKey: the uncompressed point, base64url.
        self.application_server_key = b64url(point)
        self._tokens: dict[str, tuple[str, float]] = {}

    def authorization(self, audience: str, now: float | None = None) -> str:
        """The header for a push service at ``audience`` (its origin, RFC 8292 §2)."""
        now = time.time() if now is None else now
        cached = self._tokens.get(audience)
        if cached is not None and cached[1] - _RENEW_BEFORE > now:
            return cached[0]
        expires = int(now) + TOKEN_LIFETIME
        claims = {"aud": audience, "exp": expires, "sub": self._subject}
        header = str(self._vapid.sign(claims)["Authorization"])
        if len(self._tokens) > 1000:  # push services are few; never let it grow
            self._tokens.clear()
        self._tokens[audience] = (header, expires)
        return header


def check_subscription_keys(p256dh: str, auth: str) -> None:
    """A browser's keys as RFC 8291 needs them, else ``ValueError`` naming the field:
    ``p256dh`` a P-256 point (uncompressed, base64url), ``auth`` 16 bytes."""
    try:
        point = unb64url(p256dh)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except (ValueError, TypeError):
        raise ValueError("keys.p256dh: a P-256 public key, uncompressed, base64url") from None
    if len(point) != 65:
        raise ValueError("keys.p256dh: a P-256 public key, uncompressed, base64url")
    try:
        secret = unb64url(auth)
    except (ValueError, TypeError):
        secret = b""
    if len(secret) != 16:
        raise ValueError("keys.auth: 16 bytes, base64url")
