"""Attacks that once worked, kept closed (issue 16): each test here failed before its fix.
Real servers on loopback, both backends, real files on disk."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import socket
import struct
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import PIL.Image
import pillow_heif
import pytest
import pyvips
import sqlalchemy as sa
import tifffile

from enlarger.access import tokens
from enlarger.access.tokens import Role
from enlarger.api.auth import TOKEN_COOKIE
from enlarger.bootstrap import build_services
from enlarger.catalog.fetch import FetchLimits, fetch
from enlarger.catalog.states import StageFailed
from enlarger.library import full_views, image_records, maintenance, projects
from enlarger.library.image_records import JobType
from enlarger.library.library import Library
from enlarger.library.tasks import Maintenance
from enlarger.media import (
    Limits,
    MediaError,
    MediaErrorCode,
    Recipe,
    probe,
    render,
    whole_decode_pixels,
)
from enlarger.queue import ErrorCode, Job, JobStatus, Worker
from tests.conftest import FAST, fetch_is_cut_off, loopback_socket, serving, wait_for
from tests.images import jpeg, tiff_declaring
from tests.photos import content, processed, upload

JSON = {"content-type": "application/json"}
SCRIPT = b"<html><body><script>fetch('/api/tokens',{method:'POST'})</script></body></html>"


def test_a_polyglot_original_is_served_as_its_image_type_never_as_a_page(
    client: httpx.Client, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    polyglot = jpeg(tmp_path / "photo.jpg", 64, 48).read_bytes() + SCRIPT
    uploaded = client.post(
        "/api/upload", files={"file": ("poly.html", polyglot)}, data={"collection": "c"}
    )
    assert uploaded.status_code == 201, uploaded.text
    image_id = uploaded.json()["imageId"]
    run_worker()
    image = wait_for(
        lambda: (i := client.get(f"/api/images/{image_id}").json())["status"] == "STORED" and i,
        timeout=60,
    )

    original = client.get(image["originalUrl"])
    assert original.status_code == 200 and original.content == polyglot
    assert original.headers["content-type"] == "image/jpeg"
    assert original.headers["x-content-type-options"] == "nosniff"
    assert original.headers["content-disposition"].startswith("attachment")
    assert "sandbox" in original.headers["content-security-policy"]

    thumbnail = client.get(image["thumbnailUrl"])
    assert thumbnail.headers["content-type"] in ("image/jpeg", "image/webp", "image/avif")
    assert thumbnail.headers["content-disposition"].startswith("inline")
    assert thumbnail.headers["x-content-type-options"] == "nosniff"


def test_a_blob_that_is_no_image_is_served_as_opaque_bytes(
    client: httpx.Client, library: Library
) -> None:
    library.blobs.put_bytes("projects/p/notes.html", SCRIPT)
    served = client.get(library.blobs.url("projects/p/notes.html", 60))
    assert served.headers["content-type"] == "application/octet-stream"
    assert served.headers["content-disposition"].startswith("attachment")


def test_maintenance_never_follows_a_symlinked_trash_out_of_the_library(
    library: Library, tmp_path: Path
) -> None:
    projects.create_project(library, "Links")
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "precious.jpg"
    victim.write_bytes(b"not yours")
    long_ago = time.time() - 400 * 86400
    os.utime(victim, (long_ago, long_ago))
    folder = library.blobs.path("projects/Links")
    folder.mkdir(parents=True)
    (folder / ".trash").symlink_to(outside)

    report = maintenance.run(library, Maintenance.TRASH, "Links")
    assert victim.read_bytes() == b"not yours"
    assert report.changes == []


def test_a_symlinked_photo_is_neither_listed_nor_served(
    client: httpx.Client, library: Library, tmp_path: Path
) -> None:
    projects.create_project(library, "Links")
    secret = tmp_path / "secret.jpg"
    jpeg(secret, 32, 32)
    library.blobs.put_bytes("projects/Links/real.jpg", jpeg(tmp_path / "r.jpg").read_bytes())
    (library.blobs.path("projects/Links") / "leak.jpg").symlink_to(secret)

    assert [b.name for b in library.blobs.list_folder("projects/Links")] == ["real.jpg"]
    assert not library.blobs.exists("projects/Links/leak.jpg")
    served = client.get(library.blobs.url("projects/Links/leak.jpg", 60))
    assert served.status_code == 404
    assert library.blobs.signer is not None  # a signature for a key that climbs out
    climbing = library.blobs.signer.url("projects/Links/../../../../secret.jpg", 60)
    assert client.get(climbing).status_code in (403, 404)


def test_a_cookie_signed_change_from_another_origin_is_refused(
    client: httpx.Client, library: Library
) -> None:
    _, token = tokens.create(library.engine, Role.ADMIN, "browser")
    assert client.post("/login", data={"token": token}).status_code == 303
    assert TOKEN_COOKIE in client.cookies
    other_port = {"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"}
    for headers in (other_port, {"Origin": "http://127.0.0.1:1"}, {"Sec-Fetch-Site": "cross-site"}):
        refused = client.post("/api/projects", json={"folder": "Evil"}, headers=headers)
        assert refused.status_code == 403, headers
        assert "another origin" in refused.json()["detail"]
    signed_out = client.post("/logout", headers=other_port)
    assert signed_out.status_code == 403
    assert client.get("/api/projects").json()["projects"] == []

    own = {"Origin": str(client.base_url).rstrip("/"), "Sec-Fetch-Site": "same-origin"}
    assert client.post("/api/projects", json={"folder": "Mine"}, headers=own).status_code == 201
    assert client.post("/api/projects", json={"folder": "Script"}).status_code == 201
    bearer = {"Authorization": f"Bearer {token}", **other_port}
    assert client.post("/api/projects", json={"folder": "Api"}, headers=bearer).status_code == 201


def _bombs(folder: Path, side: int) -> list[Path]:
    """A tiny AVIF and a tiny HEIC that each declare `side` x `side` flat pixels."""
    flat = (pyvips.Image.black(side, side, bands=3) + 90).cast("uchar")
    avif = folder / "bomb.avif"
    flat.heifsave(str(avif), compression="av1", effort=0, Q=20)
    heic = folder / "bomb.heic"
    picture = PIL.Image.new("RGB", (side, side), (90, 90, 90))
    pillow_heif.from_pillow(picture).save(heic, quality=20)
    return [avif, heic]


@pytest.mark.parametrize(
    ("declared", "code"),
    [
        ({"ImageWidth": 10_000, "ImageLength": 10_000, "SamplesPerPixel": 4000}, "TOO_MANY_PIXELS"),
        ({"TileWidth": 65_520, "TileLength": 65_520}, "CORRUPT_IMAGE"),
    ],
    ids=["800-GB-of-samples", "25-GB-tiles"],
)
def test_a_tiff_declaring_terabytes_is_refused_before_allocating(
    tmp_path: Path, declared: dict[str, int], code: str
) -> None:
    """A fuzzed TIFF had the decoder ask numpy for 3.52 TiB. Only tifffile reads these
    (12-bit colour), and it allocates what the header says: 100 MP passes the pixel
    limit, but not with 4000 samples a pixel. The declared sizes are checked first."""
    path = tiff_declaring(tmp_path / "fuzzed.tif", **declared)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(MediaError) as caught:
        render(path, probe(path, Limits()), [Recipe("preview", 2000)])
    assert caught.value.code is MediaErrorCode(code), caught.value.message
    message = caught.value.message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024
    assert "allocate" not in message


@pytest.mark.parametrize(
    ("width", "height", "said"),
    [
        (14_000, 13_000, "14000 x 13000 is 182,000,000 pixels; this TIFF is decoded whole"),
        (1_000_000, 1_000_000, "1000000 x 1000000 is 1,000,000,000,000 pixels; the limit"),
    ],
)
def test_a_tiff_only_pillow_reads_is_judged_by_enlargers_limits_not_pillows(
    tmp_path: Path, width: int, height: int, said: str
) -> None:
    """An LZMA TIFF (libvips has no LZMA) declaring 182 MP was refused in Pillow's words
    ("could be decompression bomb DOS attack"), below `max_pixels`, with a warning on
    the server's stderr; enlarger's own limits say why, in its words."""
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, np.zeros((64, 64), np.uint8), compression="lzma")
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tiff:
        tags = tiff.pages.first.tags
        for name, value in (("ImageWidth", width), ("ImageLength", height)):
            short = tags[name].dtype == tifffile.DATATYPE.SHORT
            struct.pack_into("<H" if short else "<I", data, tags[name].valueoffset, value)
    path.write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)  # nor on stderr
        with pytest.raises(MediaError) as caught:
            probe(path, Limits())
    assert caught.value.code is MediaErrorCode.TOO_MANY_PIXELS
    assert caught.value.message.startswith(said), caught.value.message


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # refused before any record
@pytest.mark.parametrize("library_changes", [{"cpu_kill_rss_mb": 400}])
def test_heic_and_avif_bombs_are_refused_from_the_header_by_what_decoding_would_take(
    client: httpx.Client, library: Library, tmp_path: Path
) -> None:
    assert library.limits.max_whole_decode_pixels == whole_decode_pixels(400) < 4000 * 4000
    for bomb in _bombs(tmp_path, 4000):
        assert bomb.stat().st_size < 20_000
        answer = client.post(
            "/api/upload", files={"file": (bomb.name, bomb.read_bytes())}, data={"collection": "c"}
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["errorCode"] == "TOO_MANY_PIXELS"
        assert "decoded whole" in answer.json()["errorMessage"]
    fine = tmp_path / "fine.avif"
    pyvips.Image.black(1000, 1000, bands=3).cast("uchar").heifsave(str(fine), compression="av1")
    assert probe(fine, library.limits).width == 1000


LONG_ACCENTED = "é" * 150  # 150 characters, 300 bytes in UTF-8
EMOJI_NAME = "📷" * 60 + ".jpg"  # 64 characters, 244 bytes


def test_names_are_limited_in_bytes_and_what_passes_can_be_stored_trashed_and_numbered(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    refused = client.post("/api/projects", json={"folder": LONG_ACCENTED})
    assert refused.status_code == 422 and "bytes" in refused.json()["detail"], refused.text
    too_long_title = client.post("/api/projects", json={"folder": "Ok", "title": "t" * 300})
    assert too_long_title.status_code == 422
    assert client.post("/api/projects", json={"folder": "é" * 100}).status_code == 201

    photo = jpeg(tmp_path / "a.jpg").read_bytes()
    files = [("files", (EMOJI_NAME, photo)), ("files", ("ok.jpg", photo))]
    answer = client.post(f"/api/projects/{'é' * 100}/upload", files=files)
    assert answer.status_code == 201, answer.text
    outcomes = {f["filename"]: f for f in answer.json()["files"]}
    assert outcomes[EMOJI_NAME]["error_code"] == "INVALID_NAME"
    assert "bytes" in outcomes[EMOJI_NAME]["error_message"]

    longest = "ä" * 98 + ".jpg"  # 200 bytes: the longest name, numbered and trashed
    other = jpeg(tmp_path / "b.jpg", 640, 480).read_bytes()
    by_api = client.post(
        "/api/upload", files={"file": (EMOJI_NAME, other)}, data={"collection": "c" * 200}
    )
    assert by_api.status_code == 201, by_api.text
    too_long = client.post(
        "/api/upload", files={"file": ("x.jpg", other)}, data={"collection": "c" * 201}
    )
    assert too_long.status_code == 422 and "collection" in too_long.json()["detail"]
    ids = [by_api.json()["imageId"]]
    for data in (photo, other):
        sent = client.post("/api/upload", files={"file": (longest, data)}, data={"collection": "L"})
        ids.append(sent.json()["imageId"])
    run_worker()
    for image_id in ids:
        wait_for(lambda i=image_id: client.get(f"/api/images/{i}").json()["status"] == "STORED")
    keys = [client.get(f"/api/images/{i}").json()["originalPath"] for i in ids]
    assert {k.rsplit("/", 1)[-1] for k in keys[1:]} == {longest, longest[:-4] + "-2.jpg"}
    for image_id in ids:
        assert client.delete(f"/api/images/{image_id}").status_code == 204
    assert list(library.temp_dir.iterdir()) == []


def test_an_original_that_cannot_be_stored_fails_its_image_and_drops_the_upload(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    blocker = library.blobs.path("projects") / "blocked"  # type: ignore[attr-defined]
    blocker.parent.mkdir(parents=True)
    blocker.write_bytes(b"a file where the project's folder would be")
    photo = jpeg(tmp_path / "a.jpg").read_bytes()
    sent = client.post(
        "/api/upload", files={"file": ("a.jpg", photo)}, data={"collection": "Blocked"}
    )
    image_id = sent.json()["imageId"]
    run_worker()
    image = wait_for(
        lambda: (i := client.get(f"/api/images/{image_id}").json())["status"] == "FAILED" and i,
        timeout=30,
    )
    assert image["errorCode"] == "STORAGE_ERROR"
    assert str(tmp_path) not in image["errorMessage"]
    assert list(library.temp_dir.iterdir()) == []


def _at_once(count: int, send: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """`count` requests sent together (each on its own connection), their answers."""
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: send(), range(count)))


def test_twenty_requests_racing_on_one_project_get_no_server_error(
    live_server: str, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    limits = httpx.Limits(max_connections=40)
    with httpx.Client(base_url=live_server, timeout=60, limits=limits) as client:
        assert client.post("/api/projects", json={"folder": "race"}).status_code == 201
        same = jpeg(tmp_path / "same.jpg").read_bytes()
        uploads = _at_once(
            20, lambda: client.post("/api/projects/race/upload", files={"files": ("S.jpg", same)})
        )
        assert sorted({u.status_code for u in uploads}) == [200, 201], [u.text for u in uploads]
        outcomes = [u.json()["files"][0] for u in uploads]
        assert sum(not o["duplicate"] for o in outcomes) == 1
        assert len({o["image_id"] for o in outcomes}) == 1

        others = [
            ("files", (f"P{n}.jpg", jpeg(tmp_path / f"{n}.jpg", 300 + n).read_bytes()))
            for n in range(4)
        ]
        assert client.post("/api/projects/race/upload", files=others).status_code == 201
        run_worker()
        wait_for(
            lambda: all(processed(client, "race", b) for b in ("S", "P0", "P1", "P2", "P3")),
            timeout=60,
        )
        for basename in ("S", "P0", "P1", "P2", "P3"):
            kept = client.patch(f"/api/projects/race/photos/{basename}", json={"keep_jpg": False})
            assert kept.status_code == 200, kept.text

        commits = _at_once(20, lambda: client.post("/api/projects/race/commit-changes"))
        assert {c.status_code for c in commits} == {200}, [c.text for c in commits]
        trashed = [name for c in commits for name in c.json()["trashed"]]
        assert sorted(trashed) == ["P0.jpg", "P1.jpg", "P2.jpg", "P3.jpg", "S.jpg"]

        restores = _at_once(
            20,
            lambda: client.post("/api/projects/race/trash/restore", json={"filenames": ["S.jpg"]}),
        )
        assert {r.status_code for r in restores} == {200}, [r.text for r in restores]
        assert sum(r.json()["restored"] == ["S.jpg"] for r in restores) == 1
        photos = client.get("/api/projects/race/photos").json()["photos"]
        assert [p["basename"] for p in photos if p["files"]] == ["S"]


def test_nul_characters_and_nan_get_a_4xx_never_a_server_error(
    client: httpx.Client, tmp_path: Path
) -> None:
    assert client.post("/api/projects", json={"folder": "nul"}).status_code == 201
    photo = jpeg(tmp_path / "a.jpg").read_bytes()
    image_id = client.post("/api/upload", files={"file": ("a.jpg", photo)}).json()["imageId"]
    requests = [
        ("GET", "/api/images?collection=a%00b", None),
        ("GET", "/api/images/a%00b", None),
        ("PATCH", f"/api/images/{image_id}", {"title": "a\x00b"}),
        ("PATCH", f"/api/images/{image_id}", {"collection": "a\x00b"}),
        ("POST", "/api/projects", {"folder": "a\x00b"}),
        ("POST", "/api/projects", {"folder": "x", "title": "a\x00b"}),
        ("GET", "/api/projects/a%00b/photos", None),
        ("PATCH", "/api/projects/nul/photos/a%00b", {"keep_jpg": False}),
        ("POST", "/api/projects/nul/trash/restore", {"filenames": ["a\x00b"]}),
        ("POST", "/api/projects/nul/process", {"filenames": ["a\x00b"]}),
        ("GET", "/api/jobs?type=a%00b", None),
        ("GET", "/api/admin/jobs?type=a%00b", None),
        ("POST", "/api/admin/job-types/a%00b/pause", None),
        ("GET", "/api/product-jobs?sku=a%00b", None),
        ("POST", "/api/product-jobs/cleanup", '{"olderThanDays": NaN}'),
    ]
    for method, path, body in requests:
        sent = body if isinstance(body, str) else json.dumps(body)
        answer = client.request(method, path, content=sent, headers=JSON)
        assert 400 <= answer.status_code < 500, (method, path, answer.status_code, answer.text)
    huge = json.dumps({"folder": "x", "title": "t" * 9_000_000})
    assert client.post("/api/projects", content=huge, headers=JSON).status_code == 413
    form = {"title": "a\x00b"}
    answer = client.post("/api/upload", files={"file": ("b.jpg", photo + b"x")}, data=form)
    assert answer.status_code == 422, answer.text


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB file system of its own (tmpfs), to fill up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_is_a_507_in_json_with_the_request_id_logged_and_counted(
    db_url: str, engine: sa.Engine, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="enlarger.http")
    settings = FAST.replace(data_dir=small_disk / "data", database_url=db_url)
    services = build_services(settings, engine=engine)
    big = os.urandom(3 * 1024 * 1024)
    with serving(services, loopback_socket()) as base, httpx.Client(base_url=base) as client:
        answer = client.post("/api/upload", files={"file": ("big.jpg", big)})
        assert answer.status_code == 507, answer.text
        body = answer.json()
        assert body["requestId"] == answer.headers["x-request-id"]
        assert "full" in body["detail"]
        assert list(services.library.temp_dir.iterdir()) == []
        metrics = client.get("/metrics").text
    assert 'route="/api/upload",status="507"' in metrics
    logged = [r for r in caplog.records if r.name == "enlarger.http" and "507" in r.getMessage()]
    assert logged, "no access-log line for the 507"


def test_a_sidecar_never_overwrites_another_file_and_replaces_its_own_into_the_trash(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    assert client.post("/api/projects", json={"folder": "side"}).status_code == 201
    original = jpeg(tmp_path / "a.jpg").read_bytes()
    sent = client.post(
        "/api/upload", files={"file": ("IMG.xmp", original)}, data={"collection": "side"}
    )
    image_id = sent.json()["imageId"]
    run_worker()
    wait_for(lambda: client.get(f"/api/images/{image_id}").json()["status"] == "STORED")

    def sidecar(text: bytes) -> dict[str, Any]:
        answer = client.post("/api/projects/side/upload", files={"files": ("IMG.xmp", text)})
        assert answer.status_code in (200, 201), answer.text
        return answer.json()["files"][0]

    assert sidecar(b"<x:xmpmeta>1</x:xmpmeta>")["stored_as"] == "IMG-2.xmp"
    assert content(library, "projects/side/IMG.xmp") == original
    assert sidecar(b"<x:xmpmeta>2</x:xmpmeta>")["stored_as"] == "IMG-2.xmp"
    assert content(library, "projects/side/IMG-2.xmp") == b"<x:xmpmeta>2</x:xmpmeta>"
    trashed = [content(library, b.key) for b in library.blobs.list_folder("projects/side/.trash")]
    assert trashed == [b"<x:xmpmeta>1</x:xmpmeta>"]


def test_a_client_gone_mid_upload_is_logged_as_such_and_leaves_no_file(
    live_server: str, library: Library, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    port = int(live_server.rsplit(":", 1)[1])
    head = (
        b"POST /api/upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10000000\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
    )
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head + b"\xff\xd8\xff" + b"x" * 200_000)
        wait_for(lambda: any(library.temp_dir.iterdir()))  # the upload is being written
    wait_for(lambda: any("went away" in r.getMessage() for r in caplog.records))
    wait_for(lambda: not any(library.temp_dir.iterdir()))
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_line_break_in_a_path_cannot_forge_a_log_line(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="enlarger.http")
    forged = "/api/images/x%0A127.0.0.1 GET /api/admin 200"
    assert client.get(forged).status_code == 404
    lines = [r.getMessage() for r in caplog.records if r.name == "enlarger.http"]
    assert lines and all("\n" not in line and "\r" not in line for line in lines), lines
    assert any("%0A" in line for line in lines), lines


def test_a_stream_of_an_unknown_type_is_a_422(client: httpx.Client) -> None:
    refused = client.get("/api/jobs/stream", params={"type": "nope"})
    assert refused.status_code == 422 and "OFFLOAD_ORIGINAL" in refused.json()["detail"]
    with client.stream("GET", "/api/jobs/stream", params={"type": "image"}) as accepted:
        assert accepted.status_code == 200


def test_the_api_description_needs_a_token_once_tokens_exist_unless_made_public(
    db_url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    for public, expected in ((False, 401), (True, 200)):
        settings = FAST.replace(
            data_dir=tmp_path / str(public), database_url=db_url, docs_public=public
        )
        services = build_services(settings, engine=engine)
        # the first /openapi.json builds the document: over httpx's 5 s on a busy machine
        with (
            serving(services, loopback_socket()) as base,
            httpx.Client(base_url=base, timeout=30) as client,
        ):
            assert client.get("/openapi.json").status_code == 200  # no token yet: all open
            if not public:
                _, token = tokens.create(engine, Role.VIEWER, "reader")
            for path in ("/openapi.json", "/docs"):
                assert client.get(path).status_code == expected, (public, path)
            viewer = {"Authorization": f"Bearer {token}"}
            described = client.get("/openapi.json", headers=viewer)
            assert described.status_code == 200 and "/api/upload" in described.json()["paths"]
            assert "swagger" in client.get("/docs", headers=viewer).text.lower()


# Connection-level limits are uvicorn's protocol, before any store: one backend suffices.
ONE_BACKEND = pytest.mark.parametrize("backend", ["sqlite"])


def _send_raw(base_url: str, data: bytes, source: str = "127.0.0.1") -> socket.socket:
    """A connection to the server from `source` (any 127.x.y.z is this host: a second
    loopback address stands for a second client), having sent `data`."""
    port = int(base_url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
    sock.sendall(data)
    return sock


def _answer_of(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    with sock:
        return sock.recv(4096)


UPLOAD_HEAD = (
    b"POST /api/upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n"
    b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
    b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n\xff\xd8\xff'
)


@pytest.mark.parametrize("library_changes", [{"upload_idle_seconds": 1.0}])
def test_a_request_body_that_stops_arriving_is_a_408_and_leaves_nothing(
    live_server: str, library: Library
) -> None:
    sock = _send_raw(live_server, UPLOAD_HEAD)
    assert _answer_of(sock).startswith(b"HTTP/1.1 408")
    wait_for(lambda: list(library.temp_dir.iterdir()) == [])  # the upload hears it is cut off


@pytest.mark.parametrize("library_changes", [{"max_form_bytes": 100_000}])
def test_an_upload_request_over_the_form_limit_is_a_413(
    client: httpx.Client, library: Library, tmp_path: Path
) -> None:
    assert client.post("/api/projects", json={"folder": "many"}).status_code == 201
    parts = [("files", (f"{n}.jpg", b"\xff\xd8\xff" + os.urandom(40_000))) for n in range(3)]
    answer = client.post("/api/projects/many/upload", files=parts)
    assert answer.status_code == 413 and "100,000" in answer.json()["detail"]
    assert list(library.temp_dir.iterdir()) == []
    padded = (
        b"--b\r\nX-Pad: " + b"p" * 20_000 + b"\r\n"
        b'Content-Disposition: form-data; name="files"; filename="a.jpg"\r\n\r\n'
        b"\xff\xd8\xff\r\n--b--\r\n"
    )
    form = {"content-type": "multipart/form-data; boundary=b"}
    refused = client.post("/api/projects/many/upload", content=padded, headers=form)
    assert refused.status_code == 400 and "header size" in refused.json()["detail"]


@ONE_BACKEND
def test_an_oversized_request_head_is_refused_and_the_server_goes_on(client: httpx.Client) -> None:
    sock = _send_raw(
        str(client.base_url),
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n",
    )
    assert _answer_of(sock).startswith(b"HTTP/1.1 400")
    assert client.get("/healthz").status_code == 200


@ONE_BACKEND
@pytest.mark.parametrize("library_changes", [{"head_timeout_seconds": 1.0, "max_connections": 40}])
def test_slow_request_heads_are_cut_off_and_one_client_cannot_hold_every_connection(
    client: httpx.Client,
) -> None:
    """N5: connections that send half a head, or nothing, and wait were held for ever
    (400 of them took the server's file descriptors). Past `max_connections` a new one
    is answered 503 at once; a head not whole within `head_timeout_seconds` is a 408."""
    silent = _send_raw(str(client.base_url), b"")
    halves = [
        _send_raw(str(client.base_url), b"GET /healthz HTTP/1.1\r\nHost: x\r\n") for _ in range(60)
    ]
    assert _answer_of(silent) == b""  # closed: nothing sent, nothing to answer
    answers = [_answer_of(sock) for sock in halves]
    statuses = [answer[:12] for answer in answers]
    refused = statuses.count(b"HTTP/1.1 503")
    assert 21 <= refused <= 22, statuses  # 61 opened, 40 held (the client may hold one)
    assert statuses.count(b"HTTP/1.1 408") == len(answers) - refused, statuses
    assert any(b"within 1 s" in answer for answer in answers)
    assert client.get("/healthz").status_code == 200


@ONE_BACKEND
@pytest.mark.parametrize(
    "library_changes",
    [{"head_timeout_seconds": 30.0, "max_connections": 200, "max_connections_per_client": 10}],
)
def test_one_client_holding_its_share_of_connections_leaves_room_for_others(
    live_server: str,
) -> None:
    """N5: the cap was for the whole server, so one address could hold every place and
    everyone else got 503. Past `max_connections_per_client` from one address, its new
    connections are refused while another client is served."""
    half = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    held = [_send_raw(live_server, half) for _ in range(10)]
    try:
        more = [_send_raw(live_server, half) for _ in range(5)]
        answers = [_answer_of(sock) for sock in more]
        assert all(a.startswith(b"HTTP/1.1 503") for a in answers), answers
        assert b"this address holds 10 connections already" in answers[0]
        other = _send_raw(live_server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "127.0.0.2")
        assert _answer_of(other).startswith(b"HTTP/1.1 200")
        second_client = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(base_url=live_server, transport=second_client) as metrics:
            assert _refused_count(metrics, "client full") >= 5
    finally:
        for sock in held:
            sock.close()


@ONE_BACKEND
@pytest.mark.parametrize("library_changes", [{"head_timeout_seconds": 1.0}])
def test_a_head_dripped_a_byte_at_a_time_is_cut_off_at_the_head_timeout(
    live_server: str,
) -> None:
    """Bytes that keep coming do not restart the head's clock: a head sent a byte every
    0.2 s is answered 408 when head_timeout_seconds have passed since it began."""
    sock = _send_raw(live_server, b"G")
    started = time.monotonic()
    answer = b""
    sock.settimeout(0.2)
    with sock:
        for byte in b"ET /healthz HTTP/1.1\r\nHost: x\r\nX-Drip: " + b"d" * 200:
            try:
                answer = sock.recv(4096)
                break
            except TimeoutError:
                sock.sendall(bytes([byte]))
        else:
            pytest.fail("the dripping head was never cut off")
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert time.monotonic() - started < 20  # well before the 40 s the drip would take


@ONE_BACKEND
@pytest.mark.parametrize("library_changes", [{"upload_idle_seconds": 1.0, "max_connections": 30}])
def test_a_request_body_stalled_on_any_route_is_a_408_and_frees_its_place(
    client: httpx.Client,
) -> None:
    """Only multipart uploads had a body deadline: 50 connections each sending a webhook's
    head and `{`, then nothing, held every place for minutes (`/healthz` answered 503).
    Each refusal is counted for /metrics."""
    before = _refused_count(client, "slow body")
    head = b"POST /api/webhooks/images HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
    stalled = [
        _send_raw(str(client.base_url), head + b"Content-Type: application/json\r\n\r\n{")
        for _ in range(20)
    ]
    login = _send_raw(
        str(client.base_url),
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\ntoken=",
    )
    answers = [_answer_of(sock) for sock in [*stalled, login]]
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers
    assert client.get("/healthz").status_code == 200
    assert _refused_count(client, "slow body") >= before + 21


def test_a_json_body_cut_short_by_a_client_going_away_is_never_acted_on(
    client: httpx.Client,
) -> None:
    """The JSON guard replayed what had come as the whole body: 21 bytes of a declared
    1,000 created the project `cutshort`. Now the request is a 499, like an upload's."""
    head = b"POST /api/projects HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
    sock = _send_raw(
        str(client.base_url), head + b'Content-Type: application/json\r\n\r\n{"folder":"cutshort"}'
    )
    sock.close()
    wait_for(lambda: _answered(client, "unmatched", "POST", 499) > 0)
    assert client.get("/api/projects/cutshort").status_code == 404


def _answered(client: httpx.Client, route: str, method: str, status: int) -> float:
    """How many requests /metrics says the server answered so (499: the client went)."""
    labels = f'method="{method}",route="{route}",status="{status}"'
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f"enlarger_http_requests_total{{{labels}}}"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _refused_count(client: httpx.Client, reason: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'enlarger_http_connections_refused_total{{reason="{reason}"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no refusal count for {reason!r} in /metrics")


def test_no_answer_names_the_servers_upload_folder(
    client: httpx.Client, library: Library, tmp_path: Path
) -> None:
    """A waiting upload's job carries where the upload lies (its `tempPath`); the image
    and the job lists show the job without it."""
    image_id = client.post(
        "/api/upload", files={"file": ("a.jpg", jpeg(tmp_path / "a.jpg").read_bytes())}
    ).json()["imageId"]
    image = client.get(f"/api/images/{image_id}")
    job = image.json()["processingJobs"][0]
    assert job["type"] == "OFFLOAD_ORIGINAL" and job["payload"]["imageId"] == image_id
    for answer in (
        image,
        client.get("/api/admin/jobs"),
        client.get(f"/api/admin/jobs/{job['id']}"),
    ):
        assert answer.status_code == 200
        assert str(library.temp_dir) not in answer.text and "tempPath" not in answer.text


def test_a_commit_finishes_what_it_can_past_a_nested_and_a_linked_sidecar(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """N3 and N4: a sidecar of 3,000 nested elements, and one replaced on disk by a link
    out of the library, are listed as refused; the other photos' sidecars are written and
    the follow-up jobs queued (the commit answered 500 part-way)."""
    assert client.post("/api/projects", json={"folder": "hostile"}).status_code == 201
    deep = tmp_path / "P0.xmp"
    deep.write_bytes(
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="'
        + b'http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""'
        + b' xmlns:e="https://example.com/e/">'
        + b"<e:a>" * 3000
        + b"</e:a>" * 3000
        + b"</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    plain = tmp_path / "P1.xmp"
    plain.write_bytes(b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>')
    shots = [jpeg(tmp_path / f"P{n}.jpg", 300, 200 + n) for n in range(3)]
    assert upload(client, "hostile", *shots, deep, plain).status_code in (200, 201)
    run_worker()
    wait_for(lambda: all(processed(client, "hostile", f"P{n}") for n in range(3)), timeout=60)
    outside = tmp_path / "outside.xmp"
    outside.write_bytes(b"not yours")
    linked = library.blobs.path("projects/hostile/P1.xmp")
    linked.unlink()
    linked.symlink_to(outside)
    for n in range(3):
        client.patch(f"/api/projects/hostile/photos/P{n}", json={"rating": 3})

    committed = client.post("/api/projects/hostile/commit-changes")
    assert committed.status_code == 200, committed.text
    answer = committed.json()
    assert set(answer["sidecars_refused"]) >= {"P0.xmp", "P1.xmp"}, answer
    assert "nested" in answer["sidecars_refused"]["P0.xmp"]
    assert "P2.jpg.xmp" in answer["sidecars"] and answer["jobs"], answer
    assert outside.read_bytes() == b"not yours"


def test_full_views_render_in_the_worker_once_per_image_and_only_so_many_wait(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """N1 and N2: `full-view` decoded whole originals in the API process, one at a time,
    each waiting request holding a thread ordinary routes need. Now a request queues a
    render (one per image however many ask, at most MAX_WAITING waiting in all) and is
    answered at once; the worker renders; a file that cannot be rendered is told."""
    ids = []
    for n in range(full_views.MAX_WAITING + 1):
        sent = client.post(
            "/api/upload", files={"file": (f"F{n}.png", _png(tmp_path / f"F{n}.png", n))}
        )
        ids.append(sent.json()["imageId"])
    run_worker()
    wait_for(
        lambda: all(client.get(f"/api/images/{i}").json()["status"] == "STORED" for i in ids),
        timeout=60,
    )
    library.queue.store.pause(JobType.FULL_VIEW)  # the worker takes none while we look
    with ThreadPoolExecutor(8) as pool:
        asked = list(pool.map(lambda _: client.get(f"/api/images/{ids[0]}/full-view"), range(24)))
        others = list(pool.map(lambda i: client.get(f"/api/images/{i}/full-view"), ids[1:]))
    assert {a.status_code for a in asked} == {202}
    assert all(a.headers["retry-after"] == "1" for a in asked)
    jobs, count = library.queue.store.list_jobs(
        job_type=JobType.FULL_VIEW, payload_match=("imageId", ids[0])
    )
    assert count == 1 and {a.json()["jobId"] for a in asked} == {jobs[0].id}
    statuses = sorted(a.status_code for a in others)  # asked at once: the bound holds
    assert statuses == [202] * (full_views.MAX_WAITING - 1) + [429], statuses
    over = next(a for a in others if a.status_code == 429)
    assert "waiting" in over.json()["detail"] and int(over.headers["retry-after"]) > 0
    assert client.get("/api/projects").status_code == 200
    refused = ids[1 + next(n for n, a in enumerate(others) if a.status_code == 429)]
    broken_id = next(i for i in ids[1:] if i != refused)
    broken = image_records.get_image_row(library, broken_id).original_key
    library.blobs.put_bytes(broken, b"no longer a PNG")

    library.queue.store.resume(JobType.FULL_VIEW)
    done = wait_for(
        lambda: (
            (a := client.get(f"/api/images/{ids[0]}/full-view").json())["status"] == "done" and a
        ),
        timeout=60,
    )
    shown = pyvips.Image.new_from_buffer(client.get(done["url"]).content, "")
    assert (shown.width, shown.height) == (320, 240)
    failed = wait_for(
        lambda: (
            (a := client.get(f"/api/images/{broken_id}/full-view").json())["status"] == "failed"
            and a
        ),
        timeout=60,
    )
    assert failed["errorCode"] in MediaErrorCode.__members__, failed
    assert failed["error"] and str(library.temp_dir) not in failed["error"], failed
    assert not failed["error"].startswith("PermanentError"), failed
    library.blobs.put_bytes(broken, _png(tmp_path / "again.png", 1))  # put right on disk
    wait_for(
        lambda: client.get(f"/api/images/{broken_id}/full-view").json()["status"] == "done",
        timeout=60,
    )


def test_a_full_view_past_the_memory_ceiling_is_not_rendered_again_every_minute() -> None:
    """A render killed at the memory ceiling was taken for a passing failure and run again
    (another 2 GB) each minute someone looked; the same file needs the same memory. A
    time limit or a lost worker may pass, so those are tried again after a while."""
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)

    def failed(code: str) -> Job:
        return Job(
            id=1,
            type=JobType.FULL_VIEW.value,
            payload={"imageId": "i", "original": "10@t"},
            status=JobStatus.FAILED,
            priority=0,
            attempts=1,
            max_attempts=1,
            created_at=an_hour_ago,
            finished_at=an_hour_ago,
            error_code=code,
        )

    assert full_views._sticks(failed(ErrorCode.MEMORY_LIMIT), "10@t")
    assert full_views._sticks(failed(MediaErrorCode.CORRUPT_IMAGE), "10@t")
    assert not full_views._sticks(failed(ErrorCode.MEMORY_LIMIT), "12@t")  # the file changed
    assert not full_views._sticks(failed(ErrorCode.TIMEOUT), "10@t")
    assert not full_views._sticks(failed(ErrorCode.WORKER_CRASHED), "10@t")


def _png(path: Path, seed: int) -> bytes:
    image = pyvips.Image.gaussnoise(320, 240, mean=100 + seed, sigma=30).cast("uchar")
    image.write_to_file(str(path))
    return path.read_bytes()


@pytest.mark.parametrize(
    "address",
    [
        "::ffff:127.0.0.1",  # IPv4-mapped
        "64:ff9b::7f00:1",  # NAT64
        "64:ff9b:1::7f00:1",  # RFC 8215 local-use NAT64 (as a /96)
        "64:ff9b:1:7f00:0:100::",  # the same (as a /48, RFC 6052 2.2)
        "::ffff:0:7f00:1",  # SIIT, IPv4-translated
        "::ffff:0:0:7f00:1",  # IETF-reserved ::/8, which Python 3.11 takes as global
        "2002:7f00:1::1",  # 6to4
        "::7f00:1",  # IPv4-compatible
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
        "::1",
        "fe80::1",
    ],
)
def test_fetch_judges_ipv6_addresses_by_the_ipv4_address_they_carry(
    address: str, tmp_path: Path
) -> None:
    with pytest.raises(StageFailed, match="private, loopback") as refused:
        fetch(f"http://[{address}]:9/p.jpg", tmp_path / "x", "0" * 64, FetchLimits())
    assert not refused.value.retryable


def test_a_host_name_that_takes_for_ever_to_resolve_is_cut_off_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lookup of the host was outside the fetch's deadline: a resolver that does not
    answer (a dead DNS server takes 5 s per try and attempt) held the job past it."""
    released = threading.Event()

    def unanswered(*_args: Any, **_kwargs: Any) -> list[Any]:
        released.wait(60)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", unanswered)
    started = time.monotonic()
    try:
        with pytest.raises(StageFailed, match="could not be resolved in time") as slow:
            fetch(
                "http://images.example.com/p.jpg",
                tmp_path / "d",
                "0" * 64,
                FetchLimits(timeout_s=1.5),
            )
    finally:
        released.set()
    assert slow.value.retryable
    assert time.monotonic() - started < 10
    assert not list(tmp_path.iterdir())


def test_a_server_dripping_its_response_headers_is_cut_off_at_the_deadline(
    tmp_path: Path,
) -> None:
    """httpx's read timeout restarts with every byte: a head sent a byte every 0.1 s was
    never cut off (a 3 s fetch ran past 40 s). One deadline covers connect, head, body."""
    listener = loopback_socket()
    listener.listen()
    port = listener.getsockname()[1]

    def drip() -> None:
        conn, _ = listener.accept()
        with conn, contextlib.suppress(OSError):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nX-Slow: ")
            for _ in range(600):
                conn.sendall(b"x")
                time.sleep(0.1)

    server = threading.Thread(target=drip, daemon=True)
    server.start()
    fetch_is_cut_off(f"http://127.0.0.1:{port}/p.jpg", port, tmp_path, "in time")
    listener.close()
