"""The live stream's image events, its filters, and the resync a client gets when the
events it missed were pruned."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from enlarger.library.library import Library
from enlarger.queue import Worker
from tests.conftest import wait_for
from tests.images import jpeg
from tests.photos import processed, upload
from tests.streams import EventReader


def _read_until(
    live_server: str, done: Callable[[list[dict[str, Any]]], Any], **params: str
) -> list[dict[str, Any]]:
    """The events of a stream from the first one, once `done(events)` holds."""
    reader = EventReader(live_server, params={"after": "0", **params})
    reader.start()
    wait_for(lambda: done(reader.events), timeout=20)
    reader.stopping = True
    return list(reader.events)


def _at_least(n: int) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: len(events) >= n


def _image_statuses(events: list[dict[str, Any]], image_id: str) -> list[str]:
    return [e["status"] for e in events if e["type"] == "image" and e["imageId"] == image_id]


def test_filters_narrow_the_stream_to_a_project_a_type_or_an_image(
    client: httpx.Client, live_server: str, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    for folder in ("alpha", "beta"):
        client.post("/api/projects", json={"folder": folder})
    alpha = upload(client, "alpha", jpeg(tmp_path / "A.jpg", 600, 400)).json()
    upload(client, "beta", jpeg(tmp_path / "B.jpg", 400, 600))
    with (tmp_path / "C.jpg").open("wb") as fh:
        fh.write(jpeg(tmp_path / "c-src.jpg", 500, 500).read_bytes())
    gallery = client.post(
        "/api/upload", files={"file": ("C.jpg", (tmp_path / "C.jpg").read_bytes())}
    ).json()
    run_worker()
    wait_for(lambda: processed(client, "alpha", "A") and processed(client, "beta", "B"), 60)
    wait_for(lambda: client.get(f"/api/images/{gallery['imageId']}").json()["status"] == "STORED")
    alpha_image = alpha["files"][0]["image_id"]
    alpha_jobs = {j["id"] for j in client.get("/api/projects/alpha/jobs").json()["jobs"]}

    seen = _read_until(
        live_server, lambda events: _image_statuses(events, gallery["imageId"])[-1:] == ["STORED"]
    )
    gallery_statuses = _image_statuses(seen, gallery["imageId"])
    assert gallery_statuses[0] == "INGESTED" and "PROCESSING" in gallery_statuses
    assert _image_statuses(seen, alpha_image)[0] == "INGESTED"
    assert _image_statuses(seen, alpha_image)[-1] == "STORED"

    images_only = [e for e in seen if e["type"] == "image"]
    by_type = _read_until(live_server, _at_least(len(images_only)), type="image")
    assert by_type[: len(images_only)] == images_only

    of_one_image = [e for e in images_only if e["imageId"] == alpha_image]
    by_image = _read_until(live_server, _at_least(len(of_one_image)), image=alpha_image)
    assert by_image[: len(of_one_image)] == of_one_image

    def about_alpha(event: dict[str, Any]) -> bool:
        if event["type"] == "image":
            return event["project"] == "alpha"
        return event["jobId"] in alpha_jobs

    of_alpha = [e for e in seen if about_alpha(e)]
    assert any(e["type"] == "item" for e in of_alpha) and any(e["type"] == "job" for e in of_alpha)
    by_project = _read_until(live_server, _at_least(len(of_alpha)), project="alpha")
    assert by_project[: len(of_alpha)] == of_alpha
    assert all(e.get("project_folder", "alpha") == "alpha" for e in by_project)

    postprocess = [
        e for e in seen if e["type"] in ("job", "item", "progress") and e["jobId"] in alpha_jobs
    ]
    of_type = _read_until(
        live_server, lambda events: postprocess[-1] in events, type="upload_postprocess"
    )
    assert {e["type"] for e in of_type} <= {"job", "item", "progress"}
    assert {e["jobId"] for e in of_type} >= {e["jobId"] for e in postprocess}
    assert not {e["jobId"] for e in of_type} & {
        e["jobId"] for e in seen if e.get("jobType") not in (None, "upload_postprocess")
    }


def test_a_client_behind_the_kept_history_gets_a_resync(
    client: httpx.Client, live_server: str, library: Library
) -> None:
    queue = library.queue
    for n in range(3):
        queue.enqueue("OFFLOAD_ORIGINAL", {"imageId": f"gone-{n}"}, delay_s=3600)
    library.queue.store.prune(older_than_s=3600, event_retention_s=-5)
    assert library.queue.store.read_events() == []
    queue.enqueue("OFFLOAD_ORIGINAL", {"imageId": "kept"}, delay_s=3600)
    last = library.queue.store.last_event_id()

    behind = EventReader(live_server, last_event_id=1)
    behind.start()
    wait_for(lambda: behind.names)
    behind.stopping = True
    assert behind.names[0] == "resync"
    assert behind.events[0] == {"type": "resync", "missedAfter": 1, "lastEventId": last}

    current = EventReader(live_server, last_event_id=last - 1)
    current.start()
    wait_for(lambda: current.events)
    current.stopping = True
    assert current.names[0] == "message" and current.events[0]["type"] == "job"
    assert current.ids[0] == last


def _first_of_stream(live_server: str, **reader: Any) -> tuple[str, dict[str, Any] | None]:
    """The stream's opening: a resync event's name and data, or ("", None)."""
    stream = EventReader(live_server, **reader)
    stream.start()
    wait_for(stream.opened.is_set)
    stream.stopping = True
    return (stream.names[0], stream.events[0]) if stream.names else ("", None)


def test_a_resync_when_every_event_was_pruned_or_the_id_is_not_this_databases(
    live_server: str, library: Library
) -> None:
    """With the whole history pruned, a client behind it used to get nothing and then the
    next events as if it had missed none; one holding an id this database never gave (a
    database reset, or restored from a backup) waited for it in silence."""
    queue, store = library.queue, library.queue.store
    for n in range(3):
        queue.enqueue("OFFLOAD_ORIGINAL", {"imageId": f"gone-{n}"}, delay_s=3600)
    given = store.last_event_id()
    store.prune(older_than_s=3600, event_retention_s=-5)
    assert store.read_events() == []
    assert not store.can_resume_after(given - 1) and store.can_resume_after(given)

    name, data = _first_of_stream(live_server, last_event_id=given - 1)
    assert name == "resync" and data == {
        "type": "resync",
        "missedAfter": given - 1,
        "lastEventId": 0,
    }
    name, data = _first_of_stream(live_server, last_event_id=given + 1000)
    assert name == "resync" and data is not None and data["missedAfter"] == given + 1000
    assert _first_of_stream(live_server, last_event_id=given) == ("", None)  # missed nothing
    assert _first_of_stream(live_server) == ("", None)  # a new client: what happens next


def test_a_filter_naming_no_project_or_image_is_refused(
    client: httpx.Client, live_server: str
) -> None:
    """It used to be taken, and the stream stayed silent forever."""
    for params in ({"project": "no-such-project"}, {"image": "no-such-image"}):
        answer = client.get("/api/jobs/stream", params=params)
        assert answer.status_code == 404, params
        assert next(iter(params.values())) in answer.json()["detail"]
    client.post("/api/projects", json={"folder": "wedding-2026", "title": "Wedding 2026"})
    stream = EventReader(live_server, params={"project": "Wedding 2026"})  # its title
    stream.start()
    wait_for(stream.opened.is_set)
    stream.stopping = True


def test_an_image_that_fails_says_why_in_its_event(
    client: httpx.Client, live_server: str, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """A page following the stream shows why an image failed without reading it again:
    refused at upload (not an image) or when its worker decoded it (cut off)."""
    refused = client.post("/api/upload", files={"file": ("notes.jpg", b"not an image")})
    whole = jpeg(tmp_path / "whole.jpg", 1600, 1200).read_bytes()
    cut = client.post("/api/upload", files={"file": ("cut.jpg", whole[: len(whole) // 3])})
    refused_id, cut_id = refused.json()["imageId"], cut.json()["imageId"]
    run_worker()

    def failed(events: list[dict[str, Any]]) -> bool:
        return _image_statuses(events, cut_id)[-1:] == ["FAILED"]

    seen = _read_until(live_server, failed, type="image")
    failures = {e["imageId"]: e["errorCode"] for e in seen if e["status"] == "FAILED"}
    assert failures == {refused_id: "UNSUPPORTED_FORMAT", cut_id: "CORRUPT_IMAGE"}
    assert all("errorCode" not in e for e in seen if e["status"] != "FAILED")
