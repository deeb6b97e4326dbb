"""Signed, expiring URLs for blobs the app serves itself (local storage).

A URL carries the key, an expiry time and an HMAC-SHA256 of both under the server's
secret; the check is constant-time, so a forger learns nothing from response timing.
Expiry times are rounded up to a whole step, so a blob keeps one URL for a while and a
browser's cache serves it again instead of fetching it anew.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import time
from pathlib import Path
from urllib.parse import quote

SECRET_BYTES = 32
_PLAIN = re.compile(r"[A-Za-z0-9/._~-]*\Z")  # keys that need no quoting (most)


class UrlSigner:
    def __init__(self, secret: bytes, prefix: str = "/files") -> None:
        if len(secret) < 16:
            raise ValueError("the URL signing secret must be at least 16 bytes")
        self._secret = secret
        self.prefix = prefix.rstrip("/")

    def signature(self, key: str, expires: int, method: str = "GET") -> str:
        """A GET signature covers the key and expiry; any other method is signed with its
        name too, so a URL to read a blob can never be used to write it."""
        prefix = "" if method == "GET" else f"{method}\n"
        return hmac.digest(self._secret, f"{prefix}{key}\n{expires}".encode(), "sha256").hex()

    def url(self, key: str, ttl_s: int, method: str = "GET") -> str:
        """A path (relative to the server) that serves `key` (or, with method PUT, takes
        its bytes) for at least the next `ttl_s` seconds: the expiry is rounded up to a
        whole quarter of `ttl_s`, so within one quarter the URL is the same."""
        step = max(1, ttl_s // 4)
        expires = -(-(int(time.time()) + ttl_s) // step) * step
        signature = self.signature(key, expires, method)
        path = key if _PLAIN.match(key) else quote(key)
        return f"{self.prefix}/{path}?expires={expires}&signature={signature}"

    def verify(self, key: str, expires: int, signature: str, method: str = "GET") -> bool:
        expected = self.signature(key, expires, method)
        valid = hmac.compare_digest(expected.encode(), signature.encode())
        return valid and expires >= time.time()


def load_or_create_secret(path: Path) -> bytes:
    """The secret kept in `path`, created (readable by its owner only) on first use, so
    URLs stay valid across restarts and every process on this host agrees. The file is
    written under a temporary name and linked into place: readers never see half of it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(SECRET_BYTES))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race: use its secret
        finally:
            tmp.unlink()
    return bytes.fromhex(path.read_text().strip())
