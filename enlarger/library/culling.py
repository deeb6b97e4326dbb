"""Culling assistance as the photo list shows it: each photo's assessment (measured on
its preview by `media.assess`) read against the settings, and the project's bursts with
their suggested frames. Pure over rows and settings: no queries here."""

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


def bursts_of(settings: Settings, shown_by: dict[str, sa.Row[Any] | None]) -> dict[str, BurstPlace]:
    """Bursts among photos (base name → the file each is shown by, with its capture time
    and assessment), with each burst's suggested frame."""
    assessed = {name: row for name, row in shown_by.items() if row is not None and row.assessment}
    frames = [
        Frame(name, _capture_time(row.taken_at), row.assessment["phash"])
        for name, row in assessed.items()
    ]
    places: dict[str, BurstPlace] = {}
    for burst in bursts(frames, settings.burst_gap_seconds):
        best, reasons = best_frame({name: assessed[name].assessment for name in burst})
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
    settings: Settings, shown_by: sa.Row[Any] | None, place: BurstPlace | None
) -> dict[str, Any] | None:
    """What the assessment of the file a photo is shown by says, for culling; None until
    its preview is made."""
    if shown_by is None or not shown_by.assessment:
        return None
    found = shown_by.assessment
    measured = "headroom" in found  # an assessment from before exposure was measured has none
    return {
        "sharpness": found["sharpness"],
        "blurry": is_blurry(found, settings.blur_threshold),
        "highlightsClipped": found["highlights"],
        "shadowsClipped": found["shadows"],
        "stopsUnder": -found["headroom"] if measured else None,
        "dark": is_dark(found) if measured else None,
        "bright": is_bright(found) if measured else None,
        "burst": place.burst if place else None,
        "burstSize": place.size if place else None,
        "bestInBurst": place.best if place else None,
        "reasons": place.reasons if place else [],
    }
