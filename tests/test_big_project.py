"""A wedding's worth of photos (seeded straight into the database and the store, as
`bench.big_project` does for the culling bench): the photo list in pages and by name,
thumbnail URLs a browser can cache, and bursts kept on the photos until the project
changes, on both backends."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from bench.big_project import seed
from enlarger.db.schema import projects
from enlarger.library.library import Library

COUNT = 1200


def _signature(library: Library) -> str | None:
    with library.engine.connect() as conn:
        query = sa.select(projects.c.bursts_signature).where(projects.c.folder == "big")
        return conn.execute(query).scalar()


def test_the_photo_list_comes_in_pages_and_by_name_with_cacheable_urls(
    client: httpx.Client, library: Library
) -> None:
    names = seed(library, "big", COUNT)
    pages, after = [], None
    while True:
        params: dict[str, str | int] = {"limit": 500} | ({"after": after} if after else {})
        body = client.get("/api/projects/big/photos", params=params).json()
        assert body["total"] == COUNT
        pages.append([p["basename"] for p in body["photos"]])
        after = body["nextAfter"]
        if after is None:
            break
    assert [len(page) for page in pages] == [500, 500, 200]
    assert [name for page in pages for name in page] == sorted(names)
    assert (
        pages[0][-1]
        == client.get("/api/projects/big/photos", params={"limit": 500}).json()["nextAfter"]
    )

    picked = client.get(
        "/api/projects/big/photos", params=[("basename", names[7]), ("basename", names[3])]
    ).json()["photos"]
    assert [p["basename"] for p in picked] == sorted([names[3], names[7]])
    assert picked[0]["takenAt"] < picked[1]["takenAt"]

    again = client.get("/api/projects/big/photos", params=[("basename", names[3])]).json()
    assert again["photos"][0]["thumbnailUrl"] == picked[0]["thumbnailUrl"]  # one URL a while
    thumbnail = client.get(picked[0]["thumbnailUrl"])
    assert thumbnail.status_code == 200
    assert thumbnail.headers["cache-control"].startswith("private, max-age=")
    assert int(thumbnail.headers["cache-control"].rsplit("=", 1)[1]) > 600
    refused = client.get("/api/projects/big/photos", params={"limit": 0})
    assert refused.status_code == 422


@pytest.mark.heavy
def test_bursts_are_kept_until_the_project_changes(client: httpx.Client, library: Library) -> None:
    seed(library, "big", 300)
    assert _signature(library) is None
    photos = client.get("/api/projects/big/photos").json()["photos"]
    found = _signature(library)
    assert found is not None
    bursts: dict[str, list[dict[str, object]]] = {}
    for photo in photos:
        if photo["assist"]["burst"]:
            bursts.setdefault(photo["assist"]["burst"], []).append(photo)
    assert len(bursts) >= 20
    assert all(sum(p["assist"]["bestInBurst"] for p in b) == 1 for b in bursts.values())
    assert all(len(b) == b[0]["assist"]["burstSize"] for b in bursts.values())

    first, frames = next((name, b) for name, b in bursts.items() if len(b) >= 3)
    client.patch(f"/api/projects/big/photos/{frames[1]['basename']}", json={"flag": "reject"})
    client.get("/api/projects/big/photos", params={"limit": 10})
    assert _signature(library) == found  # a decision is no change of what bursts are made of

    client.post("/api/projects/big/commit-changes")  # the rejected frame goes to the trash
    shown = {p["basename"]: p for p in client.get("/api/projects/big/photos").json()["photos"]}
    assert _signature(library) != found
    rest = [shown[f["basename"]]["assist"] for f in frames if f is not frames[1]]
    assert [a["burstSize"] for a in rest] == [len(frames) - 1] * len(rest)
    assert shown[frames[1]["basename"]]["assist"] is None  # no file left to assess
    assert first == rest[0]["burst"]
