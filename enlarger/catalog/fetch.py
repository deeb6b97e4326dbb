"""Download a product image from a URL the product system gave us, safely.

The URL comes from outside, so it is treated as hostile: only http and https; the host's
addresses must all be public (no loopback, private, link-local, multicast or reserved
address) unless `host:port` is in the allow list; the connection goes to the address that
was checked (no second DNS answer can move it); every redirect is checked the same way;
one deadline covers resolving the host, connecting, the response's head and its body
(every read of the socket waits only until it, so a server dripping its headers is cut
off too); the body is streamed to disk under a size limit, must be declared an image (or
a generic binary), and its sha256 must be the one announced.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as LookupTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from enlarger.catalog.states import ProductError, StageFailed

ACCEPTED_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")
STALL_S = 30.0  # the longest one read may wait for bytes (the total limit still applies)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215
SIIT = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765's IPv4-translated addresses
RESERVED_V6 = ipaddress.ip_network("::/8")  # IETF-reserved: no public host is there
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# getaddrinfo cannot be given a timeout: lookups run here and are waited on only until
# the fetch's deadline (a hung one keeps its thread until the resolver gives up)
_RESOLVER = ThreadPoolExecutor(max_workers=8, thread_name_prefix="enlarger-resolve")


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 50 * 1024 * 1024
    timeout_s: float = 60.0
    allow_hosts: frozenset[str] = field(default_factory=frozenset)  # "host:port", lower case
    max_redirects: int = 3


@dataclass(frozen=True)
class Fetched:
    path: Path
    size_bytes: int
    sha256: str
    content_type: str


def parse_allow_hosts(value: str) -> frozenset[str]:
    """`ENLARGER_FETCH_ALLOW_HOSTS`: comma-separated `host:port` entries."""
    hosts = set()
    for part in value.split(","):
        entry = part.strip().lower()
        if not entry:
            continue
        host, sep, port = entry.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"fetch_allow_hosts entries are host:port, not {part.strip()!r}")
        hosts.add(entry)
    return frozenset(hosts)


def _failed(message: str, *, retryable: bool = False) -> StageFailed:
    return StageFailed(ProductError.DOWNLOAD_FAILED, message, retryable=retryable)


def fetch(url: str, dest: Path, expected_sha256: str, limits: FetchLimits) -> Fetched:
    """Download `url` to `dest`; StageFailed (DOWNLOAD_FAILED, INVALID_IMAGE or
    RATE_LIMITED) says why not and whether a later try may succeed."""
    deadline = time.monotonic() + limits.timeout_s
    transport = _DeadlineTransport(deadline)
    with httpx.Client(transport=transport, follow_redirects=False, trust_env=False) as client:
        for _ in range(limits.max_redirects + 1):
            response = _request(client, url, deadline, limits)
            try:
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                _check_status(response)
                return _save(response, dest, expected_sha256, deadline, limits)
            finally:
                response.close()
    raise _failed(f"more than {limits.max_redirects} redirects")


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write waits at most until the deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self.inner = inner
        self.deadline = deadline

    def _bounded(self, timeout: float | None, error: type[Exception]) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise error("the fetch's deadline has passed")
        return remaining if timeout is None else min(timeout, remaining)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, self._bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, self._bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = self._bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self.inner.start_tls(ssl_context, server_hostname, bounded), self.deadline
        )

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, deadline: float) -> None:
        self.inner = httpcore.SyncBackend()
        self.deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise httpcore.ConnectTimeout("the fetch's deadline has passed")
        bounded = remaining if timeout is None else min(timeout, remaining)
        stream = self.inner.connect_tcp(host, port, bounded, local_address, socket_options)
        return _DeadlineStream(stream, self.deadline)


class _DeadlineTransport(httpx.HTTPTransport):
    """httpx's own transport over connections that keep one deadline (httpx has no
    total timeout: its read timeout restarts with every byte)."""

    def __init__(self, deadline: float) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=_DeadlineBackend(deadline),
        )


def _request(
    client: httpx.Client, url: str, deadline: float, limits: FetchLimits
) -> httpx.Response:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _failed(f"only http and https URLs are fetched, not {url!r}")
    host = parts.hostname.lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise _failed(f"the URL {url!r} has an invalid port") from None
    address = _checked_address(host, port, limits.allow_hosts, deadline)
    netloc = f"[{address}]" if ":" in address else address
    pinned = parts._replace(netloc=f"{netloc}:{port}").geturl()
    headers = {"Host": parts.netloc.rpartition("@")[2], "Accept": "image/*"}
    remaining = max(0.1, deadline - time.monotonic())
    timeout = httpx.Timeout(remaining, read=min(remaining, STALL_S))
    try:
        request = client.build_request(
            "GET",
            pinned,
            headers=headers,
            timeout=timeout,
            extensions={"sni_hostname": host},
        )
        return client.send(request, stream=True)
    except httpx.TimeoutException:
        raise _failed(f"{host} did not answer in time", retryable=True) from None
    except httpx.HTTPError as exc:
        raise _failed(f"cannot reach {host}: {exc}", retryable=True) from None


def _checked_address(host: str, port: int, allow_hosts: frozenset[str], deadline: float) -> str:
    """An address of `host` to connect to: any, for an allowed host; else one of its
    addresses, all of which must be public. The lookup waits until the deadline at most."""
    lookup = _RESOLVER.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = lookup.result(timeout=max(0.0, deadline - time.monotonic()))
    except LookupTimeout:
        lookup.cancel()
        raise _failed(f"{host} could not be resolved in time", retryable=True) from None
    except socket.gaierror as exc:
        raise _failed(f"cannot resolve {host}: {exc.strerror}", retryable=True) from None
    addresses = [str(info[4][0]) for info in infos]
    if f"{host}:{port}" not in allow_hosts:
        for address in addresses:
            if not _public(ipaddress.ip_address(address.split("%", 1)[0])):
                raise _failed(
                    f"{host} resolves to {address}, a private, loopback or link-local address; "
                    "list it in ENLARGER_FETCH_ALLOW_HOSTS as host:port to fetch from it"
                )
    return addresses[0]


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether `ip` is a public unicast address. An IPv6 address that carries an IPv4
    one (mapped, translated, 6to4, NAT64, Teredo, IPv4-compatible) is judged by that IPv4
    address: a gateway would take `64:ff9b::7f00:1` to 127.0.0.1. A local-use NAT64
    address is never public: its gateway's prefix length, and so the IPv4 address it
    means, is known only to the local network (RFC 8215)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in LOCAL_NAT64:
            return False
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if ip in NAT64 or ip in SIIT or (ip in IPV4_COMPATIBLE and int(ip) > 1):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return _public(embedded)
        if ip in RESERVED_V6:
            return False
    return ip.is_global and not ip.is_multicast


def _check_status(response: httpx.Response) -> None:
    status = response.status_code
    if status == 429:
        raise StageFailed(
            ProductError.RATE_LIMITED,
            "the image host answered 429 Too Many Requests",
            retryable=True,
        )
    if status >= 500 or status == 408:
        raise _failed(f"the image host answered {status}", retryable=True)
    if status != 200:
        raise _failed(f"the image host answered {status}")
    content_type = response.headers.get("content-type", "").lower()
    if not content_type.startswith(ACCEPTED_TYPES):
        raise StageFailed(
            ProductError.INVALID_IMAGE,
            f"the URL serves {content_type or 'no content type'}, not an image",
        )


def _save(
    response: httpx.Response, dest: Path, expected_sha256: str, deadline: float, limits: FetchLimits
) -> Fetched:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise _failed(f"the image is {int(declared):,} bytes; the limit is {limits.max_bytes:,}")
    digest = hashlib.sha256()
    size = 0
    tmp = dest.with_name(dest.name + ".part")
    try:
        with tmp.open("wb") as out:
            for chunk in response.iter_bytes():  # each read as it comes: a drip cannot hide
                size += len(chunk)
                if size > limits.max_bytes:
                    raise _failed(f"the image is over the limit of {limits.max_bytes:,} bytes")
                if time.monotonic() > deadline:
                    raise _failed("the download took too long", retryable=True)
                digest.update(chunk)
                out.write(chunk)
    except httpx.TimeoutException:
        tmp.unlink(missing_ok=True)
        late = time.monotonic() >= deadline
        raise _failed(
            "the download took too long" if late else "the download stalled", retryable=True
        ) from None
    except httpx.HTTPError as exc:
        tmp.unlink(missing_ok=True)
        raise _failed(f"the download broke off: {exc}", retryable=True) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    checksum = digest.hexdigest()
    if checksum != expected_sha256:
        tmp.unlink(missing_ok=True)
        raise _failed(f"the image's sha256 is {checksum}, not the announced {expected_sha256}")
    tmp.replace(dest)
    content_type = response.headers.get("content-type", "")
    return Fetched(dest, size, checksum, content_type)
