"""The wiring of docs/architecture.md, checked where a user meets it: every domain error
answered by its status and code, every job type with its one handler. (The import
layers are checked by `lint-imports` in the lint step.)"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from enlarger import errors
from enlarger.bootstrap import registry
from enlarger.catalog.product_jobs import LimitReached, UnknownTheme
from enlarger.catalog.states import InvalidTransition
from enlarger.library.image_records import JobType
from enlarger.library.ingest import InvalidName
from enlarger.library.project_jobs import InvalidJob
from enlarger.media import MediaError, MediaErrorCode


def test_domain_errors_are_answered_with_their_status_and_code(client: httpx.Client) -> None:
    missing = client.get("/api/images/no-such-image")
    assert missing.status_code == 404
    assert (
        missing.json()["errorCode"] == "NOT_FOUND" and "no-such-image" in missing.json()["detail"]
    )
    assert client.post("/api/projects", json={"folder": "Trip"}).status_code == 201
    again = client.post("/api/projects", json={"folder": "Trip"})
    assert (again.status_code, again.json()["errorCode"]) == (409, "CONFLICT")
    bad_name = client.post("/api/projects", json={"folder": "a/../b"})
    assert (bad_name.status_code, bad_name.json()["errorCode"]) == (422, "INVALID_NAME")
    bad_job = client.post("/api/projects/Trip/jobs", json={"type": "no_such_job"})
    assert (bad_job.status_code, bad_job.json()["errorCode"]) == (422, "INVALID_JOB")
    corrupt = client.post("/api/upload", files={"file": ("a.jpg", b"\xff\xd8\xff broken")})
    assert corrupt.status_code == 422
    assert corrupt.json()["errorCode"] in {"CORRUPT_IMAGE", "UNSUPPORTED_FORMAT"}
    assert corrupt.json()["status"] == "FAILED"


def test_what_the_framework_refuses_answers_the_same_shape(client: httpx.Client) -> None:
    """Refusals made before any domain code runs (routing, parsing, the NUL guard) carry
    an errorCode too, so a client reads every 4xx the same way."""
    cases = {
        ("GET", "/api/no-such-route"): (404, "NOT_FOUND"),
        ("DELETE", "/api/images"): (405, "METHOD_NOT_ALLOWED"),
        ("GET", "/api/images?limit=abc"): (422, "INVALID"),
        ("GET", "/api/admin/jobs/999999"): (404, "NOT_FOUND"),
        ("GET", "/api/images?collection=a%00b"): (422, "NUL_CHARACTER"),
    }
    for (method, path), (status, code) in cases.items():
        answer = client.request(method, path)
        assert (answer.status_code, answer.json()["errorCode"]) == (status, code), path
        assert answer.json()["detail"], path


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidName("x"), 422, "INVALID_NAME"),
        (InvalidJob("x"), 422, "INVALID_JOB"),
        (UnknownTheme("x"), 422, "UNKNOWN_THEME"),
        (LimitReached("x"), 409, "LIMIT_REACHED"),
        (InvalidTransition("x"), 409, "INVALID_TRANSITION"),
        (MediaError(MediaErrorCode.TOO_LARGE, "x"), 413, "TOO_LARGE"),
        (MediaError(MediaErrorCode.CORRUPT_IMAGE, "x"), 422, "CORRUPT_IMAGE"),
    ],
)
def test_each_domain_error_declares_its_status_and_code_and_survives_a_process_boundary(
    error: errors.EnlargerError, status: int, code: str
) -> None:
    """CPU children send errors back pickled: the code must come back with them."""
    assert isinstance(error, errors.EnlargerError)
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert (back.status, back.answer()["errorCode"], back.message) == (status, code, "x")


def test_every_job_type_has_exactly_one_handler() -> None:
    assert set(JobType) <= set(registry.handlers)
    with pytest.raises(ValueError, match="already registered"):
        registry.include(registry)


HEAVY = ("scipy", "pyvips", "numpy", "onnxruntime", "fastapi", "enlarger.catalog", "enlarger.media")


def _modules_loaded_by(*args: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules an `enlarger` command has loaded when it ends (in a fresh process)."""
    code = (
        "import sys\nfrom enlarger.cli import app\n"
        f"try:\n    app(args={list(args)!r}, prog_name='enlarger')\n"
        "except SystemExit as end:\n    assert not end.code, end.code\n"
        "print('MODULES', ' '.join(sorted(sys.modules)))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert run.returncode == 0, run.stderr
    return set(run.stdout.rsplit("MODULES ", 1)[1].split())


def test_help_loads_no_database_image_or_web_stack() -> None:
    """`enlarger --help` starts at once (timed in bench.cli_start): it reads no settings
    and loads neither the database, the image libraries, the catalog nor the web app."""
    loaded = _modules_loaded_by("--help")
    assert not {m for m in loaded if m.startswith(HEAVY)}
    assert "sqlalchemy" not in loaded and "enlarger.config" not in loaded


def test_the_job_commands_load_no_image_catalog_or_web_stack(tmp_path: Path) -> None:
    """`enlarger jobs list` reads the job store: the application's services (the image
    and catalog stacks, scipy among them: half a second) stay unloaded."""
    env = {**os.environ, "ENLARGER_DATA_DIR": str(tmp_path)}
    made = subprocess.run(
        [sys.executable, "-m", "enlarger", "db", "upgrade"], env=env, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    loaded = _modules_loaded_by("jobs", "list", env=env)
    assert "enlarger.queue.store" in loaded  # it did read the store
    assert not {m for m in loaded if m.startswith(HEAVY)}


def test_a_light_command_loads_no_image_web_or_sqlalchemy_stack(tmp_path: Path) -> None:
    """`enlarger tokens list` reads the database through a DB-API connection: no
    SQLAlchemy (0.2 s to import), no image or web code."""
    env = {**os.environ, "ENLARGER_DATA_DIR": str(tmp_path)}
    made = subprocess.run(
        [sys.executable, "-m", "enlarger", "tokens", "create", "--role", "viewer", "--name", "k"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    loaded = _modules_loaded_by("tokens", "list", env=env)
    assert {"enlarger.access.token_records", "sqlite3"} <= loaded  # it did read the database
    assert not {m for m in loaded if m.startswith((*HEAVY, "sqlalchemy", "alembic"))}
