"""Migrations are reversible and produce exactly the schema the code queries."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient

from enlarger.api.app import create_app
from enlarger.bootstrap import build_services
from enlarger.config import Settings
from enlarger.db import direct, migrate, revision
from enlarger.db.engine import create_db_engine
from enlarger.db.schema import images, metadata, photo_files, photo_sidecars, photos, projects
from enlarger.db.types import Timestamp
from enlarger.queue import NewJob, store_for_engine


def _revision_read_directly(url: str) -> str | None:
    connection = direct.connect_directly(url)
    try:
        return revision.revision_in(connection, direct.dialect_of(url))
    finally:
        connection.close()


def test_upgrade_downgrade_upgrade(empty_db_url: str) -> None:
    engine = create_db_engine(empty_db_url)
    assert revision.stored_revision(engine) is None
    assert _revision_read_directly(empty_db_url) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision(engine)
    # the light checks (no alembic; no SQLAlchemy either) agree with alembic: files
    # named and chained in order
    assert (
        revision.stored_revision(engine)
        == _revision_read_directly(empty_db_url)
        == revision.head_revision()
        == migrate.head_revision(engine)
    )
    store_for_engine(engine).enqueue(NewJob("noop"))

    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    assert revision.stored_revision(engine) is None
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}

    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision(engine)
    assert store_for_engine(engine).enqueue(NewJob("noop")).created
    engine.dispose()


EXPRESSION_INDEXES = {"ix_jobs_ready"}  # Alembic cannot compare `priority DESC`


def _comparable(obj: object, name: str | None, kind: str, *_: object) -> bool:
    return not (kind == "index" and name in EXPRESSION_INDEXES)


def test_migrations_match_the_schema_module(empty_db_url: str) -> None:
    engine = create_db_engine(empty_db_url)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": False, "include_object": _comparable}
        )
        differences = compare_metadata(context, metadata)
    indexes = {index["name"] for index in sa.inspect(engine).get_indexes("jobs")}
    engine.dispose()
    assert differences == []
    assert indexes >= EXPRESSION_INDEXES


def test_upgrade_is_idempotent(empty_db_url: str) -> None:
    engine = create_db_engine(empty_db_url)
    migrate.upgrade(engine)
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision(engine)
    engine.dispose()


def test_one_library_links_stored_images_to_their_projects_photos(empty_db_url: str) -> None:
    """0009: images of the photo API, stored before it, become photos under the name their
    original has in the folder; a JPG and its RAW make one photo, a project's own photo
    keeps its files, and images not stored (failed, trashed) stay out."""
    engine = create_db_engine(empty_db_url)
    migrate.upgrade(engine, "0008_schedule_names")
    now = datetime.now(UTC)
    common = {"size_bytes": 1, "uploaded_at": now, "updated_at": now}
    with engine.begin() as conn:
        conn.execute(
            projects.insert().values(id=1, name="Wedding", folder="wedding", created_at=now)
        )
        stored = [
            ("jpg", "IMG_1.JPG", "projects/wedding/IMG_1.JPG", "jpeg", "STORED", None),
            ("raw", "IMG_1.CR2", "projects/wedding/IMG_1.CR2", "cr2", "STORED", None),
            ("again", "IMG_1.JPG", "projects/wedding/IMG_1-2.JPG", "jpeg", "STORED", None),
            ("failed", "bad.jpg", None, None, "FAILED", None),
            ("gone", "old.jpg", "projects/wedding/.trash/old.jpg", "jpeg", "STORED", now),
            ("own", "DSC_9.JPG", "projects/wedding/DSC_9.JPG", "jpeg", "STORED", None),
        ]
        for image_id, name, key, image_format, status, deleted_at in stored:
            conn.execute(
                images.insert().values(
                    id=image_id,
                    project_id=1,
                    original_filename=name,
                    original_key=key,
                    format=image_format,
                    status=status,
                    deleted_at=deleted_at,
                    checksum=image_id.ljust(64, "0"),
                    **common,
                )
            )
        own = {"project_id": 1, "keep_jpg": False, "keep_raw": False}  # marked to be dropped
        conn.execute(
            photos.insert().values(id=9, basename="DSC_9", **own, created_at=now, updated_at=now)
        )
        conn.execute(photo_files.insert().values(image_id="own", photo_id=9, role="jpg"))
    migrate.upgrade(engine)
    with engine.connect() as conn:
        linked = conn.execute(
            sa.select(photos.c.basename, photo_files.c.role, images.c.original_filename)
            .join(photo_files, photo_files.c.photo_id == photos.c.id)
            .join(images, images.c.id == photo_files.c.image_id)
        )
        assert sorted(tuple(row) for row in linked) == [
            ("DSC_9", "jpg", "DSC_9.JPG"),
            ("IMG_1", "jpg", "IMG_1.JPG"),
            ("IMG_1", "raw", "IMG_1.CR2"),
            ("IMG_1-2", "jpg", "IMG_1-2.JPG"),
        ]
        kept = conn.execute(sa.select(photos.c.basename, photos.c.keep_jpg, photos.c.keep_raw))
        assert sorted(tuple(row) for row in kept) == [
            ("DSC_9", False, False),
            ("IMG_1", True, True),
            ("IMG_1-2", True, False),
        ]
    engine.dispose()


def test_handoff_moves_each_photos_sidecar_into_its_own_table(empty_db_url: str) -> None:
    """0012: the one sidecar a photo had (photos.sidecar_key) becomes a row of
    photo_sidecars under its name, and comes back on a downgrade."""
    engine = create_db_engine(empty_db_url)
    migrate.upgrade(engine, "0011_assessment")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(projects.insert().values(id=1, name="Day", folder="day", created_at=now))
        conn.execute(
            sa.text(
                "INSERT INTO photos (id, project_id, basename, keep_jpg, keep_raw, sidecar_key, "
                "created_at, updated_at) VALUES (1, 1, 'IMG_1', true, true, :key, :now, :now), "
                "(2, 1, 'IMG_2', true, true, NULL, :now, :now)"
            ).bindparams(sa.bindparam("now", type_=Timestamp())),
            {"key": "projects/day/IMG_1.CR2.xmp", "now": now},
        )
    migrate.upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(photo_sidecars.c.photo_id, photo_sidecars.c.key, photo_sidecars.c.name)
        ).all()
        assert [tuple(r) for r in rows] == [(1, "projects/day/IMG_1.CR2.xmp", "IMG_1.CR2.xmp")]
    migrate.downgrade(engine, "0011_assessment")
    with engine.connect() as conn:
        back = conn.exec_driver_sql("SELECT id, sidecar_key FROM photos ORDER BY id").all()
        assert [tuple(r) for r in back] == [(1, "projects/day/IMG_1.CR2.xmp"), (2, None)]
    engine.dispose()


def test_a_server_on_a_schema_rolled_back_under_it_answers_503_saying_so(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The schema was rolled back while the newer server still ran: its requests answered
    500 with a traceback each. Now 503 SCHEMA_MISMATCH naming both revisions, a line a
    minute in the log, and the answers are right again once the schema is upgraded."""
    caplog.set_level(logging.ERROR, logger="enlarger.http")
    settings = Settings(data_dir=tmp_path / "data", database_url=db_url)
    with TestClient(create_app(build_services(settings))) as http:
        assert http.get("/api/images").status_code == 200
        engine = create_db_engine(db_url)
        migrate.downgrade(engine, "0015_landing_key")  # jobs.outage_since goes
        answers = [http.get("/api/admin/jobs") for _ in range(3)]
        assert {a.status_code for a in answers} == {503}, answers[0].text
        body = answers[0].json()
        assert body["errorCode"] == "SCHEMA_MISMATCH"
        assert "schema is at 0015_landing_key, this version needs" in body["detail"]
        assert answers[0].headers["retry-after"]
        logged = [
            r for r in caplog.records if "SCHEMA" in r.getMessage() or "schema" in r.getMessage()
        ]
        assert len(logged) == 1 and logged[0].exc_info is None, [r.getMessage() for r in logged]
        migrate.upgrade(engine)
        engine.dispose()
        assert http.get("/api/images").status_code == 200
