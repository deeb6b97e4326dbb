"""Culling assistance on the labelled set (`tests/culling_set.py`) through the API and a
worker: bursts, their best frames, blurry photos and exposure. The measures are pure image
work (media/assess.py), so one backend and local storage suffice; the other culling tests
run on every combination."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from enlarger.queue import Worker
from tests import culling_set
from tests.conftest import wait_for
from tests.photos import upload


@pytest.fixture
def backend() -> str:
    """SQLite only: the measures do not depend on the database."""
    return "sqlite"


@pytest.mark.heavy
def test_assistance_finds_bursts_their_best_frames_and_blurry_photos(
    client: httpx.Client, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """On the labelled set (`tests/culling_set.py`): burst grouping F1 and blur precision
    of at least 0.9, and each burst's crisp frame suggested."""
    labels = culling_set.make(tmp_path)
    evening = datetime(2026, 7, 14, 20, 0, 0)
    for n, (name, factor) in enumerate((("E_dark", 0.35), ("E_good", 1.0), ("E_bright", 2.5))):
        exposed = culling_set.exposed(culling_set.frame(culling_set.scene(300 + n)), factor)
        culling_set.save(exposed, tmp_path / f"{name}.jpg", evening + timedelta(minutes=n))
    client.post("/api/projects", json={"folder": "day"})
    answer = upload(client, "day", *sorted(tmp_path.glob("*.jpg")))
    assert answer.status_code == 201, answer.text
    run_worker()
    every = wait_for(
        lambda: (
            (shown := client.get("/api/projects/day/photos").json()["photos"])
            and all(p["assist"] is not None for p in shown)
            and shown
        ),
        timeout=120,
    )
    assists = {p["basename"]: p["assist"] for p in every}
    found: dict[str, set[str]] = {}
    for basename, assist in assists.items():
        if assist["burst"] is not None:
            found.setdefault(assist["burst"], set()).add(basename)
    assert all(len(group) == assists[first]["burstSize"] for first, group in found.items())
    assert culling_set.pair_f1(labels.bursts, list(found.values())) >= 0.9
    suggested = {b for b, a in assists.items() if a["bestInBurst"]}
    assert suggested == set(labels.best.values())
    assert all(assists[b]["reasons"] for b in suggested)

    exposure = {b: (a["dark"], a["bright"]) for b, a in assists.items() if b.startswith("E_")}
    assert exposure == {
        "E_dark": (True, False),
        "E_good": (False, False),
        "E_bright": (False, True),
    }
    assert assists["E_dark"]["stopsUnder"] == pytest.approx(1.4, abs=0.2)
    flagged = {b for b, a in assists.items() if a["blurry"]}
    assert len(flagged & labels.blurry) / max(len(flagged), 1) >= 0.9  # precision
    assert len(flagged & labels.blurry) / len(labels.blurry) >= 0.9  # and it finds them
    assert all(0 <= a["highlightsClipped"] <= 1 for a in assists.values())
