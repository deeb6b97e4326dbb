"""The photo pipeline on both backends: ingest to STORED through real workers, one copy
per collection for the same bytes, and broken files failing alone with their code."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import pyvips
import sqlalchemy as sa

from enlarger import errors
from enlarger.api.ops import error_answer
from enlarger.bootstrap import Services, build_services, registry
from enlarger.db.engine import hold_briefly
from enlarger.db.schema import images, jobs, photo_sidecars, photos
from enlarger.db.types import db_now
from enlarger.library import (
    edits,
    image_records,
    ingest,
    lookups,
    maintenance,
    processing,
    projects,
    sidecars,
)
from enlarger.library.image_records import ImageStatus, JobType
from enlarger.library.library import Library
from enlarger.library.photos import Capture, same_capture
from enlarger.library.tasks import Maintenance
from enlarger.media.xmp import Decisions, write_decisions
from enlarger.queue import ErrorCode, JobCancelled, JobContext, Worker
from enlarger.queue.model import ClaimedJob, ClaimRequest
from enlarger.queue.retry import as_dependency_down
from enlarger.storage import StorageUnavailable
from tests.conftest import wait_for
from tests.images import jpeg


def _ingest(library: Library, path: Path, collection: str = "Trip") -> image_records.Ingested:
    return ingest.ingest(
        library, ingest.copy_to_temp(library, path), filename=path.name, collection=collection
    )


def _settled(library: Library, image_id: str) -> sa.Row | None:
    row = image_records.get_image_row(library, image_id, include_deleted=True)
    return row if row.status in (ImageStatus.STORED, ImageStatus.FAILED) else None


def _jobs_of(library: Library, job_type: JobType) -> list[sa.Row]:
    with library.engine.connect() as conn:
        return conn.execute(sa.select(jobs).where(jobs.c.type == job_type.value)).all()


def test_upload_to_stored(
    library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    source = jpeg(tmp_path / "Beach Day.jpg", 2400, 1600)
    ingested = _ingest(library, source)
    assert ingested.status is ImageStatus.INGESTED and ingested.created
    row = image_records.get_image_row(library, ingested.image_id)
    assert (row.width, row.height, row.format) == (2400, 1600, "jpeg")
    assert Path(row.temp_path).is_file()

    run_worker()
    row = wait_for(lambda: _settled(library, ingested.image_id), timeout=60)
    assert row.status == ImageStatus.STORED, row.error_message
    assert row.original_key == "projects/trip/Beach Day.jpg"
    assert row.temp_path is None and row.thumbhash
    stored = library.blobs.path(row.original_key)  # type: ignore[attr-defined]
    assert stored.read_bytes() == source.read_bytes()  # the original, untouched
    made = lookups.derivatives_of(library, [row.id])[row.id]
    assert set(made) == {"thumb_64", "thumb_128", "thumb_256", "thumb_512", "preview"}
    recipes = {r.name: r for r in library.recipes.all}
    for name, derivative in made.items():
        assert derivative.recipe_hash == recipes[name].hash
        image = pyvips.Image.new_from_file(str(library.blobs.path(derivative.storage_key)))
        assert max(image.width, image.height) == recipes[name].long_side
    assert not list((library.settings.data_dir / "tmp").iterdir())


def test_an_upload_is_answered_as_taken_though_a_worker_moved_it_on_already(
    library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upload's answer says INGESTED, as documented, even when a quick worker stored
    its original before the answer was made (a client saw PROCESSING)."""
    read_back = image_records.get_image_row

    def worker_first(library: Library, image_id: str) -> sa.Row:
        processing.offload_original(library, image_id)
        return read_back(library, image_id)

    monkeypatch.setattr(ingest, "get_image_row", worker_first)
    ingested = _ingest(library, jpeg(tmp_path / "quick.jpg", 300, 200))
    assert ingested.status is ImageStatus.INGESTED and ingested.created
    assert read_back(library, ingested.image_id).status == ImageStatus.PROCESSING


def test_an_earlier_uploads_preview_runs_before_a_later_upload(
    library: Library, tmp_path: Path
) -> None:
    """An upload's preview job runs at the upload's priority, in arrival order: while
    uploads keep coming, the photos that arrived first get their previews, rather than
    every preview waiting until the last upload is stored."""
    first = _ingest(library, jpeg(tmp_path / "a.jpg", 300, 200)).image_id
    processing.offload_original(library, first)  # its preview is queued
    later = _ingest(library, jpeg(tmp_path / "b.jpg", 320, 200)).image_id
    _, (claimed,) = library.queue.store.exchange("test", [], [ClaimRequest(2, None)], 60)
    assert [(job.type, job.payload["imageId"]) for job in claimed] == [
        (JobType.OFFLOAD_ORIGINAL.value, first),
        (JobType.PREVIEW_GENERATION.value, first),
    ]
    assert later not in {job.payload["imageId"] for job in claimed}


