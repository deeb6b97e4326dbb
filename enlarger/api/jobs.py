"""Jobs as reference 003 shows them: one job with its items, and the live event stream.

`GET /api/jobs/stream` is Server-Sent Events: every job state change, item update and
progress report, each with the engine's monotonic event id, so a client that reconnects
with `Last-Event-ID` (browsers do it by themselves) misses nothing. One listener per app
wakes every stream; streams read events from the database, so a slow client only ever
delays itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from enlarger.api.deps import LibraryDep
from enlarger.api.shapes import MAX_DB_INT, JobId, images_json, iso, job_detail_json
from enlarger.library import service
from enlarger.library.runtime import Library
from enlarger.queue import Job, Store
from enlarger.queue.model import Event
from enlarger.queue.store import Listener, Topic

router = APIRouter(tags=["jobs"])

KEEP_ALIVE_S = 15.0
WAIT_S = 1.0  # a stream looks for a closed connection at least this often
PAGE = 500


class EventHub:
    """One engine listener shared by every open stream: a stream takes a ticket, reads
    what is new, and waits on its ticket, so news between the read and the wait is kept."""

    def __init__(self, store: Store, poll_interval_s: float) -> None:
        self._store = store
        self._poll_interval_s = poll_interval_s
        self._listener: Listener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._news = asyncio.Event()
        self.closing = False

    def ticket(self) -> asyncio.Event:
        if self._listener is None:
            self._loop = asyncio.get_running_loop()
            self._listener = self._store.listen(
                self._wake_from_thread, self._poll_interval_s, Topic.EVENTS
            )
        return self._news

    def _wake_from_thread(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._broadcast)

    def _broadcast(self) -> None:
        news, self._news = self._news, asyncio.Event()
        news.set()

    def end_streams(self) -> None:
        """Shutting down: every stream ends within a moment (clients will reconnect with
        Last-Event-ID), so the server need not wait for them or cut them off."""
        self.closing = True
        self._wake_from_thread()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None


def event_json(event: Event) -> dict[str, Any]:
    """An event as its stream sends it. Item events of project jobs carry reference 003's
    `{type: "item", project_folder, filename, thumbnail_status, preview_status,
    updated_at}`, plus the job and the item's own status."""
    data = event.data if isinstance(event.data, dict) else {}
    common = {"eventId": event.id, "jobId": event.job_id, "at": iso(event.created_at)}
    if event.kind == "item":
        item_data = data.get("data") if isinstance(data.get("data"), dict) else {}
        return {
            "type": "item",
            **item_data,
            **common,
            "key": data.get("key"),
            "itemStatus": data.get("status"),
            "error": data.get("error"),
        }
    if event.kind == "progress":
        return {"type": "progress", **common, "progress": event.data}
    return {
        "type": "job",
        **common,
        "event": event.kind,
        "jobType": event.job_type,
        "status": event.status.upper() if event.status else None,
    }


def _sse(event: Event) -> str:
    return f"id: {event.id}\ndata: {json.dumps(event_json(event), separators=(',', ':'))}\n\n"


async def _stream(
    request: Request, library: Library, hub: EventHub, cursor: int
) -> AsyncIterator[str]:
    store = library.queue.store
    yield f"retry: 2000\nid: {cursor}\n\n"
    last_sent = time.monotonic()
    while not hub.closing and not await request.is_disconnected():
        ticket = hub.ticket()
        events = await run_in_threadpool(store.read_events, cursor, PAGE)
        if events:
            yield "".join(_sse(event) for event in events)
            cursor = events[-1].id
            last_sent = time.monotonic()
            if len(events) == PAGE:
                continue
        elif time.monotonic() - last_sent >= KEEP_ALIVE_S:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ticket.wait(), WAIT_S)


@router.get(
    "/api/jobs/stream",
    summary="Live job, item and progress events (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    request: Request,
    library: LibraryDep,
    last_event_id: Annotated[str | None, Header(description="Resume after this event")] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_DB_INT, description="Resume after this event id")
    ] = None,
) -> StreamingResponse:
    """Without `Last-Event-ID` or `after`, the stream starts with what happens next."""
    cursor = after
    if last_event_id is not None:
        if not last_event_id.strip().isdigit() or int(last_event_id) > MAX_DB_INT:
            raise HTTPException(400, "Last-Event-ID must be an event id (a whole number)")
        cursor = int(last_event_id)
    if cursor is None:
        cursor = await run_in_threadpool(library.queue.store.last_event_id)
    hub: EventHub = request.app.state.event_hub
    return StreamingResponse(
        _stream(request, library, hub, cursor),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def job_or_404(library: Library, job_id: int) -> Job:
    job = library.queue.store.get_job(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job


def job_detail(library: Library, job: Job) -> dict[str, Any]:
    """The job with its lease, retry information, items summary and (for image jobs) its
    image."""
    image = None
    image_id = job.payload.get("imageId") if isinstance(job.payload, dict) else None
    if isinstance(image_id, str):
        with contextlib.suppress(service.NotFound):
            row = service.get_image_row(library, image_id, include_deleted=True)
            image = images_json(library, [row])[0]
    return job_detail_json(job, image)


@router.get("/api/jobs/{job_id}", summary="One job with its items summary and its items")
def get_job(
    job_id: JobId,
    library: LibraryDep,
    items: Annotated[bool, Query(description="List every item too")] = True,
) -> dict[str, Any]:
    job = job_or_404(library, job_id)
    body = job_detail(library, job)
    if items:
        body["items"] = [
            {
                "key": item.key,
                "status": item.status.value,
                "progress": item.progress,
                "error": item.error,
                "data": item.data,
                "updatedAt": iso(item.updated_at),
            }
            for item in library.queue.store.list_items(job_id)
        ]
    return body
