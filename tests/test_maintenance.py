"""Project maintenance and project jobs end to end, on both backends and on local disk
and S3 (moto): files dropped in or deleted by hand, files edited in place, the trash's
retention, orphaned records and derivatives, per-project schedules, `process`, the
generic job API and the live event stream with its resume."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from enlarger.bootstrap import build_services, registry
from enlarger.db.schema import images, job_schedules
from enlarger.library import image_records, ingest, lookups, maintenance, processing
from enlarger.library.image_records import JobType
from enlarger.library.library import Library
from enlarger.library.tasks import Maintenance
from enlarger.media.xmp import Decisions, write_decisions
from enlarger.queue import Worker
from enlarger.storage import LocalBlobStore
from tests.conftest import BOTH_STACKS, wait_for
from tests.images import dng, jpeg
from tests.photos import (
    arriving,
    by_hand,
    content,
    listing,
    photo_of,
    processed,
    size_of,
    upload,
)
from tests.streams import EventReader

pytestmark = BOTH_STACKS


def changes(report: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((c["action"], c["name"]) for c in report["changes"])


def finished_job(client: httpx.Client, job_id: int, timeout: float = 60) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job["status"] in ("COMPLETED", "FAILED", "CANCELLED") else None

    job = wait_for(done, timeout=timeout)
    assert job["status"] == "COMPLETED", job["lastError"]
    return job


def queue_task(client: httpx.Client, folder: str, task: str) -> dict[str, Any]:
    queued = client.post(f"/api/projects/{folder}/jobs", json={"type": task})
    assert queued.status_code == 202, queued.text
    return finished_job(client, queued.json()["jobId"])


def with_settings(library: Library, **changes: Any) -> Library:
    return build_services(library.settings.replace(**changes), engine=library.engine).library


@pytest.mark.parametrize("library_changes", [{"settle_seconds": 600, "settle_look_seconds": 0.5}])
def test_folder_check_takes_a_file_just_copied_and_waits_for_one_still_arriving(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """A manual folder_check right after a copy skipped every file younger than
    settle_seconds and completed as if nothing were there. A file whose size and time
    held across a second look is taken in now; one still growing is reported (in the
    job's result and the project's `settling`) and taken in by the folder_check the
    first one queued, once it has settled."""
    client.post("/api/projects", json={"folder": "card"})
    run_worker()
    by_hand(library, "projects/card/IMG_1.JPG", jpeg(tmp_path / "IMG_1.JPG").read_bytes())
    whole = jpeg(tmp_path / "IMG_2.JPG", 1600, 1200).read_bytes()
    paused = jpeg(tmp_path / "IMG_3.JPG", 800, 600).read_bytes()  # a copy stalled midway
    by_hand(library, "projects/card/IMG_3.JPG", paused[: len(paused) // 2])
    with arriving(library, "projects/card/IMG_2.JPG", whole):
        wait_for(lambda: library.blobs.info("projects/card/IMG_2.JPG") is not None)
        job = queue_task(client, "card", "folder_check")
        assert client.get("/api/projects/card").json()["settling"] == ["IMG_2.JPG", "IMG_3.JPG"]
    assert changes(job["result"]) == [("ingest", "IMG_1.JPG")]
    assert job["result"]["settling"] == ["IMG_2.JPG", "IMG_3.JPG"]
    assert len(job["result"]["jobs"]) == 1 and job["result"]["recheck"]  # and a look again
    assert wait_for(lambda: processed(client, "card", "IMG_1"), timeout=60)
    photo = wait_for(lambda: processed(client, "card", "IMG_2"), timeout=60)
    assert size_of(client, photo["previewUrl"]) == (1600, 1200)  # whole, not a part
    wait_for(lambda: client.get("/api/projects/card").json()["settling"] == ["IMG_3.JPG"])
    by_hand(library, "projects/card/IMG_3.JPG", paused)  # the copy goes on, and ends
    assert wait_for(lambda: processed(client, "card", "IMG_3"), timeout=60)
    wait_for(lambda: client.get("/api/projects/card").json()["settling"] == [], timeout=30)


def test_folder_check_takes_in_dropped_photos_and_trashes_the_rest(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    client.post("/api/projects", json={"folder": "drop"})
    upload(client, "drop", jpeg(tmp_path / "A.jpg", 600, 400))
    run_worker()
    wait_for(lambda: processed(client, "drop", "A"), timeout=60)
    by_hand(
        library, "projects/drop/IMG_9.JPG", jpeg(tmp_path / "IMG_9.JPG", 1600, 1200).read_bytes()
    )
    rated = write_decisions(None, Decisions("unflagged", 4, "red"))  # named as darktable does
    by_hand(library, "projects/drop/IMG_9.JPG.xmp", rated)
    by_hand(library, "projects/drop/IMG_9.xmp", rated)  # and as Lightroom does: both are its
    by_hand(library, "projects/drop/notes.txt", b"not a photo")
    by_hand(library, "projects/drop/stray.xmp", b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    by_hand(library, "projects/drop/A copy.jpg", content(library, "projects/drop/A.jpg"))
    before = listing(library, "projects/drop")

    dry = client.post("/api/projects/drop/maintenance/folder_check", params={"dryRun": "true"})
    assert dry.status_code == 200, dry.text
    expected = [
        ("attach", "IMG_9.JPG.xmp"),
        ("attach", "IMG_9.xmp"),
        ("ingest", "IMG_9.JPG"),
        ("trash", "A copy.jpg"),
        ("trash", "notes.txt"),
        ("trash", "stray.xmp"),
    ]
    assert changes(dry.json()) == expected
    assert dry.json()["dry_run"] is True
    assert listing(library, "projects/drop") == before  # a dry run moves nothing

    job = queue_task(client, "drop", "folder_check")
    assert changes(job["result"]) == expected
    assert len(job["result"]["jobs"]) == 1  # the upload_postprocess of what it took in
    photo = wait_for(lambda: processed(client, "drop", "IMG_9"), timeout=60)
    assert size_of(client, photo["previewUrl"]) == (1600, 1200)
    assert photo["sidecars"] == ["IMG_9.JPG.xmp", "IMG_9.xmp"] and photo["keep_jpg"] is True
    assert photo["sidecar"] == "IMG_9.xmp"
    assert (photo["rating"], photo["label"]) == (4, "red")  # what the sidecar says
    assert listing(library, "projects/drop") == ["A.jpg", "IMG_9.JPG", "IMG_9.JPG.xmp", "IMG_9.xmp"]
    assert listing(library, "projects/drop/.trash") == ["A copy.jpg", "notes.txt", "stray.xmp"]
    assert maintenance.run(library, Maintenance.FOLDER_CHECK, "drop").changes == []

    by_hand(library, "projects/drop/IMG_9.xmp", None)  # deleted by hand
    forgotten = maintenance.run(library, Maintenance.MANIFEST_CHECK, "drop")
    assert [(c.action, c.name) for c in forgotten.changes] == [("forget", "IMG_9.xmp")]
    assert photo_of(client, "drop", "IMG_9")["sidecars"] == ["IMG_9.JPG.xmp"]


def test_manifest_check_notices_files_deleted_or_changed_by_hand(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    client.post("/api/projects", json={"folder": "mc"})
    upload(client, "mc", jpeg(tmp_path / "A.jpg", 600, 400), jpeg(tmp_path / "B.jpg", 800, 600))
    upload(client, "mc", jpeg(tmp_path / "C.jpg", 640, 480))
    run_worker()
    for name in "ABC":
        wait_for(lambda n=name: processed(client, "mc", n), timeout=60)
    by_hand(library, "projects/mc/A.jpg", None)
    by_hand(library, "projects/mc/B.jpg", jpeg(tmp_path / "B2.jpg", 1000, 500).read_bytes())
    same_size = bytearray(content(library, "projects/mc/C.jpg"))
    same_size[len(same_size) // 2] ^= 0x55  # one byte edited: the size cannot tell
    by_hand(library, "projects/mc/C.jpg", bytes(same_size))

    expected = [("forget", "A.jpg"), ("refresh", "B.jpg"), ("refresh", "C.jpg")]
    dry = client.post("/api/projects/mc/maintenance/manifest_check", params={"dryRun": "true"})
    assert changes(dry.json()) == expected
    no_hashes = with_settings(library, manifest_verify_hashes=False)
    quick = maintenance.run(no_hashes, Maintenance.MANIFEST_CHECK, "mc", dry_run=True)
    assert sorted((c.action, c.name) for c in quick.changes) == expected[:2]

    assert changes(queue_task(client, "mc", "manifest_check")["result"]) == expected
    assert photo_of(client, "mc", "A")["jpg_available"] is False
    photo = wait_for(lambda: processed(client, "mc", "B"), timeout=60)
    assert size_of(client, photo["previewUrl"]) == (1000, 500)  # made from the new bytes
    with library.engine.connect() as conn:
        recorded = dict(
            conn.execute(
                sa.select(images.c.original_filename, images.c.checksum).where(
                    images.c.deleted_at.is_(None)
                )
            ).all()
        )
    assert recorded["C.jpg"] == processing.blob_checksum(library, "projects/mc/C.jpg")
    wait_for(  # one byte off may or may not still decode; either way C is done with
        lambda: (
            processed(client, "mc", "C")
            or photo_of(client, "mc", "C")["files"][0]["status"] == "FAILED"
        ),
        timeout=60,
    )
    assert maintenance.run(library, Maintenance.MANIFEST_CHECK, "mc").changes == []

    cleaning = changes(queue_task(client, "mc", "manifest_cleaning")["result"])
    assert cleaning == [("drop", "A"), ("drop", "A.jpg")]  # the record, then its photo
    basenames = [p["basename"] for p in client.get("/api/projects/mc/photos").json()["photos"]]
    assert basenames == ["B", "C"]


def test_trash_is_purged_after_its_retention(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    client.post("/api/projects", json={"folder": "keep"})
    upload(client, "keep", jpeg(tmp_path / "P.jpg", 600, 400), dng(tmp_path / "P.DNG", 600, 400))
    run_worker()
    wait_for(lambda: processed(client, "keep", "P"), timeout=60)
    client.patch("/api/projects/keep/photos/P", json={"keep_raw": False})
    committed = client.post("/api/projects/keep/commit-changes").json()
    assert sorted(committed["jobs"]) == ["folder_check", "manifest_check", "manifest_cleaning"]
    for job_id in committed["jobs"].values():
        finished_job(client, job_id)
    (trashed,) = listing(library, "projects/keep/.trash")

    assert maintenance.run(library, Maintenance.TRASH, "keep").changes == []  # 30 days
    if isinstance(library.blobs, LocalBlobStore):  # a month in the trash
        path = library.blobs.path(f"projects/keep/.trash/{trashed}")
        month_ago = time.time() - 31 * 86400
        os.utime(path, (month_ago, month_ago))
        aged = library
    else:  # S3 dates objects itself: a retention of nothing instead
        aged = with_settings(library, trash_retention_days=0)
    assert maintenance.run(aged, Maintenance.TRASH, "keep", dry_run=True).changes[0].action == (
        "purge"
    )
    assert listing(library, "projects/keep/.trash") == [trashed]
    purged = maintenance.run(aged, Maintenance.TRASH, "keep")
    assert [(c.action, c.name) for c in purged.changes] == [("purge", trashed)]
    assert listing(library, "projects/keep/.trash") == []

    refused = client.post("/api/projects/keep/trash/restore", json={"filenames": ["P.DNG"]})
    assert refused.json()["refused"] == {"P.DNG": "not in the trash"}
    cleaned = maintenance.run(library, Maintenance.MANIFEST_CLEANING, "keep")
    assert [(c.action, c.name) for c in cleaned.changes] == [("drop", "P.DNG")]
    assert photo_of(client, "keep", "P")["files"][0]["filename"] == "P.jpg"


def _one_processed(
    client: httpx.Client, run_worker: Callable[[], Worker], folder: str, tmp_path: Path
) -> str:
    """A new project with one photo, A.jpg (900 x 600), processed; its image id."""
    client.post("/api/projects", json={"folder": folder})
    answer = upload(client, folder, jpeg(tmp_path / "A.jpg", 900, 600)).json()
    run_worker()
    wait_for(lambda: processed(client, folder, "A"), timeout=60)
    return str(answer["files"][0]["image_id"])


def test_manifest_cleaning_removes_stray_derivatives_and_remakes_lost_ones(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    image_id = _one_processed(client, run_worker, "clean", tmp_path)
    made = lookups.derivatives_of(library, [image_id])[image_id]
    stray = f"{image_records.derivative_folder(image_id)}/preview-oldrecipe.jpg"
    library.blobs.put_bytes(stray, b"left by a job that died")
    library.blobs.delete(made["preview"].storage_key)

    dry = maintenance.run(library, Maintenance.MANIFEST_CLEANING, "clean", dry_run=True)
    assert sorted((c.action, c.name) for c in dry.changes) == [
        ("delete", stray),
        ("regenerate", "A.jpg"),
    ]
    assert library.blobs.exists(stray)
    queue_task(client, "clean", "manifest_cleaning")
    assert not library.blobs.exists(stray)
    photo = wait_for(lambda: processed(client, "clean", "A"), timeout=60)
    assert size_of(client, photo["previewUrl"]) == (900, 600)


def test_the_library_sweep_finds_what_a_restored_database_does_not_know(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """A database restored from a backup older than the storage knows nothing of what
    came since: a project made since had its folder never looked at again, and the
    derivative folders of images uploaded since were kept for ever (each project's own
    maintenance sees only its own images). The sweep makes the folder a project again,
    whose folder_check takes its photos in, and deletes the unknown derivatives once an
    hour old; the derivatives of every known image stay."""
    known = _one_processed(client, run_worker, "kept", tmp_path)
    made = lookups.derivatives_of(library, [known])[known]
    unknown = "f0" + "9" * 30  # uploaded after the backup the database came from
    strays = [f"{image_records.derivative_folder(unknown)}/{name}" for name in ("a.jpg", "b.webp")]
    for key in strays:
        library.blobs.put_bytes(key, b"a derivative of an image nobody knows")
    by_hand(library, "projects/after/B.jpg", jpeg(tmp_path / "B.jpg", 640, 480).read_bytes())
    assert JobType.LIBRARY_SWEEP in registry.schedules

    done = maintenance.sweep_library(library)
    assert done == {"adopted": ["after"], "swept": []}  # the strays are too young
    assert all(library.blobs.exists(key) for key in strays)
    photo = wait_for(lambda: processed(client, "after", "B"), timeout=60)
    assert size_of(client, photo["previewUrl"]) == (640, 480)
    assert maintenance.sweep_library(library) == {"adopted": [], "swept": []}
    assert ingest.sweep_derivatives(library, older_than_s=0) == [unknown]
    assert not any(library.blobs.exists(key) for key in strays)
    assert all(library.blobs.exists(d.storage_key) for d in made.values())
    photo = processed(client, "kept", "A")
    assert photo is not None and size_of(client, photo["previewUrl"]) == (900, 600)


def test_every_project_gets_its_maintenance_schedules(
    client: httpx.Client, library: Library
) -> None:
    client.post("/api/projects", json={"folder": "sched"})
    with library.engine.connect() as conn:
        rows = conn.execute(
            sa.select(job_schedules).where(job_schedules.c.name.like("project:sched:%"))
        ).all()
    schedule = {r.job_type: (r.priority, r.interval_s, r.payload) for r in rows}
    folder = {"folder": "sched"}
    assert schedule == {
        "trash_maintenance": (100, 3600.0, folder),
        "manifest_check": (95, 6 * 3600.0, folder),
        "folder_check": (95, 6 * 3600.0, folder),
        "manifest_cleaning": (80, 24 * 3600.0, folder),
    }
    soonest = min(r.next_run_at for r in rows)
    assert soonest > datetime.now(UTC) + timedelta(minutes=55)  # a period from now

    with library.engine.begin() as conn:
        conn.execute(
            job_schedules.update()
            .where(job_schedules.c.name.like("project:sched:%"))
            .values(next_run_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    fired = library.queue.store.fire_due_schedules()
    fired_jobs = [library.queue.store.get_job(job_id) for job_id in fired]
    assert sorted((j.type, j.priority, j.payload["folder"]) for j in fired_jobs if j) == [
        ("folder_check", 95, "sched"),
        ("manifest_check", 95, "sched"),
        ("manifest_cleaning", 80, "sched"),
        ("trash_maintenance", 100, "sched"),
    ]
    assert library.queue.store.fire_due_schedules() == []  # once per period

    # a collection made by the photo API is a project too, with the same schedules
    client.post("/api/upload", data={"collection": "Holiday"}, files={"file": ("x.jpg", b"x")})
    with library.engine.connect() as conn:
        names = conn.execute(
            sa.select(sa.func.count()).where(job_schedules.c.name.like("project:holiday:%"))
        ).scalar_one()
    assert names == 4


def test_process_streams_item_events_and_the_stream_resumes(
    client: httpx.Client, live_server: str, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    client.post("/api/projects", json={"folder": "live"})
    upload(client, "live", jpeg(tmp_path / "A.jpg", 800, 600), dng(tmp_path / "B.DNG", 600, 400))
    run_worker()
    wait_for(lambda: processed(client, "live", "A") and processed(client, "live", "B"), timeout=60)

    reader = EventReader(live_server)
    reader.start()
    assert reader.connected.wait(10)
    queued = client.post("/api/projects/live/process", json={"force": True})
    assert queued.status_code == 202, queued.text
    job = finished_job(client, queued.json()["jobId"])
    assert job["type"] == "generate_derivatives" and job["result"]["rendered"] == 2
    assert job["itemsSummary"] | {"total": 2} == job["itemsSummary"]
    assert job["itemsSummary"]["done"] == 2
    assert [item["key"] for item in job["items"]] == ["A.jpg", "B.DNG"]

    def done_by_this_job() -> list[dict]:  # the upload's own job may report its item late
        items = reader.items("B.DNG")
        return [e for e in items if e["itemStatus"] == "done" and e["jobId"] == job["id"]]

    done = wait_for(done_by_this_job)
    assert done[0] | {"updated_at": None, "at": None, "eventId": None} == {
        "type": "item",
        "project_folder": "live",
        "filename": "B.DNG",
        "thumbnail_status": "done",
        "preview_status": "done",
        "updated_at": None,
        "at": None,
        "eventId": None,
        "jobId": job["id"],
        "key": "B.DNG",
        "itemStatus": "done",
        "error": None,
    }
    running = reader.items("A.jpg")[0]
    assert (running["itemStatus"], running["preview_status"]) == ("running", "done")
    wait_for(
        lambda: [e for e in reader.events if e["type"] == "job" and e["status"] == "COMPLETED"]
    )
    reader.stopping = True

    resume_after = reader.ids[1]
    resumed = EventReader(live_server, last_event_id=resume_after)
    resumed.start()
    wait_for(lambda: len(resumed.events) >= len(reader.events) - 2)
    resumed.stopping = True
    assert resumed.ids[: len(reader.ids) - 2] == reader.ids[2:]  # nothing lost, nothing twice
    assert resumed.ids == sorted(set(resumed.ids))

    again = finished_job(client, client.post("/api/projects/live/process", json={}).json()["jobId"])
    assert again["itemsSummary"]["skipped"] == 2  # already current: nothing to make


def test_project_job_api_checks_what_it_is_asked(client: httpx.Client, tmp_path: Path) -> None:
    client.post("/api/projects", json={"folder": "api"})
    upload(client, "api", jpeg(tmp_path / "A.jpg", 300, 200))
    refusals = [
        ("/api/projects/api/jobs", {"type": "explode"}),
        ("/api/projects/api/jobs", {"type": "OFFLOAD_ORIGINAL"}),
        ("/api/projects/api/jobs", {"type": "folder_check", "payload": {"filenames": ["A.jpg"]}}),
        ("/api/projects/api/jobs", {"type": "upload_postprocess"}),
        ("/api/projects/api/jobs", {"type": "generate_derivatives", "payload": {"filenames": 3}}),
        ("/api/projects/api/process", {"filenames": ["nope.jpg"]}),
        ("/api/projects/api/process", {"filenames": ["A.jpg", "A.jpg"]}),
        ("/api/projects/api/process", {"force": "very"}),
    ]
    for path, body in refusals:
        refused = client.post(path, json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.json()["detail"]
    assert client.post("/api/projects/nope/process", json={}).status_code == 404
    assert client.post("/api/projects/api/maintenance/explode").status_code == 422

    queued = client.post(
        "/api/projects/api/jobs",
        json={"type": "generate_derivatives", "payload": {"filenames": ["A.jpg"]}},
    ).json()
    assert queued["job"]["priority"] == 95 and queued["job"]["payload"]["folder"] == "api"
    detail = client.get(f"/api/jobs/{queued['jobId']}").json()
    assert detail["itemsSummary"]["pending"] == 1 and detail["items"][0]["key"] == "A.jpg"

    listed = client.get("/api/projects/api/jobs", params={"type": "generate_derivatives"}).json()
    assert [j["id"] for j in listed["jobs"]] == [queued["jobId"]]
    everything = client.get("/api/projects/api/jobs").json()["jobs"]
    assert {j["type"] for j in everything} == {"generate_derivatives", "upload_postprocess"}
    pending = client.get("/api/projects/api/jobs", params={"status": "pending"}).json()
    assert len(pending["jobs"]) == 2
    assert client.get("/api/projects/api/jobs", params={"type": "bogus"}).status_code == 422
    assert client.get("/api/projects/api/jobs", params={"status": "bogus"}).status_code == 422
    assert client.get("/api/jobs/987654").status_code == 404
    stream = client.get("/api/jobs/stream", headers={"Last-Event-ID": "abc"})
    assert stream.status_code == 400


@pytest.mark.parametrize("library_changes", [{"settle_seconds": 600}])
def test_a_sidecar_edited_moments_ago_is_reported_settling_and_read_by_the_check_it_queues(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """A manifest_check run just after darktable saved into a sidecar answered no change
    at all; it says the sidecar is settling now, and queues itself for when it is old
    enough to read (settle_seconds), which takes the edit."""
    client.post("/api/projects", json={"folder": "m"})
    upload(client, "m", jpeg(tmp_path / "IMG_1.JPG", 600, 400))
    run_worker()
    wait_for(lambda: processed(client, "m", "IMG_1"), timeout=60)
    client.patch("/api/projects/m/photos/IMG_1", json={"rating": 2})
    client.post("/api/projects/m/commit-changes", json={"trash": False})
    by_hand(library, "projects/m/IMG_1.xmp", write_decisions(None, Decisions("unflagged", 4)))

    report = maintenance.run(library, Maintenance.MANIFEST_CHECK, "m")
    assert (report.changes, report.settling) == ([], ["IMG_1.xmp"]) and report.recheck
    (again,) = [j for j in library.queue.store.list_jobs(job_type="manifest_check")[0]
                if j.id == report.recheck]  # fmt: skip
    assert (again.status.value, again.payload) == ("pending", {"folder": "m"})
    assert again.run_at > datetime.now(UTC) + timedelta(seconds=500)  # when it has settled
    assert photo_of(client, "m", "IMG_1")["rating"] == 2

    settled = with_settings(library, settle_seconds=0)
    report = maintenance.run(settled, Maintenance.MANIFEST_CHECK, "m")
    assert [c.action for c in report.changes] == ["reread"] and report.settling == []
    assert photo_of(client, "m", "IMG_1")["rating"] == 4