def test_same_bytes_same_collection_is_one_image(library: Library, tmp_path: Path) -> None:
    source = jpeg(tmp_path / "a.jpg", 300, 200)
    first = _ingest(library, source)
    again = _ingest(library, source)
    elsewhere = _ingest(library, source, collection="Other")
    assert again.image_id == first.image_id and not again.created
    assert elsewhere.image_id != first.image_id
    assert len(_jobs_of(library, JobType.OFFLOAD_ORIGINAL)) == 2


def test_broken_files_fail_alone(
    library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    svg = tmp_path / "x.svg"
    svg.write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    whole = jpeg(tmp_path / "whole.jpg", 1600, 1200).read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole[: len(whole) // 3])  # header fine, pixels missing
    good = jpeg(tmp_path / "good.jpg", 800, 600)

    results = {p.name: _ingest(library, p) for p in (empty, svg, cut, good)}
    assert results["empty.jpg"].error_code == "EMPTY_FILE"
    assert results["x.svg"].error_code == "UNSUPPORTED_FORMAT"
    assert results["empty.jpg"].status is ImageStatus.FAILED

    run_worker()
    for name in ("cut.jpg", "good.jpg"):
        wait_for(lambda n=name: _settled(library, results[n].image_id), timeout=60)
    assert image_records.get_image_row(library, results["good.jpg"].image_id).status == "STORED"
    cut_row = image_records.get_image_row(library, results["cut.jpg"].image_id)
    assert (cut_row.status, cut_row.error_code) == ("FAILED", "CORRUPT_IMAGE")

    def failed_jobs() -> list[sa.Row]:  # the image fails inside its job, before its outcome
        made_by = (JobType.PREVIEW_GENERATION, JobType.THUMBNAIL_GENERATION)
        return [j for t in made_by for j in _jobs_of(library, t) if j.status == "failed"]

    failed = wait_for(failed_jobs)
    assert all(j.attempts == 1 and j.error_code == "CORRUPT_IMAGE" for j in failed)


def test_offload_is_safe_to_repeat(library: Library, tmp_path: Path) -> None:
    ingested = _ingest(library, jpeg(tmp_path / "a.jpg", 300, 200))
    key = processing.offload_original(library, ingested.image_id)
    assert processing.offload_original(library, ingested.image_id) == key
    assert len(_jobs_of(library, JobType.PREVIEW_GENERATION)) == 1  # idempotency key held


def test_an_offload_paused_mid_move_holds_up_no_other(
    library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker paused while it moves an original (SIGSTOP, a long GC pause, a network
    partition) holds no lock: another image of the same project lands meanwhile."""
    first = _ingest(library, jpeg(tmp_path / "a.jpg", 300, 200))
    second = _ingest(library, jpeg(tmp_path / "b.jpg", 320, 200))
    moving, resume = threading.Event(), threading.Event()
    take_file = library.blobs.take_file

    def pausing_take_file(key: str, source: Path) -> None:
        if key.endswith("/a.jpg"):
            moving.set()
            resume.wait(timeout=120)
        take_file(key, source)

    monkeypatch.setattr(library.blobs, "take_file", pausing_take_file)
    with ThreadPoolExecutor(2) as pool:
        paused = pool.submit(processing.offload_original, library, first.image_id)
        assert moving.wait(timeout=30)
        try:
            other = pool.submit(processing.offload_original, library, second.image_id)
            assert other.result(timeout=20) == "projects/trip/b.jpg"
        finally:
            resume.set()
        assert paused.result(timeout=30) == "projects/trip/a.jpg"
    for image_id in (first.image_id, second.image_id):
        assert image_records.get_image_row(library, image_id).status == ImageStatus.PROCESSING


def test_a_restore_paused_mid_move_holds_up_no_upload_and_a_failed_one_gives_its_name_up(
    library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Restoring from the trash held the project's lock while it moved the file: every
    upload into the project waited on a slow or stalled storage. Now the name is claimed,
    the file moved with no transaction open, and a move that fails frees the name."""
    trashed = _ingest(library, jpeg(tmp_path / "a.jpg", 300, 200)).image_id
    processing.offload_original(library, trashed)
    assert edits.delete_image(library, trashed)
    arriving = _ingest(library, jpeg(tmp_path / "b.jpg", 320, 200)).image_id
    moving, resume = threading.Event(), threading.Event()
    move = library.blobs.move
    failures = [StorageUnavailable("storage did not answer")]

    def pausing_move(source: str, key: str) -> None:
        if key == "projects/trip/a.jpg" and failures:
            raise failures.pop()
        move(source, key)
        if key == "projects/trip/a.jpg":  # moved, not yet recorded
            moving.set()
            resume.wait(timeout=120)

    monkeypatch.setattr(library.blobs, "move", pausing_move)
    with pytest.raises(StorageUnavailable):
        edits.restore_image(library, trashed, "projects/trip/a.jpg")
    assert image_records.get_image_row(library, trashed, include_deleted=True).landing_key is None
    with ThreadPoolExecutor(2) as pool:
        paused = pool.submit(edits.restore_image, library, trashed, "projects/trip/a.jpg")
        assert moving.wait(timeout=30)
        try:
            other = pool.submit(processing.offload_original, library, arriving)
            assert other.result(timeout=20) == "projects/trip/b.jpg"
            # maintenance meanwhile neither drops the image (its trash file is gone) nor
            # takes the file that arrived in the folder for a new one
            for task in (Maintenance.MANIFEST_CLEANING, Maintenance.FOLDER_CHECK):
                done = maintenance.run(library, task, "trip")
                assert not [c for c in done.changes if "a.jpg" in c.name], done.changes
        finally:
            resume.set()
        paused.result(timeout=30)
    restored = image_records.get_image_row(library, trashed)
    assert (restored.original_key, restored.landing_key) == ("projects/trip/a.jpg", None)


def test_a_restore_interrupted_after_its_move_is_finished_by_the_next(
    library: Library, tmp_path: Path
) -> None:
    """Its process died between moving the file and recording it: the claim and the
    moved file are found, and the next restore asked for records it."""
    trashed = _ingest(library, jpeg(tmp_path / "a.jpg", 300, 200)).image_id
    processing.offload_original(library, trashed)
    assert edits.delete_image(library, trashed)
    in_trash = image_records.get_image_row(library, trashed, include_deleted=True).original_key
    library.blobs.move(in_trash, "projects/trip/a.jpg")
    with library.engine.begin() as conn:
        conn.execute(
            images.update()
            .where(images.c.id == trashed)
            .values(landing_key="projects/trip/a.jpg", updated_at=db_now(-3600))
        )
    edits.restore_image(library, trashed, "projects/trip/a.jpg")
    restored = image_records.get_image_row(library, trashed)
    assert (restored.original_key, restored.landing_key) == ("projects/trip/a.jpg", None)


def _received(library: Library, folder: Path, name: str) -> image_records.Received:
    folder.mkdir(exist_ok=True)
    return ingest.copy_to_temp(library, jpeg(folder / name, 500, 300))


def _pause_move_to(
    library: Library, monkeypatch: pytest.MonkeyPatch, target: str, failures: list[Exception]
) -> tuple[threading.Event, threading.Event]:
    """Make moves to keys ending in `target` raise the `failures` first, then move and
    pause (moved, not yet recorded) until the second event is set."""
    moving, resume = threading.Event(), threading.Event()
    move = library.blobs.move

    def pausing_move(source: str, key: str) -> None:
        if key.endswith(target) and failures:
            raise failures.pop()
        move(source, key)
        if key.endswith(target):
            moving.set()
            resume.wait(timeout=120)

    monkeypatch.setattr(library.blobs, "move", pausing_move)
    return moving, resume


def test_a_delete_paused_mid_move_holds_up_no_upload_and_a_failed_one_keeps_the_image(
    library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleting held the image's row (on SQLite, the whole database) while it moved the
    file to the trash. Now the trash's name is claimed, the file moved with none open."""
    doomed = _ingest(library, jpeg(tmp_path / "a.jpg", 300, 200)).image_id
    processing.offload_original(library, doomed)
    arriving = _ingest(library, jpeg(tmp_path / "b.jpg", 320, 200)).image_id
    moving, resume = _pause_move_to(
        library, monkeypatch, "-a.jpg", [StorageUnavailable("storage did not answer")]
    )
    with pytest.raises(StorageUnavailable):
        edits.delete_image(library, doomed)
    kept = image_records.get_image_row(library, doomed)
    assert (kept.original_key, kept.landing_key) == ("projects/trip/a.jpg", None)
    with ThreadPoolExecutor(2) as pool:
        paused = pool.submit(edits.delete_image, library, doomed)
        assert moving.wait(timeout=30)
        try:
            other = pool.submit(processing.offload_original, library, arriving)
            assert other.result(timeout=20) == "projects/trip/b.jpg"
            with pytest.raises(errors.Conflict, match="being moved"):
                edits.update_image(library, doomed, collection="Elsewhere")
            for task in (Maintenance.MANIFEST_CHECK, Maintenance.FOLDER_CHECK):
                done = maintenance.run(library, task, "trip")
                assert not [c for c in done.changes if "a.jpg" in c.name], done.changes
        finally:
            resume.set()
        assert paused.result(timeout=30)
    gone = image_records.get_image_row(library, doomed, include_deleted=True)
    assert gone.deleted_at is not None and gone.landing_key is None
    assert gone.original_key == f"projects/trip/.trash/{doomed}-a.jpg"
    assert library.blobs.exists(gone.original_key)
    assert not library.blobs.exists("projects/trip/a.jpg")


def test_a_move_to_another_collection_paused_mid_move_holds_up_no_upload_there(
    library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moving an image to another collection held that project's lock across the move
    (and a read of any file in the way): every upload into it waited. Now the name is
    claimed first; the folder's check meanwhile knows the file arriving is no stranger."""
    moved = _ingest(library, jpeg(tmp_path / "a.jpg", 300, 200)).image_id
    processing.offload_original(library, moved)
    arriving = _ingest(library, jpeg(tmp_path / "b.jpg", 320, 200), "Final").image_id
    moving, resume = _pause_move_to(
        library, monkeypatch, "final/a.jpg", [StorageUnavailable("storage did not answer")]
    )
    with pytest.raises(StorageUnavailable):
        edits.update_image(library, moved, collection="Final")
    kept = image_records.get_image_row(library, moved)
    assert (kept.original_key, kept.landing_key) == ("projects/trip/a.jpg", None)
    with ThreadPoolExecutor(2) as pool:
        paused = pool.submit(edits.update_image, library, moved, collection="Final")
        assert moving.wait(timeout=30)
        try:
            other = pool.submit(processing.offload_original, library, arriving)
            assert other.result(timeout=20) == "projects/final/b.jpg"
            done = maintenance.run(library, Maintenance.FOLDER_CHECK, "final")
            assert not done.changes, done.changes  # a.jpg arrived: no stranger
            done = maintenance.run(library, Maintenance.MANIFEST_CHECK, "trip")
            assert not done.changes, done.changes  # a.jpg left: not gone
            (other_a,) = projects.upload(  # another a.jpg, sent to the project meanwhile
                library, "final", [("a.jpg", _received(library, tmp_path / "other", "a.jpg"))]
            ).files
            assert other_a.stored_as == "a-2.jpg", other_a
        finally:
            resume.set()
        row = paused.result(timeout=30)
    assert processing.offload_original(library, other_a.image_id) == "projects/final/a-2.jpg"
    assert image_records.get_image_row(library, other_a.image_id).original_filename == "a-2.jpg"
    assert (row.original_key, row.landing_key, row.folder) == (
        "projects/final/a.jpg",
        None,
        "final",
    )
    with library.engine.connect() as conn:
        in_final = conn.execute(
            sa.select(images.c.original_filename).where(images.c.project_id == row.project_id)
        ).scalars()
        named = conn.execute(
            sa.select(photos.c.basename).where(photos.c.project_id == row.project_id)
        ).scalars()
        assert sorted(in_final) == ["a-2.jpg", "a.jpg", "b.jpg"]  # no copy taken for new
        assert sorted(named) == ["a", "a-2", "b"]


@pytest.mark.parametrize("copied", [False, True], ids=["moved", "copied"])
@pytest.mark.parametrize("where", ["Final", "trash", "restore"])
def test_a_move_interrupted_after_the_file_moved_is_finished_by_maintenance(
    library: Library, tmp_path: Path, where: str, copied: bool
) -> None:
    """Its process died between moving the file and recording it (a deletion's, a move's
    to another collection, a restore's), or halfway through the move (S3 copies, then
    deletes): manifest_check finds the stale claim and finishes the work. A restore's
    own copy was taken for a file put there by hand: the restore was undone and the copy
    later taken in as a new image."""
    image_id = _ingest(library, jpeg(tmp_path / "a.jpg", 300, 200)).image_id
    processing.offload_original(library, image_id)
    if where == "restore":
        assert edits.delete_image(library, image_id)
        landing = "projects/trip/a.jpg"
    elif where == "trash":
        landing = f"projects/trip/.trash/{image_id}-a.jpg"
    else:
        with library.engine.begin() as conn:
            ingest.project_id_for(library, conn, where)
        landing = "projects/final/a.jpg"
    origin = image_records.get_image_row(library, image_id, include_deleted=True).original_key
    with library.blobs.local_copy(origin) as path:
        library.blobs.put_file(landing, path)
    if not copied:
        library.blobs.delete(origin)
    with library.engine.begin() as conn:
        conn.execute(
            images.update()
            .where(images.c.id == image_id)
            .values(landing_key=landing, updated_at=db_now(-3600))
        )
    done = maintenance.run(library, Maintenance.MANIFEST_CHECK, "trip")
    assert [c.action for c in done.changes] == ["finish"], done.changes
    row = image_records.get_image_row(library, image_id, include_deleted=True)
    assert (row.original_key, row.landing_key) == (landing, None)
    assert (row.deleted_at is not None) == (where == "trash")
    assert row.folder == ("trip" if where != "Final" else "final")
    assert library.blobs.exists(landing) and not library.blobs.exists(origin)
    for project in ("trip", "final") if where == "Final" else ("trip",):
        found = maintenance.run(library, Maintenance.FOLDER_CHECK, project)
        assert not found.changes, found.changes  # no copy left behind to be taken in


def test_a_claim_left_by_a_dead_process_is_finished_by_the_next_request(
    library: Library, tmp_path: Path
) -> None:
    """A move's claim left by a process that died answered every delete "being moved"
    until a manifest_check, six hours away, finished it. The next request does now."""
    image_id = _ingest(library, jpeg(tmp_path / "a.jpg", 300, 200)).image_id
    processing.offload_original(library, image_id)
    with library.engine.begin() as conn:
        ingest.project_id_for(library, conn, "Final")
        conn.execute(  # a move to Final claimed its name; the process died before moving
            images.update()
            .where(images.c.id == image_id)
            .values(landing_key="projects/final/a.jpg", updated_at=db_now(-3600))
        )
    assert edits.delete_image(library, image_id)
    row = image_records.get_image_row(library, image_id, include_deleted=True)
    assert row.deleted_at is not None and row.landing_key is None
    assert row.original_key == f"projects/final/.trash/{image_id}-a.jpg"
    assert library.blobs.exists(row.original_key)

    other = _ingest(library, jpeg(tmp_path / "b.jpg", 320, 200)).image_id
    processing.offload_original(library, other)
    with library.engine.begin() as conn:  # a deletion claimed the trash, and died
        conn.execute(
            images.update()
            .where(images.c.id == other)
            .values(landing_key=f"projects/trip/.trash/{other}-b.jpg", updated_at=db_now(-3600))
        )
    with pytest.raises(errors.NotFound):  # the deletion, finished first: nothing to move
        edits.update_image(library, other, collection="Final")
    assert image_records.get_image_row(library, other, include_deleted=True).deleted_at is not None


def _sidecar_row(library: Library, name: str) -> sa.Row:
    with library.engine.connect() as conn:
        return conn.execute(sa.select(photo_sidecars).where(photo_sidecars.c.name == name)).one()


def test_sidecars_are_written_trashed_and_brought_back_with_no_lock_held(
    library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storing a sidecar, sending it to the trash and bringing it back each held the
    project's lock (on SQLite, the whole database) while storage wrote or moved the
    file. Now each claims the name first: an upload into the project lands meanwhile,
    and maintenance neither forgets the sidecar on its way nor takes it for a new one."""
    image_id = _ingest(library, jpeg(tmp_path / "a.jpg", 300, 200)).image_id
    processing.offload_original(library, image_id)
    project = lookups.project_row(
        library, image_records.get_image_row(library, image_id).project_id
    )
    rated = write_decisions(None, Decisions("pick", 3, None))
    uploads = iter(
        _ingest(library, jpeg(tmp_path / f"{n}.jpg", 300 + n, 200)).image_id for n in range(3)
    )
    held, resume = threading.Event(), threading.Event()
    put_bytes, move = library.blobs.put_bytes, library.blobs.move

    def pausing(real: Callable[..., None]) -> Callable[..., None]:
        def paused(*args: object) -> None:
            real(*args)
            if "a.xmp" in str(args):
                held.set()
                resume.wait(timeout=120)

        return paused

    monkeypatch.setattr(library.blobs, "put_bytes", pausing(put_bytes))
    monkeypatch.setattr(library.blobs, "move", pausing(move))
    photo_id = _sidecar_photo(library, project.id, "a")
    steps = {
        "store": lambda: sidecars.store(library, project, "a.xmp", rated),
        "trash": lambda: sidecars.send_to_trash(library, "trip", photo_id),
        "back": lambda: sidecars.bring_back(library, "trip", photo_id, ["a.jpg"], ["a.jpg"]),
    }
    for step, run in steps.items():
        held.clear()
        resume.clear()
        with ThreadPoolExecutor(2) as pool:
            paused = pool.submit(run)
            assert held.wait(timeout=30), step
            try:
                other = pool.submit(processing.offload_original, library, next(uploads))
                assert other.result(timeout=20).startswith("projects/trip/"), step
                for task in (Maintenance.MANIFEST_CHECK, Maintenance.FOLDER_CHECK):
                    done = maintenance.run(library, task, "trip")
                    assert not [c for c in done.changes if "a.xmp" in c.name], (step, done)
            finally:
                resume.set()
            paused.result(timeout=30)
        row = _sidecar_row(library, "a.xmp")
        assert row.moving_to is None and library.blobs.exists(row.key), step
        assert (row.trashed_at is not None) == (step == "trash"), step
        assert row.key.startswith("projects/trip/.trash/" if step == "trash" else "projects/trip/a")


def _sidecar_photo(library: Library, project_id: int, basename: str) -> int:
    with library.engine.connect() as conn:
        return conn.execute(
            sa.select(photos.c.id).where(
                photos.c.project_id == project_id, photos.c.basename == basename
            )
        ).scalar_one()


def test_a_sidecar_move_interrupted_is_finished_by_maintenance(
    library: Library, tmp_path: Path
) -> None:
    image_id = _ingest(library, jpeg(tmp_path / "a.jpg", 300, 200)).image_id
    processing.offload_original(library, image_id)
    project = lookups.project_row(
        library, image_records.get_image_row(library, image_id).project_id
    )
    sidecars.store(library, project, "a.xmp", write_decisions(None, Decisions("pick", 3, None)))
    in_trash = "projects/trip/.trash/a.xmp"
    with library.engine.begin() as conn:  # claimed by a process that died before moving
        conn.execute(
            photo_sidecars.update()
            .where(photo_sidecars.c.key == "projects/trip/a.xmp")
            .values(moving_to=in_trash, moving_since=db_now(-3600))
        )
    done = maintenance.run(library, Maintenance.MANIFEST_CHECK, "trip")
    assert [(c.action, c.name) for c in done.changes] == [("finish", "a.xmp")]
    row = _sidecar_row(library, "a.xmp")
    assert (row.key, row.moving_to) == (in_trash, None) and row.trashed_at is not None
    assert library.blobs.exists(in_trash) and not library.blobs.exists("projects/trip/a.xmp")


def test_a_rescued_offload_and_a_repeated_preview_job_make_nothing_twice(
    library: Library,
    run_worker: Callable[[], Worker],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker frozen mid-offload, its job rescued and done by another, the image stored:
    when it thaws it queues nothing. A preview job queued again makes nothing again."""
    image_id = _ingest(library, jpeg(tmp_path / "a.jpg", 900, 600)).image_id
    moving, resume = threading.Event(), threading.Event()
    take_file = library.blobs.take_file

    def first_call_pauses(key: str, source: Path) -> None:
        if not moving.is_set():
            moving.set()
            resume.wait(timeout=120)
        take_file(key, source)

    monkeypatch.setattr(library.blobs, "take_file", first_call_pauses)
    with ThreadPoolExecutor(1) as pool:
        frozen = pool.submit(processing.offload_original, library, image_id)
        assert moving.wait(timeout=30)
        try:
            key = processing.offload_original(library, image_id)  # the rescued attempt
            run_worker()
            wait_for(lambda: _settled(library, image_id), timeout=60)
        finally:
            resume.set()
        assert frozen.result(timeout=30) == key

    def finished(job_type: JobType) -> list[sa.Row] | None:
        found = _jobs_of(library, job_type)
        return found if all(j.status == "completed" for j in found) else None

    # the image is STORED inside the preview job, a moment before the job is completed
    wait_for(lambda: finished(JobType.PREVIEW_GENERATION), timeout=60)
    with library.engine.begin() as conn:
        assert processing.enqueue_preview(library, conn, image_id, key, priority=0)
    ran = wait_for(lambda: finished(JobType.PREVIEW_GENERATION), timeout=60)
    in_order = sorted(ran, key=lambda j: j.id)
    assert [j.result.get("skipped") for j in in_order] == [None, "already made"]
    assert _jobs_of(library, JobType.THUMBNAIL_GENERATION) == []  # the preview job made them
    assert image_records.get_image_row(library, image_id).status == ImageStatus.STORED


def test_a_thawed_run_whose_job_was_rescued_records_nothing_and_queues_nothing(
    services: Services, library: Library, tmp_path: Path
) -> None:
    """A worker frozen while it renders a preview comes back after its job was rescued
    and run again: its late record is refused in the transaction itself, not only its
    result, and the image stays PROCESSING until the rescuer records the set."""
    image_id = _ingest(library, jpeg(tmp_path / "a.jpg", 900, 600)).image_id
    key = processing.offload_original(library, image_id)
    store = library.queue.store
    (preview_job,) = _jobs_of(library, JobType.PREVIEW_GENERATION)

    def claim(worker: str) -> ClaimedJob:
        _, (claimed,) = store.exchange(worker, [], [ClaimRequest(20)], 30)
        return next(job for job in claimed if job.id == preview_job.id)

    def context(run: ClaimedJob) -> JobContext:
        return JobContext(
            run.id, run.type, 1, 3, run.lease_token, lambda *_: None, services=services
        )

    frozen = claim("frozen-worker")
    with library.engine.begin() as conn:  # its lease runs out: rescued, and claimed again
        lapsed = jobs.update().where(jobs.c.id == frozen.id)
        conn.execute(lapsed.values(lease_expires_at=jobs.c.locked_at))
    assert frozen.id in store.rescue_expired()
    rescuer = claim("rescuer")
    payload = {"imageId": image_id, "originalPath": key}
    with pytest.raises(JobCancelled):
        registry.get(JobType.PREVIEW_GENERATION.value).fn(context(frozen), payload)
    assert lookups.derivatives_of(library, [image_id])[image_id] == {}
    assert image_records.get_image_row(library, image_id).status == ImageStatus.PROCESSING
    done = registry.get(JobType.PREVIEW_GENERATION.value).fn(context(rescuer), payload)
    made = [library.recipes.preview, *library.recipes.thumbnails]
    assert done["derivatives"] == [recipe.name for recipe in made]
    assert done["imageStatus"] == ImageStatus.STORED.value
    assert _jobs_of(library, JobType.THUMBNAIL_GENERATION) == []


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_stuck_session_costs_seconds_not_the_cluster(engine: sa.Engine) -> None:
    """On PostgreSQL a session gives up waiting on a lock after seconds, and one that sits
    in an open transaction (its process paused or cut off) is closed by the server."""
    with engine.connect() as conn:
        shown = {
            name: conn.exec_driver_sql(f"SHOW {name}").scalar()
            for name in ("lock_timeout", "idle_in_transaction_session_timeout")
        }
    assert shown == {"lock_timeout": "10s", "idle_in_transaction_session_timeout": "1min"}
    with engine.begin() as conn:  # a transaction holding the lock uploads wait on: 5 s
        hold_briefly(conn)
        held = conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout").scalar()
    assert held == "5s"


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_lock_not_had_in_time_is_a_busy_database_not_an_outage(engine: sa.Engine) -> None:
    """A session's lock_timeout was told as "database unreachable" in the logs and the
    API's 503: it is waited out the same way, but said as what it is."""
    with engine.connect() as holder, engine.connect() as waiter:
        holder.exec_driver_sql("BEGIN")
        holder.exec_driver_sql("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
        waiter.exec_driver_sql("BEGIN")
        waiter.exec_driver_sql("SET LOCAL lock_timeout = '100ms'")
        with pytest.raises(sa.exc.OperationalError) as caught:
            waiter.execute(sa.select(jobs.c.id).limit(1))
        holder.rollback()
    down = as_dependency_down(caught.value)
    assert down is not None and down.code == ErrorCode.DATABASE_BUSY and not down.is_outage
    status, body = error_answer(caught.value, "r1", down)
    assert status == 503 and json.loads(body)["errorCode"] == "DATABASE_BUSY"
    assert "busy" in json.loads(body)["detail"]


def test_a_hand_dropped_file_is_not_overwritten(library: Library, tmp_path: Path) -> None:
    library.blobs.put_bytes("projects/trip/a.jpg", b"someone else's file")
    ingested = _ingest(library, jpeg(tmp_path / "a.jpg", 300, 200))
    key = processing.offload_original(library, ingested.image_id)
    assert key.startswith("projects/trip/a-") and key.endswith(".jpg")
    assert library.blobs.path("projects/trip/a.jpg").read_bytes() == b"someone else's file"  # type: ignore[attr-defined]


def _stored_photo(library: Library, run_worker: Callable[[], Worker], tmp_path: Path) -> sa.Row:
    """A 2400 x 1600 photo uploaded and STORED by a worker, which is stopped again."""
    image_id = _ingest(library, jpeg(tmp_path / "a.jpg", 2400, 1600)).image_id
    worker = run_worker()
    stored = wait_for(lambda: _settled(library, image_id), timeout=60)
    worker.stop()
    return stored


def test_backfill_after_a_recipe_change(
    library: Library,
    run_worker: Callable[[], Worker],
    make_worker: Callable[..., Worker],
    tmp_path: Path,
) -> None:
    image_id = _stored_photo(library, run_worker, tmp_path).id
    assert processing.backfill(library).images == 0  # everything current

    before = lookups.derivatives_of(library, [image_id])[image_id]
    old_256, old_512 = before["thumb_256"].storage_key, before["thumb_512"].storage_key
    changed = library.settings.replace(thumbnail_sizes="64,128,256,1024", thumbnail_quality=70)
    later = build_services(changed, engine=library.engine).library
    assert later.recipes.preview.hash == library.recipes.preview.hash
    assert processing.backfill(later) == processing.Backfill(images=1, retired=1)
    # 512 px is no size any more: gone from the image and from storage at once
    assert "thumb_512" not in lookups.derivatives_of(later, [image_id])[image_id]
    assert not later.blobs.exists(old_512)
    assert processing.backfill(later) == processing.Backfill(0, 0)  # queued already, once
    (job,) = [j for j in _jobs_of(later, JobType.THUMBNAIL_GENERATION) if j.status == "pending"]
    assert job.priority == image_records.BACKFILL_PRIORITY < later.settings.priority_threshold
    assert job.payload["sourcePath"].endswith(".jpg") and "/preview-" in job.payload["sourcePath"]

    make_worker(registry, data_dir=changed.data_dir, database_url=changed.database_url,
                thumbnail_sizes=changed.thumbnail_sizes,
                thumbnail_quality=changed.thumbnail_quality)  # fmt: skip

    def has_1024() -> bool:
        return "thumb_1024" in lookups.derivatives_of(later, [image_id])[image_id]

    wait_for(has_1024, timeout=60)
    thumb = lookups.derivatives_of(later, [image_id])[image_id]["thumb_1024"]
    assert thumb.width == 1024 and abs(thumb.height - 683) <= 1  # from the 2000x1333 preview
    new_256 = lookups.derivatives_of(later, [image_id])[image_id]["thumb_256"].storage_key
    assert new_256 != old_256 and later.blobs.exists(new_256)
    # an older recipe's file is removed, just after the new one is recorded
    wait_for(lambda: not later.blobs.exists(old_256), timeout=10)
    wait_for(lambda: processing.backfill(later).images == 0 or None, timeout=30)
    assert processing.backfill(later, everything=True).images == 1


def test_a_size_added_later_changes_neither_the_thumbhash_nor_the_measurements(
    library: Library,
    run_worker: Callable[[], Worker],
    make_worker: Callable[..., Worker],
    tmp_path: Path,
) -> None:
    """The backfill of a new thumbnail size makes that size alone, from the preview: the
    placeholder clients cache and the culling numbers stay what the upload made."""
    stored = _stored_photo(library, run_worker, tmp_path)
    image_id = stored.id
    made = lookups.derivatives_of(library, [image_id])[image_id]
    changed = library.settings.replace(thumbnail_sizes="64,128,256,512,1024")
    later = build_services(changed, engine=library.engine).library
    assert processing.backfill(later).images == 1
    make_worker(registry, data_dir=changed.data_dir, database_url=changed.database_url,
                thumbnail_sizes=changed.thumbnail_sizes)  # fmt: skip
    wait_for(lambda: "thumb_1024" in lookups.derivatives_of(later, [image_id])[image_id], 60)
    after = image_records.get_image_row(later, image_id)
    assert (after.thumbhash, after.assessment) == (stored.thumbhash, stored.assessment)
    now = lookups.derivatives_of(later, [image_id])[image_id]
    assert {name: now[name].storage_key for name in made} == {
        name: d.storage_key for name, d in made.items()
    }


def test_a_library_sets_the_image_threads_of_its_process(library: Library) -> None:
    before = pyvips.concurrency_get()
    try:
        build_services(library.settings.replace(image_threads=3), engine=library.engine)
        assert pyvips.concurrency_get() == 3
    finally:
        pyvips.concurrency_set(before)


def test_a_capture_is_told_by_camera_and_time_to_the_fraction_of_a_second() -> None:
    one = Capture("2026-07-14T18:30:05.120000", "Canon", "Canon EOS R5", "A1")
    assert same_capture(one, Capture("2026-07-14T18:30:05.120000+02:00", "CANON", "Canon EOS R5"))
    assert not same_capture(one, Capture("2026-07-14T18:30:05.870000", "Canon", "Canon EOS R5"))
    assert same_capture(one, Capture("2026-07-14T18:30:05", "Canon", "Canon EOS R5"))  # no digits
    assert not same_capture(one, Capture("2026-07-14T18:30:06", "Canon", "Canon EOS R5"))
    assert not same_capture(one, Capture("2026-07-14T18:30:05.120000", "Canon", "Canon EOS R6"))
    assert not same_capture(one, Capture("2026-07-14T18:30:05.120000", serial="B7"))
    assert same_capture(one, Capture())  # an export with no metadata goes by its name
