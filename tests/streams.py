"""A client of `GET /api/jobs/stream` for the tests, reading it as a browser would."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx


class EventReader(threading.Thread):
    """Reads `GET /api/jobs/stream` in the background, as a browser's EventSource would."""

    def __init__(
        self,
        base_url: str,
        last_event_id: int | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.params = params or {}
        self.headers = dict(headers or {})
        if last_event_id is not None:
            self.headers["Last-Event-ID"] = str(last_event_id)
        self.names: list[str] = []  # each event's `event:` name ("message" when none)
        self.events: list[dict[str, Any]] = []
        self.ids: list[int] = []
        self.connected = threading.Event()
        self.opened = threading.Event()  # its `retry:` line read: a resync comes before it
        self.stopping = False

    def run(self) -> None:
        try:
            self._read()
        except httpx.TransportError:
            if not self.stopping:
                raise  # a stopped reader's connection ends with the server: no news

    def _read(self) -> None:
        with (
            httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(30, read=20)) as client,
            client.stream(
                "GET", "/api/jobs/stream", params=self.params, headers=self.headers
            ) as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            self.connected.set()
            event_id, name = None, "message"
            for line in response.iter_lines():
                if self.stopping:
                    return
                if line.startswith("retry: "):
                    self.opened.set()
                elif line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    self.ids.append(event_id or 0)
                    self.names.append(name)
                    self.events.append(json.loads(line[6:]))
                elif not line:
                    name = "message"

    def items(self, filename: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == "item" and e.get("filename") == filename]
