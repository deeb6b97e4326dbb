"""The `enlarger` command on both backends: migrations, steering jobs, bulk import."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pyvips
import sqlalchemy as sa
from typer.testing import CliRunner

from enlarger.bootstrap import build_services
from enlarger.cli import app
from enlarger.config import Settings
from enlarger.db import migrate
from enlarger.db.engine import create_db_engine
from enlarger.db.schema import images, photos
from enlarger.library import listing, projects
from enlarger.library.library import Library
from enlarger.media.xmp import Decisions, write_decisions
from enlarger.queue import JobQueue, JobStatus
from tests.conftest import wait_for
from tests.images import Shot, camera_jpeg, dng, jpeg
from tests.streams import EventReader

runner = CliRunner()
REPO_ROOT = Path(__file__).resolve().parent.parent


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_db_upgrade_downgrade_current(empty_db_url: str) -> None:
    code, out = invoke("db", "upgrade", "--database-url", empty_db_url)
    head = migrate.head_revision(create_db_engine(empty_db_url))
    assert code == 0 and head in out
    code, out = invoke("db", "current", "--database-url", empty_db_url)
    assert code == 0 and f"current: {head}" in out
    code, out = invoke("db", "history", "--database-url", empty_db_url)  # what to go back to
    listed = out.splitlines()
    assert code == 0 and listed[0].startswith(f"{head}  ") and listed[0].endswith("<- the database")
    versions = (migrate.MIGRATIONS_DIR / "versions").glob("0*.py")
    assert listed[-1].startswith("0001_job_engine  ") and len(listed) == len(list(versions))
    code, out = invoke("db", "downgrade", "base", "--database-url", empty_db_url)
    assert code == 0 and "base" in out
    code, out = invoke("jobs", "list", "--database-url", empty_db_url)
    assert code == 2 and "enlarger db upgrade" in out


def test_a_misspelled_variable_is_warned_of_and_the_command_goes_on(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENLARGER_")}
    env["ENLARGER_DATBASE_URL"] = "postgresql://db.internal/enlarger"
    env["PYTHONPATH"] = str(REPO_ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "enlarger", "db", "upgrade", "--data-dir", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(
        "warning: ENLARGER_DATBASE_URL is not a setting, so it is ignored; did you mean"
        " ENLARGER_DATABASE_URL?\n"
    )
    assert (tmp_path / "enlarger.db").is_file()  # the default took effect, as it warned


def test_jobs_list_show_cancel_retry(queue: JobQueue, db_url: str) -> None:
    first = queue.enqueue("echo", {"n": 1}, priority=5).id
    second = queue.enqueue("noop", items=["a.jpg"]).id

    code, out = invoke("jobs", "list", "--database-url", db_url)
    assert code == 0 and "echo" in out and "pending" in out and "of 2" in out
    code, out = invoke("jobs", "list", "--json", "--type", "noop", "--database-url", db_url)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [row["id"] for row in rows] == [second]
    # as the API and the dashboard write it; a status that is none was listed as no jobs
    code, out = invoke("jobs", "list", "--json", "--status", "PENDING", "--database-url", db_url)
    assert code == 0 and {json.loads(line)["id"] for line in out.splitlines()} == {first, second}
    code, out = invoke("jobs", "list", "--status", "bogus", "--database-url", db_url)
    assert code == 2 and "no status 'bogus'" in out and "cancelled" in out
    code, out = invoke("jobs", "list", "--status", "failed", "--database-url", db_url)
    assert code == 0 and "no matching jobs" in out  # not "jobs 1-0 of 0"

    code, out = invoke("jobs", "show", str(second), "--database-url", db_url)
    assert code == 0 and "a.jpg" in out and "noop" in out
    code, out = invoke("jobs", "show", str(first), "--json", "--database-url", db_url)
    assert code == 0 and json.loads(out)["payload"] == {"n": 1}

    code, out = invoke("jobs", "cancel", str(first), "--database-url", db_url)
    assert code == 0 and "cancelled" in out
    code, out = invoke("jobs", "cancel", str(first), "--database-url", db_url)
    assert code == 1 and "only live jobs cancel" in out
    code, out = invoke("jobs", "retry", str(first), "--database-url", db_url)
    assert code == 0 and "pending" in out
    assert queue.store.get_job(first).status == JobStatus.PENDING  # type: ignore[union-attr]
    code, out = invoke("jobs", "show", "424242", "--database-url", db_url)
    assert code == 1 and "no job 424242" in out


def test_jobs_pause_resume(queue: JobQueue, db_url: str) -> None:
    code, out = invoke("jobs", "pause", "echo", "--database-url", db_url)
    assert code == 0 and "paused" in out and queue.store.paused_types() == ["echo"]
    code, out = invoke("jobs", "resume", "echo", "--database-url", db_url)
    assert code == 0 and "resumed" in out and queue.store.paused_types() == []


def test_bad_setting_is_a_clear_error(db_url: str) -> None:
    result = runner.invoke(
        app, ["jobs", "list", "--database-url", db_url], env={"ENLARGER_MAX_PARALLEL_JOBS": "x"}
    )
    assert result.exit_code == 2 and "max_parallel_jobs" in result.output


def test_serve_refuses_bad_settings_one_line_each(tmp_path: Path) -> None:
    """Before anything starts: exit code 2, a line per problem, a long one not wrapped."""
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO_ROOT),
        ENLARGER_MANIFEST_VERIFY_HASHES="ture",
        ENLARGER_SECRET_KEY="short",
    )
    done = subprocess.run(
        [sys.executable, "-m", "enlarger", "serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "error: manifest_verify_hashes: 'ture' is not a boolean; use true or false",
        "error: secret_key must be at least 16 bytes (it signs blob URLs); "
        "leave it empty to have one made in data_dir",
    ]


def test_jobs_watch_follows_events(queue: JobQueue, db_url: str, tmp_path: Path) -> None:
    job_id = queue.enqueue("echo", 1).id
    queue.store.cancel(job_id)
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "enlarger",
            "jobs",
            "watch",
            "--from-start",
            "--json",
            "--max-events",
            "4",
            "--database-url",
            db_url,
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    )
    assert watcher.stdout is not None
    seen = [watcher.stdout.readline() for _ in range(2)]  # the history: it is watching now
    queue.store.retry(job_id)  # arrives while the watcher waits
    queue.store.pause("echo")
    out, _ = watcher.communicate(timeout=60)
    events = [json.loads(line) for line in [*seen, *out.decode().splitlines()]]
    assert [(e["kind"], e["status"]) for e in events] == [
        ("job", "pending"),
        ("job", "cancelled"),
        ("retry", "pending"),
        ("paused", None),
    ]
    assert watcher.returncode == 0


def _enlarger(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "enlarger", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    )


def test_import_wait_json(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    (folder / "day2").mkdir(parents=True)
    (folder / ".cache").mkdir()
    jpeg(folder / "a.jpg", 900, 600)
    jpeg(folder / "day2" / "b.jpg", 400, 800)
    jpeg(folder / ".cache" / "hidden.jpg", 100, 100)
    (folder / "day2" / "notes.txt").write_text("not an image")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(jpeg(tmp_path / "whole.jpg", 1200, 900).read_bytes()[:3000])
    data = tmp_path / "data"

    done = _enlarger(
        "import", str(folder), str(cut), "--project", "Holiday", "--wait", "--json",
        "--data-dir", str(data), "--database-url", db_url, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    by_name = {Path(line["path"]).name: line for line in lines}
    assert list(by_name) == ["a.jpg", "b.jpg", "notes.txt", "cut.jpg"]
    assert by_name["a.jpg"]["status"] == by_name["b.jpg"]["status"] == "STORED"
    assert (by_name["notes.txt"]["status"], by_name["notes.txt"]["error_code"]) == (
        "FAILED",
        "UNSUPPORTED_FORMAT",
    )
    assert (by_name["cut.jpg"]["status"], by_name["cut.jpg"]["error_code"]) == (
        "FAILED",
        "CORRUPT_IMAGE",
    )
    derivatives = by_name["b.jpg"]["derivatives"]
    assert list(derivatives) == ["thumb_64", "thumb_128", "thumb_256", "thumb_512", "preview"]
    thumb = pyvips.Image.new_from_file(derivatives["thumb_256"])
    assert (thumb.width, thumb.height) == (128, 256)
    assert Path(derivatives["preview"]).is_relative_to(data / "library")
    assert (data / "library" / "projects" / "holiday" / "a.jpg").is_file()
    assert "imported 4 file(s)" in done.stderr
    engine = create_db_engine(db_url)
    with engine.connect() as conn:  # the files stored in its folder are the project's photos
        found = conn.execute(sa.select(photos.c.basename).order_by(photos.c.basename))
        assert list(found.scalars()) == ["a", "b", "cut"]  # cut.jpg failed only once stored
    engine.dispose()

    # again, with a new text file, as a person reads it: which file failed and why, and
    # the files that failed before not counted among the photos the project holds
    (folder / "more.txt").write_text("not an image either")
    again = _enlarger(
        "import", str(folder), str(cut), "--project", "Holiday", "--wait",
        "--data-dir", str(data), "--database-url", db_url, cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert f"FAILED {folder / 'more.txt'}: UNSUPPORTED_FORMAT not a supported image" in again.stderr
    assert "notes.txt" not in again.stderr and "cut.jpg" not in again.stderr
    summary = "imported 1 file(s): 1 FAILED; skipped 2 already in the project; skipped 2 that"
    assert f"{summary} FAILED before" in again.stderr


def test_import_without_wait_and_a_missing_path(db_url: str, tmp_path: Path) -> None:
    source = jpeg(tmp_path / "a.jpg", 300, 200)
    common = ("--data-dir", str(tmp_path / "data"), "--database-url", db_url)
    done = _enlarger("import", str(source), str(source), "--json", *common, cwd=tmp_path)
    first, again = (json.loads(line) for line in done.stdout.splitlines())
    assert done.returncode == 0 and first["status"] == "INGESTED"
    assert again["image_id"] == first["image_id"]  # the same bytes are one image
    missing = _enlarger("import", str(tmp_path / "nope"), "--json", *common, cwd=tmp_path)
    assert missing.returncode == 2 and missing.stdout == ""
    assert "no such file or folder" in " ".join(missing.stderr.split())


def test_backfill_command(db_url: str, tmp_path: Path) -> None:
    common = ("--data-dir", str(tmp_path / "data"), "--database-url", db_url)
    code, out = invoke("backfill", *common)
    assert code == 2 and "--missing or --all" in out
    code, out = invoke("backfill", "--missing", *common)
    assert code == 0 and "queued derivative work for 0 image(s)" in out


def test_sweep_command(db_url: str, tmp_path: Path) -> None:
    """After restoring an older database: a project folder it does not know."""
    common = ("--data-dir", str(tmp_path / "data"), "--database-url", db_url)
    found = tmp_path / "data" / "library" / "projects" / "after" / "B.jpg"
    found.parent.mkdir(parents=True)
    jpeg(found, 300, 200)
    code, out = invoke("sweep", *common)
    assert code == 0, out
    assert "projects/after: a project again; its folder_check is queued" in out
    assert "deleted the derivatives of 0 image(s)" in out
    library = build_services(Settings(data_dir=tmp_path / "data", database_url=db_url)).library
    assert projects.get_project(library, "after").folder == "after"
    code, out = invoke("sweep", *common)
    assert code == 0 and "a project again" not in out


def test_serve_logs_json_and_ends_open_event_streams_when_it_stops(tmp_path: Path) -> None:
    """Streams never end by themselves; SIGTERM must still stop `serve` at once, cleanly.
    With `--log-format json` every log line is a JSON object; a request's carry its id."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, ENLARGER_LOG_LEVEL="INFO")
    serve = subprocess.Popen(
        [sys.executable, "-m", "enlarger", "serve", "--port", str(port), "--log-format", "json"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{base}/healthz"), timeout=30)
        traced = httpx.get(f"{base}/api/images", headers={"X-Request-ID": "trace-42"})
        assert traced.headers["x-request-id"] == "trace-42"
        reader = EventReader(base)
        reader.start()
        assert reader.connected.wait(10)
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(15) == 0
        reader.join(10)
        assert not reader.is_alive()  # the server ended the stream; the client saw it end
        output = serve.stderr.read() if serve.stderr else ""
    finally:
        serve.kill()
    assert "Traceback" not in output
    records = [json.loads(line) for line in output.splitlines() if line.strip()]  # all JSON
    assert {"uvicorn.error", "enlarger.http"} <= {r["logger"] for r in records}
    assert not [r for r in records if "setup plugin" in r["message"]]  # alembic's, per process
    said = [r["message"] for r in records if r["logger"] == "enlarger.serve"]
    assert any("no API token exists" in m for m in said) and any("dashboard at" in m for m in said)
    access = [r for r in records if r.get("request_id") == "trace-42"]
    assert access and access[-1]["path"] == "/api/images" and access[-1]["status"] == 200


def test_serve_tells_its_workers_to_stop_at_once_not_after_its_requests(tmp_path: Path) -> None:
    """A stopping `serve` finishes the requests it is answering; its workers used to be
    told to stop only afterwards, and went on claiming jobs meanwhile (seen: three
    started after a Ctrl-C). They are told at once, and say why."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, ENLARGER_LOG_LEVEL="INFO")
    serve = subprocess.Popen(
        [sys.executable, "-m", "enlarger", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(serve.stderr or ()), daemon=True)
    reader.start()
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), timeout=60)
        wait_for(lambda: any("worker" in line and "started" in line for line in lines), 60)
        with socket.create_connection(("127.0.0.1", port)) as upload:  # a body still coming
            upload.sendall(
                b"POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n"
            )
            serve.send_signal(signal.SIGINT)
            told = "serve is stopping: finishing running jobs"
            wait_for(lambda: any(told in line for line in lines), timeout=30)
            assert serve.poll() is None  # still answering the upload
        assert serve.wait(30) == 0
    finally:
        serve.kill()
    reader.join(10)
    assert not any("Traceback" in line for line in lines), "".join(lines)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_maintenance_command(db_url: str, tmp_path: Path) -> None:
    common = ("--data-dir", str(tmp_path / "data"), "--database-url", db_url)
    settings = Settings(data_dir=tmp_path / "data", database_url=db_url)
    library = build_services(settings).library
    projects.create_project(library, "shoot")
    dropped = tmp_path / "data" / "library" / "projects" / "shoot" / "notes.txt"
    dropped.parent.mkdir(parents=True)
    dropped.write_text("not a photo")
    hour_ago = time.time() - 3600  # settled: not a copy still in progress
    os.utime(dropped, (hour_ago, hour_ago))

    code, out = invoke("maintenance", "folder_check", "--project", "shoot", "--dry-run", *common)
    assert code == 0 and "notes.txt" in out and "dry run" in out
    assert dropped.exists()
    code, out = invoke("maintenance", "folder_check", "--project", "shoot", "--json", *common)
    assert len(out.strip().splitlines()) == 1  # one JSON line, as its help says
    report = json.loads(out)
    assert code == 0 and report["changes"][0]["action"] == "trash"
    assert not dropped.exists() and (dropped.parent / ".trash" / "notes.txt").exists()
    code, out = invoke("maintenance", "folder_check", "--project", "shoot", *common)
    assert code == 0 and "nothing to change" in out
    code, out = invoke("maintenance", "folder_check", "--project", "nope", *common)
    assert code == 2 and "no project 'nope'" in out
    code, out = invoke("maintenance", "explode", "--project", "shoot", *common)
    assert code == 2


def test_import_brings_sidecars_along_and_a_card_imported_again_changes_nothing(
    db_url: str, tmp_path: Path
) -> None:
    """A card from two cameras with the same file numbers and Lightroom's and darktable's
    sidecars: each photo takes its own camera's decisions. Culled, committed, then
    imported again: nothing is copied back, the card's old sidecars undo nothing, and a
    sidecar changed on the card since brings its decisions to the photo."""
    card = tmp_path / "card"
    (card / "B").mkdir(parents=True)
    a = Shot(taken="2026:07:14 18:30:05", subsec="12", serial="A-1")
    b = Shot(taken="2026:07:14 18:41:00", subsec="50", serial="B-2")
    camera_jpeg(card / "IMG_0001.JPG", a)
    dng(card / "IMG_0001.DNG", 600, 400, shot=a)
    (card / "IMG_0001.xmp").write_bytes(write_decisions(None, Decisions("unflagged", 4, "red")))
    camera_jpeg(card / "B" / "IMG_0001.JPG", b, 640)
    (card / "B" / "IMG_0001.xmp").write_bytes(write_decisions(None, Decisions("pick", 5)))
    jpeg(card / "IMG_0002.JPG", 500, 400)
    (card / "IMG_0002.JPG.xmp").write_bytes(write_decisions(None, Decisions("unflagged", 2)))
    data = tmp_path / "data"
    common = ("--project", "Wedding", "--data-dir", str(data), "--database-url", db_url)

    first = _enlarger("import", str(card), "--wait", "--json", *common, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    lines = [json.loads(line) for line in first.stdout.splitlines()]
    assert {Path(line["path"]).name: line["status"] for line in lines if not line["sidecar_of"]}
    assert all(line["status"] == "STORED" and line["skipped"] is None for line in lines)
    assert sum(1 for line in lines if line["sidecar_of"]) == 3
    sidecars_stored = sorted(line["stored_as"] for line in lines if line["sidecar_of"])
    assert sidecars_stored == ["IMG_0001-2.xmp", "IMG_0001.xmp", "IMG_0002.JPG.xmp"]
    stored = {line["stored_as"] for line in lines if line["path"].endswith("IMG_0001.JPG")}
    assert stored == {"IMG_0001.JPG", "IMG_0001-2.JPG"}  # camera B's took the next name
    assert "imported 4 file(s): 4 STORED; 3 sidecar(s) with their photos" in " ".join(
        first.stderr.split()
    )
    library = build_services(Settings(data_dir=data, database_url=db_url)).library
    wedding = projects.get_project(library, "wedding")
    shown = {p["basename"]: p for p in listing.photos_of(library, wedding)}
    by_camera = {
        next(iter(_serials(library, p))): (p["flag"], p["rating"], p["label"], p["sidecars"])
        for p in shown.values()
        if _serials(library, p) != {None}
    }
    a_name = next(n for n, p in shown.items() if _serials(library, p) == {"A-1"})
    b_name = next(n for n, p in shown.items() if _serials(library, p) == {"B-2"})
    assert {a_name, b_name} == {"IMG_0001", "IMG_0001-2"}
    assert by_camera == {
        "A-1": ("unflagged", 4, "red", [f"{a_name}.xmp"]),
        "B-2": ("pick", 5, None, [f"{b_name}.xmp"]),
    }
    assert (shown["IMG_0002"]["rating"], shown["IMG_0002"]["sidecars"]) == (2, ["IMG_0002.JPG.xmp"])

    projects.change_photo(library, "wedding", a_name, {"flag": "reject"})
    projects.change_photo(library, "wedding", b_name, {"rating": 2})  # culled after import
    trashed = projects.commit_changes(library, "wedding").trashed
    assert sorted(trashed) == [f"{a_name}.DNG", f"{a_name}.JPG"]
    folder = data / "library" / "projects" / "wedding"
    before = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    (card / "IMG_0002.JPG.xmp").write_bytes(write_decisions(None, Decisions("pick", 3, "blue")))
    (card / "IMG_0009.xmp").write_bytes(write_decisions(None, Decisions("pick")))  # no photo's

    again = _enlarger("import", str(card), "--json", *common, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    relines = {
        (Path(line["path"]).parent.name, Path(line["path"]).name): line
        for line in map(json.loads, again.stdout.splitlines())
    }
    assert relines[("card", "IMG_0001.JPG")]["skipped"] == "trashed"
    assert relines[("card", "IMG_0001.DNG")]["skipped"] == "trashed"
    assert relines[("B", "IMG_0001.JPG")]["skipped"] == "held"
    assert relines[("card", "IMG_0002.JPG")]["skipped"] == "held"
    summary = " ".join(again.stderr.split())
    assert "imported 0 file(s): nothing;" in summary  # a sidecar is no file of its own
    assert "1 sidecar(s) of no photo refused" in summary and "IMG_0009" not in summary
    orphan = relines[("card", "IMG_0009.xmp")]
    assert (orphan["status"], orphan["error_code"]) == ("FAILED", "SIDECAR_OF_NO_PHOTO")
    assert orphan["error_message"] == "no photo of 'Wedding' is called 'IMG_0009'"
    assert relines[("card", "IMG_0002.JPG.xmp")]["stored_as"] == "IMG_0002.JPG.xmp"
    assert "skipped 4 already in the project (2 of them in its trash)" in summary
    assert "1 sidecar(s) with their photos; 1 sidecar(s) older" in summary
    assert relines[("B", "IMG_0001.xmp")]["skipped"] == "older"
    assert relines[("card", "IMG_0001.xmp")]["skipped"] == "trashed"  # with its files
    after = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert set(after) - set(before) == {".trash/IMG_0002.JPG.xmp"}  # the one it replaced
    assert set(before) <= set(after)  # nothing copied back into the folder
    refreshed = listing.photo_of(library, wedding, "IMG_0002")
    assert (refreshed["flag"], refreshed["rating"], refreshed["label"]) == ("pick", 3, "blue")
    culled = listing.photo_of(library, wedding, b_name)  # the card's older sidecar: ignored
    assert (culled["flag"], culled["rating"]) == ("pick", 2)
    library.engine.dispose()


def _serials(library: Library, photo: dict[str, object]) -> set[str | None]:
    ids = [f["imageId"] for f in photo["files"]]  # type: ignore[attr-defined]
    with library.engine.connect() as conn:
        rows = conn.execute(sa.select(images.c.exif).where(images.c.id.in_(ids)))
        return {(exif or {}).get("camera_serial") for (exif,) in rows}
