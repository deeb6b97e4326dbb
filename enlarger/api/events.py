"""The live event stream, `GET /api/jobs/stream` (Server-Sent Events).

Every job state change, item update, progress report, image status and product-job stage
goes out with the engine's monotonic event id, so a client that reconnects with
`Last-Event-ID` (browsers do it by themselves) misses nothing; when the events it missed
were pruned already it gets one `resync` event and should read the state afresh. One
listener per app wakes every stream; streams read events from the database, so a slow
client only ever delays itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from enlarger.api.deps import LibraryDep
from enlarger.api.schemas.base_models import ERRORS
from enlarger.api.shapes import MAX_DB_INT
from enlarger.library import image_records, lookups
from enlarger.library.library import Library
from enlarger.queue import Job, Store
from enlarger.queue.model import Event
from enlarger.queue.store import Listener, Topic

router = APIRouter(tags=["jobs"], responses=ERRORS)

KEEP_ALIVE_S = 15.0
WAIT_S = 1.0  # a stream looks for a closed connection at least this often
PAGE = 500
KNOWN_JOBS = 10_000  # a filtered stream remembers this many jobs' types and payloads


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


def _data(event: Event) -> dict[str, Any]:
    return event.data if isinstance(event.data, dict) else {}


def event_json(event: Event) -> dict[str, Any]:
    """An event as its stream sends it. Item events of project jobs carry reference 003's
    `{type: "item", project_folder, filename, thumbnail_status, preview_status,
    updated_at}`, plus the job and the item's own status."""
    data = _data(event)
    common = {"eventId": event.id, "jobId": event.job_id, "at": event.created_at.isoformat()}
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
    if event.kind in ("image", "product", "photo"):
        return {
            "type": event.kind,
            "eventId": event.id,
            "at": common["at"],
            **data,
            "status": event.status,
        }
    return {
        "type": "job",
        **common,
        "event": event.kind,
        "jobType": event.job_type,
        "status": event.status.upper() if event.status else None,
    }


def _sse(event: Event) -> str:
    return f"id: {event.id}\ndata: {json.dumps(event_json(event), separators=(',', ':'))}\n\n"


@dataclass
class EventFilter:
    """What a stream was asked for: `type` is a job type (or `image` / `product` for those
    events), `project` a project's folder, `image` an image id. The jobs and images the
    events name are looked up once and remembered."""

    library: Library
    job_types: set[str] | None = None
    project: str | None = None
    image: str | None = None
    jobs: dict[int, Job] = field(default_factory=dict)
    image_projects: dict[str, str | None] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.job_types, self.project, self.image))

    def select(self, events: Sequence[Event]) -> list[Event]:
        """The events that pass (a blocking call: it may read the database)."""
        if not self.active:
            return list(events)
        if len(self.jobs) > KNOWN_JOBS:
            self.jobs.clear()
            self.image_projects.clear()
        unknown = {e.job_id for e in events if e.job_id is not None} - set(self.jobs)
        self.jobs.update(self.library.queue.store.jobs_by_id(sorted(unknown)))
        if self.project is not None:
            images = {self._image_of(e) for e in events if e.kind != "image"}
            images -= {None, *self.image_projects}
            self.image_projects.update(lookups.image_projects(self.library, sorted(images)))
        return [e for e in events if self._passes(e)]

    def _payload(self, event: Event) -> dict[str, Any]:
        job = self.jobs.get(event.job_id) if event.job_id is not None else None
        return job.payload if job is not None and isinstance(job.payload, dict) else {}

    def _image_of(self, event: Event) -> str | None:
        source = _data(event) if event.kind == "image" else self._payload(event)
        image = source.get("imageId")
        return image if isinstance(image, str) else None

    def _passes(self, event: Event) -> bool:
        if self.job_types is not None:
            job = self.jobs.get(event.job_id) if event.job_id is not None else None
            kind = job.type if job is not None else (event.job_type or event.kind)
            if kind not in self.job_types:
                return False
        if self.image is not None and self._image_of(event) != self.image:
            return False
        if self.project is not None:
            if event.kind in ("image", "photo"):
                project = _data(event).get("project")
            else:
                image = self._image_of(event)
                project = self._payload(event).get("folder") or (
                    self.image_projects.get(image) if image else None
                )
            if project != self.project:
                return False
        return True


