"""The wiring of docs/architecture.md, checked where a user meets it: every domain error
answered by its status and code, every job type with its one handler. (The import
layers are checked by `lint-imports` in the lint step.)"""

from __future__ import annotations

import pickle

import httpx
import pytest

from enlarger import errors
from enlarger.bootstrap import registry
from enlarger.catalog.service import LimitReached, UnknownTheme
from enlarger.catalog.states import InvalidTransition
from enlarger.library.project_jobs import InvalidJob
from enlarger.library.service import InvalidName, JobType
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
