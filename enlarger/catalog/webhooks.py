"""Signed webhooks, both ways: verifying what product systems send, signing what
enlarger sends.

Inbound, two schemes are accepted:
- Standard Webhooks (https://www.standardwebhooks.com): headers `webhook-id`,
  `webhook-timestamp` and `webhook-signature` (space-separated `v1,<base64>` entries);
  the signed content is `<id>.<timestamp>.<raw body>`, HMAC-SHA256 under the secret
  (`whsec_<base64 key>`); the timestamp must be within five minutes of now;
- the reference's senders: a hex HMAC-SHA256 of the raw body in `x-webhook-signature` or
  `x-3jms-signature` (an optional `sha256=` prefix is allowed). There is no id and no
  timestamp, so such deliveries are deduplicated by their content only.

Every configured secret is tried, so a secret can be rotated without downtime. Every
comparison is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SECRET_PREFIX = "whsec_"
TOLERANCE_S = 5 * 60
LEGACY_HEADERS = ("x-webhook-signature", "x-3jms-signature")


class WebhookRejected(Exception):
    """The delivery is not verifiably from a holder of a configured secret."""


@dataclass(frozen=True)
class Verified:
    webhook_id: str | None  # None for the reference's HMAC header (no id is sent)
    scheme: str  # "standard" or the legacy header's name


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret: the decoded bytes of a `whsec_…` secret, else the
    secret's own UTF-8 bytes (what the reference's senders share)."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except binascii.Error:
            raise ValueError("a whsec_ secret must be base64 after its prefix") from None
    if not secret:
        raise ValueError("a webhook secret cannot be empty")
    return secret.encode()


def parse_secrets(value: str) -> list[bytes]:
    """`ENLARGER_WEBHOOK_SECRETS`: comma-separated secrets, any of which may sign."""
    return [secret_key(part.strip()) for part in value.split(",") if part.strip()]


def sign_standard(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for a delivery (`v1,<base64>`)."""
    content = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    headers: Mapping[str, str],
    body: bytes,
    keys: Sequence[bytes],
    now: float | None = None,
) -> Verified:
    """Check a delivery's signature against every key; raise WebhookRejected saying why
    not. `headers` must be case-insensitive (as Starlette's are) or lower-case."""
    if not keys:
        raise WebhookRejected("no webhook secret is configured")
    if headers.get("webhook-signature") is not None:
        return _verify_standard(headers, body, keys, time.time() if now is None else now)
    for name in LEGACY_HEADERS:
        value = headers.get(name)
        if value is not None:
            return _verify_legacy(name, value, body, keys)
    raise WebhookRejected(
        "missing signature: send Standard Webhooks headers (webhook-id, webhook-timestamp, "
        "webhook-signature) or x-webhook-signature"
    )


def _verify_standard(
    headers: Mapping[str, str], body: bytes, keys: Sequence[bytes], now: float
) -> Verified:
    webhook_id = headers.get("webhook-id", "").strip()
    stamp = headers.get("webhook-timestamp", "").strip()
    if not webhook_id or len(webhook_id) > 200:
        raise WebhookRejected("webhook-id is missing or too long")
    if not stamp.isdigit():
        raise WebhookRejected("webhook-timestamp must be whole seconds since the epoch")
    timestamp = int(stamp)
    if abs(now - timestamp) > TOLERANCE_S:
        raise WebhookRejected("webhook-timestamp is more than five minutes from now")
    offered = []
    for entry in headers["webhook-signature"].split():
        version, _, signature = entry.partition(",")
        if version == "v1" and signature:
            offered.append(signature.encode())
    if not offered:
        raise WebhookRejected("webhook-signature has no v1 signature")
    for key in keys:
        expected = sign_standard(key, webhook_id, timestamp, body)[3:].encode()
        # compare with every offered signature, without stopping at the first match
        matches = [hmac.compare_digest(expected, signature) for signature in offered]
        if any(matches):
            return Verified(webhook_id, "standard")
    raise WebhookRejected("the signature does not match")


def _verify_legacy(name: str, value: str, body: bytes, keys: Sequence[bytes]) -> Verified:
    signature = value.strip().lower().removeprefix("sha256=").encode()
    for key in keys:
        expected = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
        if hmac.compare_digest(expected, signature):
            return Verified(None, name)
    raise WebhookRejected(f"the {name} signature does not match")
