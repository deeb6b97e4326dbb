"""Culling decisions over the HTTP API on a real server: pick / reject / stars / colour
labels per photo and in bulk; read from a file's own XMP and from Lightroom's and
darktable's sidecars on ingest; written to `.xmp` sidecars on commit in the form exiv2
(the library behind digiKam and exiftool-compatible tools) reads back."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pyexiv2
import pyvips
import rawpy
import sqlalchemy as sa

from enlarger.db.schema import photos
from enlarger.library import image_records, maintenance, sidecars
from enlarger.library.library import Library
from enlarger.library.tasks import Maintenance
from enlarger.media.embed import embed_xmp, embedded_xmp
from enlarger.media.xmp import Decisions, read_decisions, write_decisions
from enlarger.queue import Worker
from tests.conftest import BOTH_STACKS, wait_for
from tests.images import Shot, camera_jpeg, dng, jpeg, photo, tiff_wrapped_raw
from tests.photos import by_hand, content, listing, photo_of, processed, upload

pytestmark = BOTH_STACKS

# A sidecar as darktable writes it (darktable's documented XMP: a rating, its colour labels
# as numbers in an rdf:Seq, and its edit history, which enlarger must keep).
DARKTABLE_SIDECAR = b"""<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:darktable="http://darktable.sf.net/"
   xmp:Rating="3"
   xmpMM:DerivedFrom="IMG_0002.DNG"
   darktable:xmp_version="5"
   darktable:history_end="1">
   <darktable:colorlabels>
    <rdf:Seq>
     <rdf:li>3</rdf:li>
    </rdf:Seq>
   </darktable:colorlabels>
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:num="0" darktable:operation="exposure" darktable:enabled="1"/>
    </rdf:Seq>
   </darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def _sidecar_fields(library: Library, key: str, tmp_path: Path) -> dict[str, object]:
    """What exiv2 reads from a sidecar enlarger stored."""
    copy = tmp_path / key.rsplit("/", 1)[-1]
    copy.write_bytes(content(library, key))
    image = pyexiv2.Image(str(copy))
    try:
        return image.read_xmp()
    finally:
        image.close()


def test_decisions_are_recorded_per_photo_and_in_bulk(client: httpx.Client, tmp_path: Path) -> None:
    client.post("/api/projects", json={"folder": "cull"})
    upload(client, "cull", *(jpeg(tmp_path / f"P{n}.jpg", 300, 200 + n) for n in range(3)))
    fresh = photo_of(client, "cull", "P0")
    assert (fresh["flag"], fresh["rating"], fresh["label"]) == ("unflagged", 0, None)

    one = client.patch("/api/projects/cull/photos/P0", json={"flag": "pick", "rating": 4})
    assert one.status_code == 200, one.text
    assert (one.json()["flag"], one.json()["rating"], one.json()["label"]) == ("pick", 4, None)
    labelled = client.patch("/api/projects/cull/photos/P0", json={"label": "green"}).json()
    assert (labelled["flag"], labelled["rating"], labelled["label"]) == ("pick", 4, "green")

    many = client.patch(
        "/api/projects/cull/photos",
        json={"basenames": ["P1", "P2", "P9"], "rating": 2, "label": "red"},
    )
    assert many.json() == {"changed": 2, "unknown": ["P9"]}
    assert [
        (photo_of(client, "cull", b)["rating"], photo_of(client, "cull", b)["label"])
        for b in ("P1", "P2")
    ] == [(2, "red"), (2, "red")]
    cleared = client.patch("/api/projects/cull/photos/P1", json={"label": None}).json()
    assert (cleared["rating"], cleared["label"]) == (2, None)  # a null label clears only it

    for bad in ({"rating": 6}, {"rating": -1}, {"flag": "maybe"}, {"label": "orange"}):
        refused = client.patch("/api/projects/cull/photos/P0", json=bad)
        assert refused.status_code == 422, bad
    assert client.patch("/api/projects/cull/photos", json={"basenames": []}).status_code == 422
    assert client.patch("/api/projects/cull/photos/P9", json={"rating": 1}).status_code == 404