def _resync(cursor: int, last: int) -> str:
    body = {"type": "resync", "missedAfter": cursor, "lastEventId": last}
    return f"event: resync\nid: {last}\ndata: {json.dumps(body, separators=(',', ':'))}\n\n"


async def _stream(
    request: Request,
    library: Library,
    hub: EventHub,
    cursor: int,
    wanted: EventFilter,
    resuming: bool,
) -> AsyncIterator[str]:
    store = library.queue.store
    if resuming and not await run_in_threadpool(store.can_resume_after, cursor):
        last = await run_in_threadpool(store.last_event_id)
        yield _resync(cursor, last)  # some were pruned, or the id is not ours: read afresh
        cursor = last
    yield f"retry: 2000\nid: {cursor}\n\n"
    last_sent = time.monotonic()
    while not hub.closing and not await request.is_disconnected():
        ticket = hub.ticket()
        events = await run_in_threadpool(store.read_events, cursor, PAGE)
        if events:
            cursor = events[-1].id
            passed = await run_in_threadpool(wanted.select, events)
            # a filtered stream still moves its id on, so a reconnect skips what it skipped
            yield "".join(_sse(event) for event in passed) or f"id: {cursor}\n\n"
            last_sent = time.monotonic()
            if len(events) == PAGE:
                continue
        elif time.monotonic() - last_sent >= KEEP_ALIVE_S:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ticket.wait(), WAIT_S)


def _stream_types(library: Library) -> set[str]:
    """What `type` may name: the registered job types, any type that has jobs (custom
    handlers' too), and the image and product events."""
    queue = library.queue
    found = {*queue.registry.handlers, *(t for t, _ in queue.store.counts())}
    return found | {"image", "product", "photo"}


@router.get(
    "/api/jobs/stream",
    summary="Live job, item, progress, image, photo and product-job events (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`id:` and `data:` lines, the data one JSON object each",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def stream(
    request: Request,
    library: LibraryDep,
    last_event_id: Annotated[str | None, Header(description="Resume after this event")] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_DB_INT, description="Resume after this event id")
    ] = None,
    type: Annotated[
        str | None,
        Query(
            max_length=300,
            description="Only these job types' events, or `image`, `photo`, `product` "
            "(several, comma-separated)",
        ),
    ] = None,
    project: Annotated[
        str | None,
        Query(
            max_length=200, description="Only events of this project (its folder, name or title)"
        ),
    ] = None,
    image: Annotated[
        str | None, Query(max_length=64, description="Only events of this image")
    ] = None,
) -> StreamingResponse:
    """Without `Last-Event-ID` or `after`, the stream starts with what happens next."""
    cursor = after
    if last_event_id is not None:
        if not last_event_id.strip().isdigit() or int(last_event_id) > MAX_DB_INT:
            raise HTTPException(400, "Last-Event-ID must be an event id (a whole number)")
        cursor = int(last_event_id)
    types = {t.strip() for t in type.split(",") if t.strip()} if type is not None else None
    if types is not None:
        known = await run_in_threadpool(_stream_types, library)
        unknown = sorted(types - known)
        if unknown or not types:
            raise HTTPException(
                422, f"unknown type {unknown or type!r}; one of {', '.join(sorted(known))}"
            )
    if project is not None:  # a project's name or title means its folder, as elsewhere
        project = await run_in_threadpool(lookups.project_folder, library, project)
    if image is not None:
        await run_in_threadpool(image_records.get_image_row, library, image, True)  # or 404
    resuming = cursor is not None
    if cursor is None:
        cursor = await run_in_threadpool(library.queue.store.last_event_id)
    hub: EventHub = request.app.state.event_hub
    wanted = EventFilter(library, job_types=types, project=project, image=image)
    return StreamingResponse(
        _stream(request, library, hub, cursor, wanted, resuming),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
