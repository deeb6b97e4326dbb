"""docs/operations.md's backup, restore, upgrade and rollback commands, run as they stand
(each `sh` block that starts with `# back up`, `# restore`, `# upgrade` or `# roll
back`), with a real loss in between: the database dropped (or its file deleted) and the
storage folder removed. After the restore the photo is there, bytes and all, and the
schema goes down a revision and up again without losing it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from enlarger.db import migrate
from enlarger.db.engine import create_db_engine
from enlarger.db.schema import images
from tests.images import jpeg

REPO_ROOT = Path(__file__).resolve().parent.parent
GUIDE = REPO_ROOT / "docs" / "operations.md"


def _block(title: str) -> str:
    """The guide's `sh` block whose first line is `# <title>…`."""
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
    found = [b for b in blocks if b.startswith(f"# {title}")]
    assert len(found) == 1, f"docs/operations.md has {len(found)} blocks '# {title}'"
    return found[0]


def _run(script: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def _environment(db_url: str, data_dir: Path, backend: str) -> dict[str, str]:
    """What an operator's shell has: enlarger on the PATH, its settings, libpq's."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), ENLARGER_DATA_DIR=str(data_dir))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    if backend == "postgres":
        parts = urlsplit(db_url)
        env |= {
            "ENLARGER_DATABASE_URL": db_url,
            "PGHOST": parts.hostname or "127.0.0.1",
            "PGPORT": str(parts.port or 5432),
            "PGUSER": parts.username or "postgres",
            "PGDATABASE": parts.path.lstrip("/"),
        }
    return env


def _lose_everything(backend: str, env: dict[str, str], data_dir: Path) -> None:
    if backend == "postgres":
        subprocess.run(["dropdb", "--force", env["PGDATABASE"]], env=env, check=True)
    else:
        for suffix in ("", "-wal", "-shm"):
            (data_dir / f"enlarger.db{suffix}").unlink(missing_ok=True)
    shutil.rmtree(data_dir / "library")


def test_backup_restore_upgrade_and_rollback_as_documented(
    backend: str, db_url: str, tmp_path: Path
) -> None:
    name = "PostgreSQL" if backend == "postgres" else "SQLite"
    data_dir = tmp_path / "data"
    env = _environment(db_url, data_dir, backend)
    card = tmp_path / "card"
    card.mkdir()
    photo = jpeg(card / "IMG_0001.JPG", 800, 600)
    imported = _run(f"enlarger import --project trip --wait {card}", env, tmp_path)
    assert "1 STORED" in imported, imported

    _run(_block(f"back up ({name})"), env, tmp_path)
    _lose_everything(backend, env, data_dir)
    _run(_block(f"restore ({name})"), env, tmp_path)

    stored = data_dir / "library" / "projects" / "trip" / "IMG_0001.JPG"
    assert stored.read_bytes() == photo.read_bytes()
    database = db_url if backend == "postgres" else f"sqlite:///{data_dir / 'enlarger.db'}"
    assert _stored_images(database) == ["IMG_0001.JPG"]

    if backend == "sqlite":
        return  # the schema's way down and up again is the same commands on both
    engine = create_db_engine(db_url)
    head = migrate.head_revision(engine)
    engine.dispose()
    previous = _previous_revision(head)
    rolled_back = _run(_block("roll back"), env | {"REVISION": previous}, tmp_path)
    assert f"current: {previous} " in rolled_back, rolled_back
    upgraded = _run(_block("upgrade"), env, tmp_path)
    assert f"current: {head} " in upgraded, upgraded
    assert _stored_images(database) == ["IMG_0001.JPG"]


def _stored_images(database_url: str) -> list[str]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as conn:
            query = sa.select(images.c.original_filename).where(images.c.status == "STORED")
            return list(conn.execute(query).scalars())
    finally:
        engine.dispose()


def _previous_revision(head: str | None) -> str:
    versions = sorted(p.stem for p in (REPO_ROOT / "enlarger/db/migrations/versions").glob("0*.py"))
    if head not in versions or versions.index(head) == 0:
        pytest.fail(f"head {head!r} has no revision before it")
    return versions[versions.index(head) - 1]