def test_commit_writes_sidecars_exiv2_reads_and_trashes_rejected_photos(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    client.post("/api/projects", json={"folder": "cull"})
    upload(
        client,
        "cull",
        jpeg(tmp_path / "A.JPG", 600, 400),
        jpeg(tmp_path / "B.JPG", 640, 400),
        dng(tmp_path / "B.DNG", 600, 400),
        jpeg(tmp_path / "C.JPG", 660, 400),
    )
    run_worker()
    for basename in ("A", "B", "C"):
        wait_for(lambda b=basename: processed(client, "cull", b), timeout=60)
    client.patch(
        "/api/projects/cull/photos/A", json={"flag": "pick", "rating": 5, "label": "purple"}
    )
    client.patch("/api/projects/cull/photos/B", json={"flag": "reject", "rating": 1})

    dry = client.post("/api/projects/cull/commit-changes", json={"dryRun": True}).json()
    assert listing(library, "projects/cull") == ["A.JPG", "B.DNG", "B.JPG", "C.JPG"]
    committed = client.post("/api/projects/cull/commit-changes").json()
    assert (dry["sidecars"], dry["trashed"]) == (committed["sidecars"], committed["trashed"])
    assert sorted(committed["sidecars"]) == [  # Lightroom's name and darktable's; C has none
        "A.JPG.xmp",
        "A.xmp",
        "B.DNG.xmp",
        "B.JPG.xmp",
        "B.xmp",
    ]
    assert sorted(committed["trashed"]) == ["B.DNG", "B.JPG"]  # a rejection drops both files
    assert committed["sidecars_refused"] == {}
    assert listing(library, "projects/cull") == ["A.JPG", "A.JPG.xmp", "A.xmp", "C.JPG"]
    for name in ("A.xmp", "A.JPG.xmp"):
        picked = _sidecar_fields(library, f"projects/cull/{name}", tmp_path)
        assert picked["Xmp.xmp.Rating"] == "5" and picked["Xmp.xmp.Label"] == "Purple"
        assert picked["Xmp.darktable.colorlabels"] == ["4"]
        assert (picked["Xmp.digiKam.PickLabel"], picked["Xmp.digiKam.ColorLabel"]) == ("3", "6")
    trashed = listing(library, "projects/cull/.trash")
    assert [n for n in trashed if n.endswith(".xmp")] == ["B.DNG.xmp", "B.JPG.xmp", "B.xmp"]
    rejected = _sidecar_fields(library, "projects/cull/.trash/B.xmp", tmp_path)
    assert (rejected["Xmp.xmp.Rating"], rejected["Xmp.digiKam.PickLabel"]) == ("-1", "1")

    again = client.post("/api/projects/cull/commit-changes").json()
    assert (again["sidecars"], again["trashed"]) == ([], [])  # nothing changed: nothing written
    client.patch("/api/projects/cull/photos/A", json={"label": None, "rating": 3})
    rewritten = client.post("/api/projects/cull/commit-changes").json()["sidecars"]
    assert sorted(rewritten) == ["A.JPG.xmp", "A.xmp"]
    relabelled = _sidecar_fields(library, "projects/cull/A.xmp", tmp_path)
    assert relabelled["Xmp.xmp.Rating"] == "3"
    assert "Xmp.xmp.Label" not in relabelled and "Xmp.darktable.colorlabels" not in relabelled


def test_decisions_are_read_from_a_files_xmp_and_from_sidecars(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """A camera JPEG rated in camera (its own XMP), a RAW with darktable's sidecar named
    `IMG_0002.DNG.xmp`, and a Lightroom sidecar beside a photo uploaded through the
    photo API; darktable's history survives enlarger's rewrite."""
    client.post("/api/projects", json={"folder": "shoot"})
    rated = photo(600, 400).copy()
    in_camera = write_decisions(None, Decisions("unflagged", 3, "red"))
    rated.set_type(pyvips.GValue.blob_type, "xmp-data", in_camera)
    rated.jpegsave(str(tmp_path / "IMG_0001.JPG"))
    darktable = tmp_path / "IMG_0002.DNG.xmp"
    darktable.write_bytes(DARKTABLE_SIDECAR)
    lightroom = tmp_path / "IMG_0003.xmp"
    lightroom.write_bytes(write_decisions(None, Decisions("reject", 0, "yellow")))
    raw = dng(tmp_path / "IMG_0002.DNG", 600, 400)
    answer = upload(client, "shoot", tmp_path / "IMG_0001.JPG", darktable, raw)
    assert answer.status_code == 201, answer.text
    by_name = {f["filename"]: f for f in answer.json()["files"]}
    assert by_name["IMG_0002.DNG.xmp"]["basename"] == "IMG_0002"  # sent before its RAW

    later = jpeg(tmp_path / "IMG_0003.JPG", 600, 400)
    client.post(
        "/api/upload",
        data={"collection": "shoot"},
        files={"file": (later.name, later.read_bytes())},
    )
    run_worker()
    wait_for(lambda: processed(client, "shoot", "IMG_0003"), timeout=60)
    upload(client, "shoot", lightroom)

    decided = {
        basename: (p["flag"], p["rating"], p["label"], p["sidecar"])
        for basename in ("IMG_0001", "IMG_0002", "IMG_0003")
        for p in [photo_of(client, "shoot", basename)]
    }
    assert decided == {
        "IMG_0001": ("unflagged", 3, "red", None),
        "IMG_0002": ("unflagged", 3, "blue", "IMG_0002.DNG.xmp"),
        "IMG_0003": ("reject", 0, "yellow", "IMG_0003.xmp"),
    }

    client.patch("/api/projects/shoot/photos/IMG_0002", json={"rating": 5})
    committed = client.post("/api/projects/shoot/commit-changes").json()
    assert sorted(committed["sidecars"]) == [
        "IMG_0001.JPG.xmp",
        "IMG_0001.xmp",
        "IMG_0002.DNG.xmp",
        "IMG_0002.xmp",
        "IMG_0003.JPG.xmp",  # IMG_0003.xmp says all there is to say already
    ]
    kept = _sidecar_fields(library, "projects/shoot/IMG_0002.DNG.xmp", tmp_path)
    assert kept["Xmp.xmp.Rating"] == "5" and kept["Xmp.darktable.colorlabels"] == ["3"]
    assert kept["Xmp.darktable.history[1]/darktable:operation"] == "exposure"
    assert kept["Xmp.xmpMM.DerivedFrom"] == "IMG_0002.DNG"


# As Lightroom Classic writes a sidecar: stars and a label, no pick (it keeps its pick flag
# in its catalog); a reject would be Rating -1.
LIGHTROOM_SIDECAR = b"""<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Adobe XMP Core 7.0-c000">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
   xmp:Rating="2" xmp:Label="Green"/>
 </rdf:RDF>
</x:xmpmeta>
"""


def test_another_tools_edit_of_one_property_is_read_and_a_pick_outlives_lightroom(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """After a commit, darktable relabels the photo in the sidecar enlarger wrote (its own
    colour number only: Lightroom's name and digiKam's number still say red), then a
    Lightroom sidecar comes in with stars and no pick: the new label is read, and the
    pick made in enlarger stays, since Lightroom writes none."""
    client.post("/api/projects", json={"folder": "lr"})
    upload(client, "lr", jpeg(tmp_path / "IMG_0001.JPG", 600, 400))
    run_worker()
    wait_for(lambda: processed(client, "lr", "IMG_0001"), timeout=60)
    decided = {"flag": "pick", "rating": 5, "label": "red"}
    client.patch("/api/projects/lr/photos/IMG_0001", json=decided)
    committed = client.post("/api/projects/lr/commit-changes").json()
    assert sorted(committed["sidecars"]) == ["IMG_0001.JPG.xmp", "IMG_0001.xmp"]

    written = content(library, "projects/lr/IMG_0001.JPG.xmp")
    assert written.count(b"<rdf:li>0</rdf:li>") == 1  # darktable's red
    relabelled = tmp_path / "IMG_0001.JPG.xmp"
    relabelled.write_bytes(written.replace(b"<rdf:li>0</rdf:li>", b"<rdf:li>2</rdf:li>"))
    upload(client, "lr", relabelled)
    now = photo_of(client, "lr", "IMG_0001")
    assert (now["flag"], now["rating"], now["label"]) == ("pick", 5, "green")

    lightroom = tmp_path / "IMG_0001.xmp"
    lightroom.write_bytes(LIGHTROOM_SIDECAR)
    upload(client, "lr", lightroom)
    now = photo_of(client, "lr", "IMG_0001")
    assert (now["flag"], now["rating"], now["label"]) == ("pick", 2, "green")

    lightroom.write_bytes(LIGHTROOM_SIDECAR.replace(b'xmp:Rating="2"', b'xmp:Rating="-1"'))
    upload(client, "lr", lightroom)  # a reject is a decision Lightroom does write
    assert photo_of(client, "lr", "IMG_0001")["flag"] == "reject"


def test_a_sidecar_that_is_not_xmp_is_never_overwritten(
    client: httpx.Client, library: Library, tmp_path: Path
) -> None:
    client.post("/api/projects", json={"folder": "odd"})
    broken = tmp_path / "P.xmp"
    broken.write_bytes(b"<not-xmp>notes</not-xmp>")
    upload(client, "odd", jpeg(tmp_path / "P.jpg", 300, 200), broken)
    client.patch("/api/projects/odd/photos/P", json={"rating": 2})
    committed = client.post("/api/projects/odd/commit-changes").json()
    assert committed["sidecars"] == ["P.jpg.xmp"]  # darktable's is written; the other left
    assert list(committed["sidecars_refused"]) == ["P.xmp"]
    assert content(library, "projects/odd/P.xmp") == b"<not-xmp>notes</not-xmp>"


def test_a_restored_photo_comes_back_unrejected_with_its_sidecars(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """Reject, commit, restore, commit: the photo's files and sidecars (darktable's edit
    history kept) come back, it is no longer rejected, and the second commit leaves it in
    the folder with no second copy of a sidecar in the trash. A RAW dropped alone takes
    its own sidecar along and brings it back."""
    client.post("/api/projects", json={"folder": "wed"})
    darktable = tmp_path / "IMG_5005.DNG.xmp"
    darktable.write_bytes(DARKTABLE_SIDECAR)
    upload(
        client,
        "wed",
        jpeg(tmp_path / "IMG_5005.JPG", 600, 400),
        dng(tmp_path / "IMG_5005.DNG", 600, 400),
        darktable,
        jpeg(tmp_path / "IMG_5006.JPG", 640, 400),
        dng(tmp_path / "IMG_5006.DNG", 640, 400),
    )
    run_worker()
    # two RAWs and two JPEGs through S3: over 15 s on a busy machine
    wait_for(
        lambda: processed(client, "wed", "IMG_5005") and processed(client, "wed", "IMG_5006"),
        timeout=60,
    )
    client.patch("/api/projects/wed/photos/IMG_5005", json={"flag": "reject"})
    client.patch("/api/projects/wed/photos/IMG_5006", json={"rating": 2, "keep_raw": False})
    first = client.post("/api/projects/wed/commit-changes").json()
    assert sorted(first["trashed"]) == ["IMG_5005.DNG", "IMG_5005.JPG", "IMG_5006.DNG"]
    assert listing(library, "projects/wed") == ["IMG_5006.JPG", "IMG_5006.JPG.xmp", "IMG_5006.xmp"]
    assert [n for n in listing(library, "projects/wed/.trash") if n.endswith(".xmp")] == [
        "IMG_5005.DNG.xmp",
        "IMG_5005.JPG.xmp",
        "IMG_5005.xmp",
        "IMG_5006.DNG.xmp",
    ]

    restored = client.post(
        "/api/projects/wed/trash/restore",
        json={"filenames": ["IMG_5005.JPG", "IMG_5005.DNG", "IMG_5006.DNG"]},
    ).json()
    assert sorted(restored["restored"]) == ["IMG_5005.DNG", "IMG_5005.JPG", "IMG_5006.DNG"]
    back = photo_of(client, "wed", "IMG_5005")
    assert back["flag"] == "unflagged"
    assert back["sidecars"] == ["IMG_5005.DNG.xmp", "IMG_5005.JPG.xmp", "IMG_5005.xmp"]
    assert photo_of(client, "wed", "IMG_5006")["sidecars"] == [
        "IMG_5006.DNG.xmp",
        "IMG_5006.JPG.xmp",
        "IMG_5006.xmp",
    ]
    assert [n for n in listing(library, "projects/wed/.trash") if n.endswith(".xmp")] == []
    kept = _sidecar_fields(library, "projects/wed/IMG_5005.DNG.xmp", tmp_path)
    assert kept["Xmp.xmp.Rating"] == "3"  # no longer rejected, at once: darktable's stars
    assert kept["Xmp.darktable.history[1]/darktable:operation"] == "exposure"

    second = client.post("/api/projects/wed/commit-changes").json()
    assert (second["trashed"], second["sidecars"]) == ([], [])  # all said already
    assert listing(library, "projects/wed/.trash") == []


def test_a_pick_reaches_tools_without_a_pick_flag(
    client: httpx.Client, library: Library, tmp_path: Path
) -> None:
    """Lightroom Classic, Capture One and darktable read no pick from XMP: an unrated pick
    is written with one star (or the project's chosen label), Photo Mechanic's Tagged is
    set, and the file read back is a pick with no stars, not a one-star photo."""
    client.post("/api/projects", json={"folder": "picks"})
    upload(client, "picks", jpeg(tmp_path / "P.jpg", 300, 200), jpeg(tmp_path / "Q.jpg", 320, 200))
    client.patch("/api/projects/picks/photos", json={"basenames": ["P", "Q"], "flag": "pick"})
    client.patch("/api/projects/picks/photos/Q", json={"rating": 4})
    client.post("/api/projects/picks/commit-changes")
    unrated = _sidecar_fields(library, "projects/picks/P.xmp", tmp_path)
    assert unrated["Xmp.xmp.Rating"] == "1"
    assert unrated["Xmp.photomechanic.Tagged"] == "True"
    assert unrated["Xmp.digiKam.PickLabel"] == "3"
    assert _sidecar_fields(library, "projects/picks/Q.xmp", tmp_path)["Xmp.xmp.Rating"] == "4"
    assert read_decisions(content(library, "projects/picks/P.xmp")) == Decisions("pick", 0, None)

    changed = client.patch("/api/projects/picks", json={"options": {"picksAs": "green"}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["options"]["picksAs"] == "green"
    rewritten = client.post("/api/projects/picks/commit-changes").json()["sidecars"]
    assert sorted(rewritten) == ["P.jpg.xmp", "P.xmp", "Q.jpg.xmp", "Q.xmp"]
    labelled = _sidecar_fields(library, "projects/picks/P.xmp", tmp_path)
    assert (labelled["Xmp.xmp.Rating"], labelled["Xmp.xmp.Label"]) == ("0", "Green")
    assert read_decisions(content(library, "projects/picks/P.xmp")) == Decisions("pick", 0, None)
    refused = client.patch("/api/projects/picks", json={"options": {"picksAs": "orange"}})
    assert refused.status_code == 422


def test_sidecars_are_named_for_each_tool_and_written_only_for_what_differs(
    client: httpx.Client, library: Library, tmp_path: Path
) -> None:
    """darktable's colour label alone (no xmp:Label) is rewritten so Lightroom sees it; a
    project may ask for one naming only."""
    client.post("/api/projects", json={"folder": "names"})
    darktable = tmp_path / "IMG_0002.DNG.xmp"
    darktable.write_bytes(DARKTABLE_SIDECAR)
    upload(client, "names", dng(tmp_path / "IMG_0002.DNG", 600, 400), darktable)
    assert photo_of(client, "names", "IMG_0002")["label"] == "blue"  # darktable's 3
    first = client.post("/api/projects/names/commit-changes").json()
    assert sorted(first["sidecars"]) == ["IMG_0002.DNG.xmp", "IMG_0002.xmp"]
    fields = _sidecar_fields(library, "projects/names/IMG_0002.DNG.xmp", tmp_path)
    assert fields["Xmp.xmp.Label"] == "Blue"

    client.post("/api/projects", json={"folder": "lr"})
    client.patch("/api/projects/lr", json={"options": {"sidecarNames": "basename"}})
    upload(client, "lr", jpeg(tmp_path / "IMG_0003.JPG", 300, 200))
    client.patch("/api/projects/lr/photos/IMG_0003", json={"rating": 3})
    assert client.post("/api/projects/lr/commit-changes").json()["sidecars"] == ["IMG_0003.xmp"]


def test_commit_can_write_sidecars_without_moving_anything(
    client: httpx.Client, library: Library, tmp_path: Path
) -> None:
    client.post("/api/projects", json={"folder": "safe"})
    upload(client, "safe", jpeg(tmp_path / "R.jpg", 300, 200))
    client.patch("/api/projects/safe/photos/R", json={"flag": "reject"})
    done = client.post("/api/projects/safe/commit-changes", json={"trash": False}).json()
    assert (done["trashed"], sorted(done["sidecars"]), done["jobs"]) == (
        [],
        ["R.jpg.xmp", "R.xmp"],
        {},
    )
    assert listing(library, "projects/safe") == ["R.jpg.xmp", "R.xmp"]  # R.jpg still landing
    assert listing(library, "projects/safe/.trash") == []
    assert photo_of(client, "safe", "R")["flag"] == "reject"
    assert [f["filename"] for f in photo_of(client, "safe", "R")["files"]] == ["R.jpg"]
    for bad in ({"trash": "maybe"}, {"trsh": False}):
        assert client.post("/api/projects/safe/commit-changes", json=bad).status_code == 422


def test_by_default_a_commit_never_touches_an_original(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """Without the project's `embedXmp`, decisions on a JPEG and a DNG go to their
    sidecars only: the originals stay byte for byte as the card had them."""
    client.post("/api/projects", json={"folder": "untouched"})
    sources = [jpeg(tmp_path / "A_1.JPG", 500, 400), dng(tmp_path / "B_2.DNG", 600, 400)]
    upload(client, "untouched", *sources)
    run_worker()
    for basename in ("A_1", "B_2"):
        wait_for(lambda b=basename: processed(client, "untouched", b), timeout=60)
    client.patch("/api/projects/untouched/photos/A_1", json={"flag": "pick", "rating": 5})
    client.patch("/api/projects/untouched/photos/B_2", json={"label": "red", "rating": 2})
    done = client.post("/api/projects/untouched/commit-changes", json={"trash": False}).json()
    assert done["embedded"] == []
    assert sorted(done["sidecars"]) == ["A_1.JPG.xmp", "A_1.xmp", "B_2.DNG.xmp", "B_2.xmp"]
    for source in sources:
        assert content(library, f"projects/untouched/{source.name}") == source.read_bytes()


def _exiftool(library: Library, key: str, tmp_path: Path) -> dict[str, object]:
    """What exiftool reads of a stored file's XMP, by group (`XMP-xmp:Rating`…), as the
    tools of docs/culling.md would find it."""
    copy = tmp_path / "exiftool" / key.rsplit("/", 1)[-1]
    copy.parent.mkdir(exist_ok=True)
    copy.write_bytes(content(library, key))
    read = subprocess.run(
        ["exiftool", "-j", "-n", "-G1", "-XMP:all", str(copy)], capture_output=True, text=True
    )
    assert read.returncode == 0, read.stderr
    return json.loads(read.stdout)[0]


def test_exiftool_reads_decisions_where_each_tool_looks_for_them(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """docs/culling.md's table, cell by cell: a JPEG, a DNG and a proprietary RAW (a PEF),
    committed with `embedXmp` on and without trashing. Lightroom Classic and Capture One
    read the JPEG's and the DNG's own XMP and the RAW's IMG.xmp; Photo Mechanic the same
    for JPEG and RAW; darktable and digiKam read IMG.EXT.xmp. Writing into a file keeps
    its image data byte for byte and records its new checksum."""
    client.post("/api/projects", json={"folder": "hand"})
    client.patch("/api/projects/hand", json={"options": {"embedXmp": True}})
    card = tmp_path / "card"
    card.mkdir()
    sources = {
        "JPG_1.JPG": camera_jpeg(card / "JPG_1.JPG", Shot()),
        "DNG_2.DNG": dng(card / "DNG_2.DNG", 600, 400),
        "PEF_3.PEF": tiff_wrapped_raw(card / "PEF_3.PEF", "PENTAX Corporation", 600, 400),
        "JPG_4.JPG": jpeg(card / "JPG_4.JPG", 500, 400),  # nobody decides on it
    }
    upload(client, "hand", *sources.values())
    run_worker()
    for basename in ("JPG_1", "DNG_2", "PEF_3", "JPG_4"):
        wait_for(lambda b=basename: processed(client, "hand", b), timeout=60)
    client.patch("/api/projects/hand/photos/JPG_1", json={"flag": "pick"})
    client.patch("/api/projects/hand/photos/DNG_2", json={"flag": "reject", "label": "red"})
    client.patch("/api/projects/hand/photos/PEF_3", json={"rating": 3, "label": "yellow"})
    done = client.post("/api/projects/hand/commit-changes", json={"trash": False}).json()
    assert sorted(done["embedded"]) == ["DNG_2.DNG", "JPG_1.JPG"]  # a PEF takes no XMP
    assert content(library, "projects/hand/JPG_4.JPG") == sources["JPG_4.JPG"].read_bytes()
    assert done["sidecars_refused"] == {}

    def read(name: str) -> dict[str, object]:
        return _exiftool(library, f"projects/hand/{name}", tmp_path)

    pick, reject, rated = (
        {"rating": 1, "label": None, "tagged": True, "pick": 3, "colour": None, "dt": None},
        {"rating": -1, "label": "Red", "tagged": False, "pick": 1, "colour": 1, "dt": 0},
        {"rating": 3, "label": "Yellow", "tagged": False, "pick": 0, "colour": 3, "dt": 1},
    )
    lightroom_and_capture_one = {"JPG_1.JPG": pick, "DNG_2.DNG": reject, "PEF_3.xmp": rated}
    for name, want in lightroom_and_capture_one.items():
        found = read(name)
        assert (found["XMP-xmp:Rating"], found.get("XMP-xmp:Label")) == (
            want["rating"],
            want["label"],
        ), name
    for name, want in {"JPG_1.JPG": pick, "PEF_3.xmp": rated}.items():  # Photo Mechanic
        found = read(name)
        assert found["XMP-photomech:Tagged"] is want["tagged"], name
        assert (found["XMP-xmp:Rating"], found.get("XMP-xmp:Label")) == (
            want["rating"],
            want["label"],
        ), name
    per_file = {"JPG_1.JPG.xmp": pick, "DNG_2.DNG.xmp": reject, "PEF_3.PEF.xmp": rated}
    for name, want in per_file.items():  # darktable and digiKam
        found = read(name)
        assert found["XMP-xmp:Rating"] == want["rating"], name
        assert found.get("XMP-darktable:Colorlabels") == want["dt"], name
        assert found["XMP-digiKam:PickLabel"] == want["pick"], name
        assert found.get("XMP-digiKam:ColorLabel") == want["colour"], name

    jpeg_before, jpeg_after = (
        sources["JPG_1.JPG"].read_bytes(),
        content(library, "projects/hand/JPG_1.JPG"),
    )
    scan = jpeg_before.index(b"\xff\xda")
    assert jpeg_after[jpeg_after.index(b"\xff\xda") :] == jpeg_before[scan:]  # the image data
    before_pixels = pyvips.Image.new_from_buffer(jpeg_before, "").write_to_memory()
    assert pyvips.Image.new_from_buffer(jpeg_after, "").write_to_memory() == before_pixels
    dng_before, dng_after = (
        sources["DNG_2.DNG"].read_bytes(),
        content(library, "projects/hand/DNG_2.DNG"),
    )
    with rawpy.imread(io.BytesIO(dng_before)) as old, rawpy.imread(io.BytesIO(dng_after)) as new:
        assert (old.raw_image == new.raw_image).all() and old.raw_image.shape == (400, 600)
    # every byte before the old end stays, but the header's pointer to the new directory
    assert dng_after[:4] == dng_before[:4] and dng_after[8 : len(dng_before)] == dng_before[8:]
    for name, before, after in (
        ("JPG_1.JPG", jpeg_before, jpeg_after),
        ("DNG_2.DNG", dng_before, dng_after),
    ):
        row = image_records.get_image_row(library, next(
            f["imageId"] for f in photo_of(client, "hand", name.split(".")[0])["files"]
        ))  # fmt: skip
        assert row.checksum == hashlib.sha256(after).hexdigest()
        assert row.source_checksum == hashlib.sha256(before).hexdigest()
        assert row.size_bytes == len(after)
    again = upload(client, "hand", sources["JPG_1.JPG"]).json()["files"][0]
    assert again["duplicate"] is True  # the card's file is still known

    second = client.post("/api/projects/hand/commit-changes", json={"trash": False}).json()
    assert (second["embedded"], second["sidecars"]) == ([], [])  # nothing differs now

    saved = content(library, "projects/hand/JPG_1.JPG")  # Lightroom saves 4 stars into it
    by_hand(library, "projects/hand/JPG_1.JPG", embed_xmp(saved, "jpeg", embedded_xmp(
        saved, "jpeg").replace(b'xmp:Rating="1"', b'xmp:Rating="4"')))  # fmt: skip
    client.patch("/api/projects/hand/photos/DNG_2", json={"label": "blue"})
    third = client.post("/api/projects/hand/commit-changes", json={"trash": False}).json()
    assert third["embedded"] == ["DNG_2.DNG"] and list(third["sidecars_refused"]) == ["JPG_1.JPG"]
    maintenance.run(library, Maintenance.MANIFEST_CHECK, "hand")  # it notices, and reads it
    reread = photo_of(client, "hand", "JPG_1")
    assert (reread["flag"], reread["rating"]) == ("pick", 4)
    for name in ("JPG_1.JPG", "DNG_2.DNG"):  # a packet as XMP wants it, in the right type
        copy = tmp_path / "exiftool" / name
        copy.write_bytes(content(library, f"projects/hand/{name}"))
        checked = subprocess.run(
            ["exiftool", "-validate", "-warning", "-a", str(copy)], capture_output=True, text=True
        ).stdout
        assert "XMP" not in checked and "0x02bc" not in checked, checked


def test_decisions_edited_elsewhere_are_read_not_overwritten(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """darktable rewrites a sidecar after a commit: manifest_check reads it and the photo
    takes its decisions; Lightroom edits another just before a commit: the commit reads
    it first and writes its decisions everywhere, keeping the rest of it; an edit older
    than the photo's last decision here is overwritten."""
    client.post("/api/projects", json={"folder": "ext"})
    upload(client, "ext", jpeg(tmp_path / "P.jpg", 300, 200), jpeg(tmp_path / "Q.jpg", 320, 200))
    run_worker()
    wait_for(lambda: processed(client, "ext", "P") and processed(client, "ext", "Q"), 60)
    client.patch("/api/projects/ext/photos", json={"basenames": ["P", "Q"], "flag": "reject"})
    assert client.post("/api/projects/ext/commit-changes", json={"trash": False}).status_code == 200

    darktable = write_decisions(None, Decisions("unflagged", 3, "yellow"))
    by_hand(library, "projects/ext/P.jpg.xmp", darktable)
    dry = client.post("/api/projects/ext/maintenance/manifest_check", params={"dryRun": "true"})
    assert ("reread", "P.jpg.xmp") in [(c["action"], c["name"]) for c in dry.json()["changes"]]
    assert photo_of(client, "ext", "P")["flag"] == "reject"  # a dry run reads nothing in
    maintenance.run(library, Maintenance.MANIFEST_CHECK, "ext")
    reread = photo_of(client, "ext", "P")
    assert (reread["flag"], reread["rating"], reread["label"]) == ("unflagged", 3, "yellow")

    lightroom = write_decisions(None, Decisions("pick", 5)).replace(
        b"<rdf:Description",
        b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:format="image/jpeg"',
        1,
    )
    by_hand(library, "projects/ext/Q.xmp", lightroom)
    committed = client.post("/api/projects/ext/commit-changes").json()
    assert committed["trashed"] == []  # Q is a pick now: nothing of it goes to the trash
    taken = photo_of(client, "ext", "Q")
    assert (taken["flag"], taken["rating"]) == ("pick", 5)
    assert "Q.jpg.xmp" in committed["sidecars"]  # the other sidecar says it too now
    assert _sidecar_fields(library, "projects/ext/Q.jpg.xmp", tmp_path)["Xmp.xmp.Rating"] == "5"
    assert b'dc:format="image/jpeg"' in content(library, "projects/ext/Q.xmp")

    by_hand(library, "projects/ext/Q.xmp", write_decisions(None, Decisions("unflagged", 1)))
    time.sleep(0.05)  # the decision below comes after the edit
    client.patch("/api/projects/ext/photos/Q", json={"rating": 2})
    client.post("/api/projects/ext/commit-changes", json={"trash": False})
    assert photo_of(client, "ext", "Q")["rating"] == 2  # enlarger's was the newer
    assert _sidecar_fields(library, "projects/ext/Q.xmp", tmp_path)["Xmp.xmp.Rating"] == "2"


def test_a_decision_made_while_a_sidecar_edit_is_read_is_not_overwritten(
    client: httpx.Client, library: Library, tmp_path: Path
) -> None:
    """manifest_check (a worker) read the photo, then the user decided in the dashboard,
    then it took the sidecar's older edit over that decision: it is kept now."""
    client.post("/api/projects", json={"folder": "race"})
    upload(client, "race", jpeg(tmp_path / "R.jpg", 300, 200))
    client.patch("/api/projects/race/photos/R", json={"rating": 4})
    committed = client.post("/api/projects/race/commit-changes", json={"trash": False})
    assert committed.status_code == 200
    with library.engine.connect() as conn:
        read_by_the_worker = conn.execute(sa.select(photos).where(photos.c.basename == "R")).one()
    by_hand(library, "projects/race/R.xmp", write_decisions(None, Decisions("unflagged", 1)))
    time.sleep(0.05)
    client.patch("/api/projects/race/photos/R", json={"rating": 2})  # meanwhile, by the user
    assert sidecars.edited_elsewhere(library, read_by_the_worker).rating == 2
    assert photo_of(client, "race", "R")["rating"] == 2


def test_a_commit_dry_run_says_what_would_move_and_moves_nothing(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    client.post("/api/projects", json={"folder": "dry"})
    upload(client, "dry", jpeg(tmp_path / "A.jpg", 300, 200), dng(tmp_path / "A.DNG", 300, 200))
    upload(client, "dry", jpeg(tmp_path / "B.jpg", 320, 200))
    run_worker()
    wait_for(lambda: processed(client, "dry", "A") and processed(client, "dry", "B"), 60)
    client.patch("/api/projects/dry/photos/A", json={"keep_raw": False})
    client.patch("/api/projects/dry/photos/B", json={"flag": "reject"})
    before = listing(library, "projects/dry")
    dry = client.post("/api/projects/dry/commit-changes", json={"dryRun": True}).json()
    assert (sorted(dry["trashed"]), sorted(dry["sidecars"]), dry["jobs"], dry["dryRun"]) == (
        ["A.DNG", "B.jpg"],
        ["B.jpg.xmp", "B.xmp"],  # the reject, written where Lightroom and darktable look
        {},
        True,
    )
    assert listing(library, "projects/dry") == before
    done = client.post("/api/projects/dry/commit-changes").json()
    assert sorted(done["trashed"]) == sorted(dry["trashed"]) and done["dryRun"] is False
    assert sorted(done["sidecars"]) == sorted(dry["sidecars"])


def test_sidecars_are_matched_without_case_and_an_unrating_reaches_the_tools(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """`Q.XMP` is the sidecar `Q.xmp` would be on a Mac's disk: it is updated, no second
    one is made. A JPEG rated in the camera and un-rated here gets sidecars saying 0."""
    client.post("/api/projects", json={"folder": "case"})
    upper = tmp_path / "Q.XMP"
    upper.write_bytes(write_decisions(None, Decisions("unflagged", 1)))
    rated = photo(400, 300).copy()
    rated.set_type(pyvips.GValue.blob_type, "xmp-data", write_decisions(None, Decisions(rating=3)))
    rated.jpegsave(str(tmp_path / "R.jpg"))
    upload(client, "case", jpeg(tmp_path / "Q.jpg", 300, 200), upper, tmp_path / "R.jpg")
    run_worker()
    wait_for(lambda: processed(client, "case", "Q") and processed(client, "case", "R"), 60)
    client.patch("/api/projects/case/photos/Q", json={"rating": 2})
    client.patch("/api/projects/case/photos/R", json={"rating": 0})
    written = client.post("/api/projects/case/commit-changes").json()["sidecars"]
    assert sorted(written) == ["Q.XMP", "Q.jpg.xmp", "R.jpg.xmp", "R.xmp"]
    assert _sidecar_fields(library, "projects/case/R.xmp", tmp_path)["Xmp.xmp.Rating"] == "0"
