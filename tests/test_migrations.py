"""Migrations are reversible and produce exactly the schema the code queries."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from enlarger.db import create_db_engine, migrate
from enlarger.db.schema import metadata
from enlarger.queue import NewJob, store_for_engine


def test_upgrade_downgrade_upgrade(empty_db_url: str) -> None:
    engine = create_db_engine(empty_db_url)
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision(engine)
    store_for_engine(engine).enqueue(NewJob("noop"))

    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
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
