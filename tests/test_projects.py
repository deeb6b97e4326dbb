"""Projects and their photos over the HTTP API on a real server, on both backends and on
local disk and S3 (moto): JPG + RAW pairs, lone RAWs, sidecars, per-file results, keep
flags, commit, revert and restore, with real files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pillow_heif
import sqlalchemy as sa
from PIL import Image as PILImage

from enlarger.db.schema import images, photo_files, photos, projects
from enlarger.library.library import Library
from enlarger.media.xmp import Decisions, write_decisions
from enlarger.queue import Worker
from tests.conftest import BOTH_STACKS, wait_for
from tests.images import Shot, camera_jpeg, dng, jpeg, photo
from tests.photos import content, listing, photo_of, processed, size_of, upload

pytestmark = BOTH_STACKS


def test_projects_are_created_listed_and_named_safely(client: httpx.Client) -> None:
    created = client.post("/api/projects", json={"folder": "Été 2026", "title": "Summer"})
    assert created.status_code == 201, created.text
    assert created.json() | {"createdAt": None} == {
        "folder": "Été 2026",
        "title": "Summer",
        "collection": "Summer",
        "createdAt": None,
        "photoCount": 0,
        "options": {"picksAs": "rating", "sidecarNames": "both", "embedXmp": False},
    }
    assert client.post("/api/projects", json={"folder": "Été 2026"}).status_code == 409
    for bad in ("../up", ".trash", "a/b", "tab\there", " padded"):
        refused = client.post("/api/projects", json={"folder": bad})
        assert refused.status_code == 422, bad
        assert refused.json()["detail"]
    assert client.post("/api/projects", json={"folder": "x", "owner": "me"}).status_code == 422
    listed = client.get("/api/projects").json()["projects"]
    assert [(p["folder"], p["photoCount"]) for p in listed] == [("Été 2026", 0)]

    client.post("/api/projects", json={"folder": "other"})
    retitled = client.patch("/api/projects/other", json={"title": "Autumn"})
    assert retitled.status_code == 200 and retitled.json()["title"] == "Autumn"
    assert client.patch("/api/projects/other", json={"title": "Summer"}).status_code == 409
    for bad in ({"options": {"embedXmp": "yes"}}, {"options": {"picksAs": 1}}, {"colour": "x"}):
        assert client.patch("/api/projects/other", json=bad).status_code == 422, bad
    assert client.get("/api/projects/other").json()["options"]["embedXmp"] is False
    assert upload(client, "nope", Path(__file__)).status_code == 404


def test_jpg_and_raw_pair_shows_the_jpg(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    client.post("/api/projects", json={"folder": "shoot"})
    jpg = jpeg(tmp_path / "IMG_0001.JPG", 2400, 1600)
    raw = dng(tmp_path / "IMG_0001.DNG", 1200, 800)
    xmp = tmp_path / "IMG_0001.xmp"
    xmp.write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    response = upload(client, "shoot", jpg, raw, xmp)
    assert response.status_code == 201, response.text
    body = response.json()
    by_name = {f["filename"]: f for f in body["files"]}
    assert (by_name["IMG_0001.JPG"]["role"], by_name["IMG_0001.DNG"]["role"]) == ("jpg", "raw")
    assert by_name["IMG_0001.xmp"]["role"] == "sidecar"
    assert {f["basename"] for f in body["files"]} == {"IMG_0001"}

    pending = photo_of(client, "shoot", "IMG_0001")
    assert pending["jpg_available"] and pending["raw_available"]
    assert pending["keep_jpg"] and pending["keep_raw"]
    assert pending["thumbnail_status"] == "pending" and pending["sidecar"] == "IMG_0001.xmp"

    run_worker()
    photo = wait_for(lambda: processed(client, "shoot", "IMG_0001"), timeout=60)
    assert photo["source"] == "IMG_0001.JPG"
    assert size_of(client, photo["previewUrl"]) == (2000, 1333)  # the JPG's, not the RAW's
    assert size_of(client, photo["thumbnailUrl"]) == (256, 171)
    raw_image = client.get(f"/api/images/{by_name['IMG_0001.DNG']['image_id']}").json()
    assert raw_image["status"] == "STORED" and raw_image["sizes"] == {}

    assert listing(library, "projects/shoot") == ["IMG_0001.DNG", "IMG_0001.JPG", "IMG_0001.xmp"]
    assert content(library, "projects/shoot/IMG_0001.DNG") == raw.read_bytes()
    # the job's last item finishes just before the worker records the job finished
    job = wait_for(
        lambda: (
            (j := client.get(f"/api/admin/jobs/{body['jobId']}").json())["status"] == "COMPLETED"
            and j
        )
    )
    assert job["type"] == "upload_postprocess" and job["itemsSummary"]["done"] == 2


def test_a_lone_raw_shows_itself(
    client: httpx.Client, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    client.post("/api/projects", json={"folder": "raws"})
    upload(client, "raws", dng(tmp_path / "DSC_0002.DNG", 1200, 800))
    run_worker()
    photo = wait_for(lambda: processed(client, "raws", "DSC_0002"), timeout=60)
    assert (photo["source"], photo["jpg_available"], photo["raw_available"]) == (
        "DSC_0002.DNG",
        False,
        True,
    )
    assert size_of(client, photo["previewUrl"]) == (1200, 800)


def test_each_file_gets_its_own_result(client: httpx.Client, tmp_path: Path) -> None:
    client.post("/api/projects", json={"folder": "mixed"})
    good = jpeg(tmp_path / "a.jpg", 300, 200)
    other = jpeg(tmp_path / "b.jpg", 320, 200)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    response = upload(
        client,
        "mixed",
        good,
        notes,
        good,
        other,
        names=["IMG_1.jpg", "notes.txt", "copy.jpg", ".x.jpg"],
    )
    assert response.status_code == 201
    results = response.json()["files"]
    assert [(r["filename"], r["error_code"], r["duplicate"]) for r in results] == [
        ("notes.txt", "UNSUPPORTED_FORMAT", False),
        (".x.jpg", "INVALID_NAME", False),
        ("IMG_1.jpg", None, False),
        ("copy.jpg", None, True),
    ]
    assert results[3]["stored_as"] == "IMG_1.jpg"  # the same bytes: the file already there

    again = upload(client, "mixed", other, names=["IMG_1.jpg"])  # same name, other bytes
    assert again.json()["files"][0]["stored_as"] == "IMG_1-2.jpg"
    basenames = [p["basename"] for p in client.get("/api/projects/mixed/photos").json()["photos"]]
    assert basenames == ["IMG_1", "IMG_1-2"]


def test_keep_flags_are_recorded(client: httpx.Client, tmp_path: Path) -> None:
    client.post("/api/projects", json={"folder": "cull"})
    upload(client, "cull", jpeg(tmp_path / "P1.jpg", 300, 200), dng(tmp_path / "P1.dng", 600, 400))
    changed = client.patch("/api/projects/cull/photos/P1", json={"keep_raw": False})
    assert changed.status_code == 200
    assert (changed.json()["keep_jpg"], changed.json()["keep_raw"]) == (True, False)
    assert client.patch("/api/projects/cull/photos/P9", json={"keep_raw": False}).status_code == 404
    assert client.patch("/api/projects/cull/photos/P1", json={"keep": 1}).status_code == 422


def test_commit_trashes_what_is_not_kept_and_restore_brings_it_back(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    client.post("/api/projects", json={"folder": "cull"})
    jpg = jpeg(tmp_path / "P1.JPG", 2400, 1600)
    raw = dng(tmp_path / "P1.DNG", 1200, 800)
    upload(client, "cull", jpg, raw)
    run_worker()
    wait_for(lambda: processed(client, "cull", "P1"), timeout=60)

    client.patch("/api/projects/cull/photos/P1", json={"keep_raw": False})
    committed = client.post("/api/projects/cull/commit-changes").json()
    assert (committed["trashed"], committed["regenerating"]) == (["P1.DNG"], [])
    for job_id in committed["jobs"].values():  # the reconciliation it queued: nothing to do
        wait_for(lambda j=job_id: client.get(f"/api/jobs/{j}").json()["status"] == "COMPLETED")
        assert client.get(f"/api/jobs/{job_id}").json()["result"]["changes"] == []
    assert listing(library, "projects/cull") == ["P1.JPG"]
    assert [n.endswith("-P1.DNG") for n in listing(library, "projects/cull/.trash")] == [True]
    photo = photo_of(client, "cull", "P1")
    assert (photo["jpg_available"], photo["raw_available"]) == (True, False)
    assert photo["thumbnail_status"] == "done"

    restored = client.post(
        "/api/projects/cull/trash/restore", json={"filenames": ["P1.DNG", "X.DNG"]}
    )
    assert restored.json() == {"restored": ["P1.DNG"], "refused": {"X.DNG": "not in the trash"}}
    assert content(library, "projects/cull/P1.DNG") == raw.read_bytes()
    assert listing(library, "projects/cull/.trash") == []
    assert photo_of(client, "cull", "P1")["raw_available"] is True

    client.patch("/api/projects/cull/photos/P1", json={"keep_jpg": False})
    committed = client.post("/api/projects/cull/commit-changes").json()
    assert (committed["trashed"], committed["regenerating"]) == (["P1.JPG"], ["P1.DNG"])
    photo = wait_for(lambda: processed(client, "cull", "P1"), timeout=60)
    assert photo["source"] == "P1.DNG"
    assert size_of(client, photo["previewUrl"]) == (1200, 800)  # now made from the RAW

    client.patch("/api/projects/cull/photos/P1", json={"keep_raw": False})
    assert client.post("/api/projects/cull/commit-changes").json()["trashed"] == ["P1.DNG"]
    photo = photo_of(client, "cull", "P1")  # no file left: not "pending" forever
    assert (photo["files"], photo["thumbnail_status"], photo["preview_status"]) == (
        [],
        "none",
        "none",
    )


def test_a_new_file_of_a_photo_thrown_away_is_not_thrown_away_too(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """P2 was rejected and the commit sent its file to the trash; a new P2.JPG (other
    bytes, another shoot) joined that photo with its reject, and the next commit threw
    it away too. It starts undecided."""
    client.post("/api/projects", json={"folder": "again"})
    upload(client, "again", jpeg(tmp_path / "P2.JPG", 800, 600))
    run_worker()
    wait_for(lambda: processed(client, "again", "P2"), timeout=60)
    client.patch("/api/projects/again/photos/P2", json={"flag": "reject", "rating": 2})
    assert client.post("/api/projects/again/commit-changes").json()["trashed"] == ["P2.JPG"]
    (tmp_path / "later").mkdir()
    upload(client, "again", jpeg(tmp_path / "later" / "P2.JPG", 640, 480))
    photo = wait_for(lambda: processed(client, "again", "P2"), timeout=60)
    assert (photo["flag"], photo["rating"]) == ("unflagged", 0)
    assert client.post("/api/projects/again/commit-changes").json()["trashed"] == []
    assert listing(library, "projects/again") == ["P2.JPG"]


def test_revert_resets_intent_to_what_is_there(client: httpx.Client, tmp_path: Path) -> None:
    client.post("/api/projects", json={"folder": "undo"})
    upload(client, "undo", jpeg(tmp_path / "Q.jpg", 300, 200))
    client.patch("/api/projects/undo/photos/Q", json={"keep_jpg": False, "keep_raw": True})
    assert client.post("/api/projects/undo/revert-changes").json() == {"photosChanged": 1}
    photo = photo_of(client, "undo", "Q")
    assert (photo["keep_jpg"], photo["keep_raw"]) == (True, False)
    assert client.post("/api/projects/undo/revert-changes").json() == {"photosChanged": 0}
    assert client.post("/api/projects/nope/revert-changes").status_code == 404


def test_a_collection_naming_a_projects_folder_or_title_joins_that_project(
    client: httpx.Client, tmp_path: Path
) -> None:
    """Never a silent `wedding-2026-2`: the folder, the title and any name that makes the
    same folder all mean the project that exists."""
    client.post("/api/projects", json={"folder": "wedding-2026", "title": "Wedding 2026"})
    for n, collection in enumerate(("wedding-2026", "Wedding 2026", "WEDDING 2026!")):
        photo = jpeg(tmp_path / f"{n}.jpg", 300 + n, 200)
        answer = client.post(
            "/api/upload",
            data={"collection": collection},
            files={"file": (photo.name, photo.read_bytes())},
        )
        assert answer.status_code == 201, answer.text
    assert [p["folder"] for p in client.get("/api/projects").json()["projects"]] == ["wedding-2026"]
    shown = client.get("/api/images").json()["data"]
    assert [image["collection"] for image in shown] == ["Wedding 2026"] * 3
    client.post("/api/upload", data={"collection": "Holiday"}, files={"file": ("h.jpg", b"x")})
    folders = sorted(p["folder"] for p in client.get("/api/projects").json()["projects"])
    assert folders == ["holiday", "wedding-2026"]  # a new name still makes a new project


def test_photos_from_the_photo_api_join_their_project(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """One library: an upload to a collection is a photo of its project, named as its
    original lies in the folder (a name taken by other bytes gets the next number), and
    a JPG and its RAW sent apart make one photo."""
    client.post("/api/projects", json={"folder": "wedding-2026", "title": "Wedding 2026"})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    sent = [
        jpeg(tmp_path / "a" / "IMG_0001.JPG", 600, 400),
        dng(tmp_path / "a" / "IMG_0001.DNG", 600, 400),
        jpeg(tmp_path / "b" / "IMG_0001.JPG", 640, 400),  # the same name, other bytes
    ]
    for path in sent:
        answer = client.post(
            "/api/upload",
            data={"collection": "Wedding 2026"},
            files={"file": (path.name, path.read_bytes())},
        )
        assert answer.status_code == 201, answer.text
    run_worker()
    wait_for(lambda: processed(client, "wedding-2026", "IMG_0001-2"), timeout=60)
    # The RAW joins its JPG once its metadata is read, which may be after the JPG is done.
    pair = wait_for(
        lambda: _with_files(processed(client, "wedding-2026", "IMG_0001"), 2), timeout=60
    )
    assert sorted((f["filename"], f["role"]) for f in pair["files"]) == [
        ("IMG_0001.DNG", "raw"),
        ("IMG_0001.JPG", "jpg"),
    ]
    assert pair["keep_jpg"] and pair["keep_raw"] and pair["source"] == "IMG_0001.JPG"
    shown = client.get("/api/projects").json()["projects"]
    assert [(p["folder"], p["photoCount"]) for p in shown] == [("wedding-2026", 2)]
    assert listing(library, "projects/wedding-2026") == [
        "IMG_0001-2.JPG",
        "IMG_0001.DNG",
        "IMG_0001.JPG",
    ]
    names = sorted(image["originalFilename"] for image in client.get("/api/images").json()["data"])
    assert names == ["IMG_0001-2.JPG", "IMG_0001.DNG", "IMG_0001.JPG"]


def _with_files(photo: dict[str, Any] | None, count: int) -> dict[str, Any] | None:
    """The photo once it has `count` files; None before."""
    return photo if photo is not None and len(photo["files"]) == count else None


def _serials_by_photo(library: Library, folder: str) -> dict[str, set[str]]:
    """Each photo's files' camera serial numbers, as their metadata says."""
    query = (
        sa.select(photos.c.basename, images.c.exif)
        .join(photo_files, photo_files.c.photo_id == photos.c.id)
        .join(images, images.c.id == photo_files.c.image_id)
        .join(projects, projects.c.id == photos.c.project_id)
        .where(projects.c.folder == folder)
    )
    found: dict[str, set[str]] = {}
    with library.engine.connect() as conn:
        for basename, exif in conn.execute(query):
            found.setdefault(basename, set()).add(exif["camera_serial"])
    return found


def test_two_cameras_with_the_same_file_numbers_make_two_photos(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """Two bodies of one model both shot IMG_5002 (JPG + RAW). A RAW joins the JPG of its
    own capture, whatever order the files come in, by a project upload or by the photo
    API: never the other camera's."""
    a = Shot(taken="2026:07:14 18:30:05", subsec="12", serial="A-0001")
    b = Shot(taken="2026:07:14 18:31:40", subsec="87", serial="B-0002")
    cards = {}
    for name, shot in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        cards[name] = (
            camera_jpeg(tmp_path / name / "IMG_5002.JPG", shot, 600 + 40 * (name == "b")),
            dng(tmp_path / name / "IMG_5002.DNG", 600, 400, shot=shot),
        )
    client.post("/api/projects", json={"folder": "upload"})
    rated = tmp_path / "b" / "IMG_5002.xmp"  # camera B's, sent with its JPG
    rated.write_bytes(write_decisions(None, Decisions("pick", 5)))
    darktable = tmp_path / "b" / "IMG_5002.JPG.xmp"  # naming the file it describes
    darktable.write_bytes(
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        b'22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:xmpMM="http://ns.adobe.com/'
        b'xap/1.0/mm/" xmpMM:DerivedFrom="IMG_5002.JPG"/></rdf:RDF></x:xmpmeta>'
    )
    assert upload(client, "upload", cards["a"][0]).status_code == 201
    with_sidecar = upload(client, "upload", cards["b"][0], rated, darktable).json()["files"]
    assert [(f["stored_as"], f["basename"]) for f in with_sidecar] == [
        ("IMG_5002-2.JPG", "IMG_5002-2"),
        ("IMG_5002-2.xmp", "IMG_5002-2"),
        ("IMG_5002-2.JPG.xmp", "IMG_5002-2"),
    ]
    follows = content(library, "projects/upload/IMG_5002-2.JPG.xmp")
    assert b'DerivedFrom="IMG_5002-2.JPG"' in follows  # the name its file has now
    for path in (cards["b"][1], cards["a"][1]):
        assert upload(client, "upload", path).status_code == 201
    expected = {"IMG_5002": {"A-0001"}, "IMG_5002-2": {"B-0002"}}
    assert _serials_by_photo(library, "upload") == expected
    assert photo_of(client, "upload", "IMG_5002")["rating"] == 0
    assert photo_of(client, "upload", "IMG_5002-2")["rating"] == 5
    pairs = {p["basename"]: sorted(f["filename"] for f in p["files"]) for p in
             client.get("/api/projects/upload/photos").json()["photos"]}  # fmt: skip
    assert pairs == {
        "IMG_5002": ["IMG_5002.DNG", "IMG_5002.JPG"],
        "IMG_5002-2": ["IMG_5002-2.DNG", "IMG_5002-2.JPG"],
    }

    client.post("/api/projects", json={"folder": "api"})
    for path in (cards["b"][1], cards["a"][0], cards["a"][1], cards["b"][0]):
        answer = client.post(
            "/api/upload",
            data={"collection": "api"},
            files={"file": (path.name, path.read_bytes())},
        )
        assert answer.status_code == 201, answer.text
    run_worker()
    wait_for(
        lambda: processed(client, "api", "IMG_5002") and processed(client, "api", "IMG_5002-2"), 60
    )
    by_camera = sorted(_serials_by_photo(library, "api").values(), key=sorted)
    assert by_camera == [{"A-0001"}, {"B-0002"}]
    assert all(
        len(p["files"]) == 2 for p in client.get("/api/projects/api/photos").json()["photos"]
    )


def test_a_jpg_and_a_heic_of_one_name_make_one_photo_shown_by_one_of_them(
    client: httpx.Client, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """The list took the first file by name to show the photo while the derivative jobs
    took whichever the database gave first: with `dup.jpg` and `dup.heic` the photo waited
    for ever for thumbnails no job would make."""
    client.post("/api/projects", json={"folder": "both"})
    heic = tmp_path / "dup.heic"
    picture = PILImage.frombytes("RGB", (640, 480), photo(640, 480).write_to_memory())
    pillow_heif.from_pillow(picture).save(heic, quality=80)
    upload(client, "both", jpeg(tmp_path / "dup.jpg", 600, 400))
    run_worker()
    assert wait_for(lambda: processed(client, "both", "dup"), timeout=60)
    upload(client, "both", heic)
    shown = wait_for(
        lambda: (p := processed(client, "both", "dup")) and p["source"] == "dup.heic" and p,
        timeout=60,
    )
    assert size_of(client, shown["previewUrl"]) == (640, 480)  # the HEIC's, not the JPG's
