"""The photo pipeline on both backends: ingest to STORED through real workers, one copy
per collection for the same bytes, and broken files failing alone with their code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyvips
import sqlalchemy as sa

from enlarger.db.schema import jobs
from enlarger.library import service
from enlarger.library.runtime import Library
from enlarger.library.service import ImageStatus, JobType
from enlarger.queue import Worker
from tests.conftest import wait_for
from tests.images import jpeg


def _ingest(library: Library, path: Path, collection: str = "Trip") -> service.Ingested:
    return service.ingest(
        library, service.copy_to_temp(library, path), filename=path.name, collection=collection
    )


def _settled(library: Library, image_id: str) -> sa.Row | None:
    row = service.get_image_row(library, image_id, include_deleted=True)
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
    row = service.get_image_row(library, ingested.image_id)
    assert (row.width, row.height, row.format) == (2400, 1600, "jpeg")
    assert Path(row.temp_path).is_file()

    run_worker()
    row = wait_for(lambda: _settled(library, ingested.image_id), timeout=60)
    assert row.status == ImageStatus.STORED, row.error_message
    assert row.original_key == "projects/trip/Beach-Day.jpg"
    assert row.temp_path is None and row.thumbhash
    stored = library.blobs.path(row.original_key)  # type: ignore[attr-defined]
    assert stored.read_bytes() == source.read_bytes()  # the original, untouched
    made = service.derivatives_of(library, [row.id])[row.id]
    assert set(made) == {"thumb_64", "thumb_128", "thumb_256", "thumb_512", "preview"}
    recipes = {r.name: r for r in library.recipes.all}
    for name, derivative in made.items():
        assert derivative.recipe_hash == recipes[name].hash
        image = pyvips.Image.new_from_file(str(library.blobs.path(derivative.storage_key)))
        assert max(image.width, image.height) == recipes[name].long_side
    assert not list((library.settings.data_dir / "tmp").iterdir())


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
    assert service.get_image_row(library, results["good.jpg"].image_id).status == "STORED"
    cut_row = service.get_image_row(library, results["cut.jpg"].image_id)
    assert (cut_row.status, cut_row.error_code) == ("FAILED", "CORRUPT_IMAGE")
    failed = [j for j in _jobs_of(library, JobType.PREVIEW_GENERATION) if j.status == "failed"]
    failed += [j for j in _jobs_of(library, JobType.THUMBNAIL_GENERATION) if j.status == "failed"]
    assert failed and all(j.attempts == 1 and j.error_code == "CORRUPT_IMAGE" for j in failed)


def test_offload_is_safe_to_repeat(library: Library, tmp_path: Path) -> None:
    ingested = _ingest(library, jpeg(tmp_path / "a.jpg", 300, 200))
    key = service.offload_original(library, ingested.image_id)
    assert service.offload_original(library, ingested.image_id) == key
    assert len(_jobs_of(library, JobType.PREVIEW_GENERATION)) == 1  # idempotency key held


def test_a_hand_dropped_file_is_not_overwritten(library: Library, tmp_path: Path) -> None:
    library.blobs.put_bytes("projects/trip/a.jpg", b"someone else's file")
    ingested = _ingest(library, jpeg(tmp_path / "a.jpg", 300, 200))
    key = service.offload_original(library, ingested.image_id)
    assert key.startswith("projects/trip/a-") and key.endswith(".jpg")
    assert library.blobs.path("projects/trip/a.jpg").read_bytes() == b"someone else's file"  # type: ignore[attr-defined]
