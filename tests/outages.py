"""Outages the tests own: a TCP proxy in front of a real service (PostgreSQL, moto's S3)
that can be cut, resetting every connection through it and each new one, and later
restored. Clients see what a crashed server behind its address looks like while the
service itself, and everything else on it, carries on."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from urllib.parse import urlsplit, urlunsplit

RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close sends a reset


class CuttableProxy:
    """Forwards `listen_host`:`port` to `target` until `cut()`, then resets every
    connection and every new one until `restore()`. The port stays its own throughout, so
    nothing else can take it while the service is "down"."""

    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._down = False
        self._flowing = threading.Event()  # cleared while hung: bytes are held, not passed
        self._flowing.set()
        self._listener = socket.socket()
        self._listener.bind((listen_host, 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @classmethod
    def in_front_of(cls, url: str, listen_host: str = "127.0.0.1") -> tuple[CuttableProxy, str]:
        """A proxy to the host and port of `url` on `listen_host`, and `url` pointing at
        the proxy."""
        parts = urlsplit(url)
        proxy = cls(parts.hostname or "127.0.0.1", parts.port or 5432, listen_host)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"{listen_host}:{proxy.port}"
        netloc = f"{netloc[0]}@{host}" if len(netloc) == 2 else host
        return proxy, urlunsplit(parts._replace(netloc=netloc))

    def cut(self) -> None:
        """Reset every connection through the proxy, and each new one until `restore()`."""
        with self._lock:
            self._down = True
            doomed, self._open = self._open, set()
        for sock in doomed:
            _reset(sock)

    def hang(self) -> None:
        """Take connections, new ones too, but pass nothing either way until `restore()`:
        a service that is up yet never answers."""
        self._flowing.clear()

    def restore(self) -> None:
        with self._lock:
            self._down = False
        self._flowing.set()

    def close(self) -> None:
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if self._down:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._down:  # cut meanwhile
                    _reset(client)
                    _reset(upstream)
                    continue
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self._flowing.wait()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._open -= {source, sink}


def _reset(sock: socket.socket) -> None:
    """Close with a reset, at once: shut down first, as a close alone waits for a recv
    another thread is blocked in."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
