"""Culling assistance as the photo list shows it: each photo's assessment (measured on
its preview by `media.assess`) read against the settings, and the project's bursts with
their suggested frames (found by `bursts_of`, kept on the photos by `library.listing`).
Pure over rows and settings: no queries here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from enlarger.config import Settings
from enlarger.media.assess import Frame, best_frame, bursts, is_blurry, is_bright, is_dark


@dataclass(frozen=True)
class BurstPlace:
    """Where a photo stands in its burst: the burst is named by its first frame."""

    burst: str
    size: int
    best: bool
    reasons: list[str]


Measured = tuple[str | None, dict[str, Any] | None, str]  # capture time, assessment, camera


def bursts_of(settings: Settings, shown_by: dict[str, Measured]) -> dict[str, BurstPlace]:
    """Bursts among photos (base name → the capture time, assessment and camera of the
    file each is shown by), with each burst's suggested frame."""
    assessed = {name: found for name, (_, found, _) in shown_by.items() if found}
    frames = [
        Frame(name, _capture_time(shown_by[name][0]), found["phash"], shown_by[name][2])
        for name, found in assessed.items()
    ]
    places: dict[str, BurstPlace] = {}
    for burst in bursts(frames, settings.burst_gap_seconds):
        best, reasons = best_frame({name: assessed[name] for name in burst})
        for member in burst:
            is_best = member == best
            places[member] = BurstPlace(burst[0], len(burst), is_best, reasons if is_best else [])
    return places


def _capture_time(taken_at: str | None) -> datetime | None:
    """The camera's local time (offsets dropped: a burst is one camera's)."""
    try:
        return datetime.fromisoformat(taken_at).replace(tzinfo=None) if taken_at else None
    except ValueError:
        return None


def assist(
    settings: Settings, found: dict[str, Any] | None, photo: sa.Row[Any]
) -> dict[str, Any] | None:
    """What the assessment of the file a photo is shown by says, and the burst the photo
    is in (as last found), for culling; None until its preview is made."""
    if not found:
        return None
    measured = found.get("headroom") is not None  # not in an assessment from before it was
    return {
        "sharpness": found["sharpness"],
        "blurry": is_blurry(found, settings.blur_threshold),
        "highlightsClipped": found["highlights"],
        "shadowsClipped": found["shadows"],
        "stopsUnder": abs(found["headroom"]) if measured else None,  # headroom is ≤ 0
        "dark": is_dark(found) if measured else None,
        "bright": is_bright(found) if measured else None,
        "burst": photo.burst,
        "burstSize": photo.burst_size,
        "bestInBurst": photo.best_in_burst if photo.burst else None,
        "reasons": photo.burst_reasons or [],
    }
