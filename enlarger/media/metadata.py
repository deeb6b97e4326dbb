"""Camera metadata from a file's EXIF, and the culling decisions of its own XMP (a rating
or label set in the camera or in Lightroom before export), as plain JSON-ready values.
It is stored in the database and never copied into derivatives (which are saved without
metadata)."""

from __future__ import annotations

import contextlib
import io
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import Image as PILImage
from PIL import ImageCms

from enlarger.media.sniff import RAW_FORMATS
from enlarger.media.xmp import read_decisions

_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_XMP_TAG = 700  # where TIFF-shaped files (DNG among them) keep their XMP packet
TAGS = {
    "make": 0x010F,
    "model": 0x0110,
    "datetime": 0x0132,
    "exposure_time": 0x829A,
    "f_number": 0x829D,
    "iso": 0x8827,
    "taken_at": 0x9003,
    "subsec": 0x9291,  # SubSecTimeOriginal: frames of one second told apart
    "offset": 0x9011,
    "focal_length": 0x920A,
    "lens": 0xA434,
    "serial": 0xA431,  # BodySerialNumber
    "dng_serial": 0xC62F,  # DNG's CameraSerialNumber
}


@dataclass(frozen=True)
class Metadata:
    taken_at: str | None = None  # ISO 8601, with its UTC offset when the camera gave one
    camera_make: str | None = None
    camera_model: str | None = None
    camera_serial: str | None = None
    lens: str | None = None
    exposure_time_s: float | None = None
    f_number: float | None = None
    iso: int | None = None
    focal_length_mm: float | None = None
    gps_latitude: float | None = None
    gps_longitude: float | None = None
    gps_altitude_m: float | None = None
    color_profile: str | None = None
    flag: str | None = None  # pick, reject or unflagged: set only when the XMP says so
    rating: int | None = None
    label: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_metadata(path: str | Path, kind: str) -> Metadata:
    """Best effort: a missing, broken or unreadable EXIF block gives empty fields, never an
    error (the image itself was checked by `probe`)."""
    path = Path(path)
    fields: dict[str, Any] = {}
    icc = xmp = None
    try:
        if kind in RAW_FORMATS:
            exif = _raw_exif(path)
            fields, xmp = _fields(exif), exif.get(_XMP_TAG)
        else:
            exif_blob, icc, xmp = _blobs(path, kind)
            if exif_blob:
                exif = PILImage.Exif()
                exif.load(exif_blob[6:] if exif_blob.startswith(b"Exif\x00\x00") else exif_blob)
                fields = _fields(exif)
    except Exception:  # broken EXIF is common and never worth failing an image
        fields = {}
    if kind == "tiff" and not fields:  # Make, Model… in its own directory: no EXIF block
        with contextlib.suppress(Exception):  # BigTIFF: Pillow reads no tags of it
            fields = _fields(_raw_exif(path))
    if icc:
        fields["color_profile"] = _profile_name(icc)
    decisions = read_decisions(xmp) if isinstance(xmp, bytes) else None
    if decisions is not None:
        fields.update(flag=decisions.flag, rating=decisions.rating, label=decisions.label)
    return Metadata(**fields)


def _blobs(path: Path, kind: str) -> tuple[bytes | None, bytes | None, bytes | None]:
    """The file's EXIF, ICC profile and XMP packet, each when it has one."""
    if kind == "heic":
        import pillow_heif

        info = pillow_heif.open_heif(path).info
        return info.get("exif"), info.get("icc_profile"), info.get("xmp")
    import pyvips

    image = pyvips.Image.new_from_file(str(path), access="sequential")
    exif, icc, xmp = (
        image.get(name) if image.get_typeof(name) else None
        for name in ("exif-data", "icc-profile-data", "xmp-data")
    )
    return exif, icc, xmp


def _raw_exif(path: Path) -> PILImage.Exif:
    """The tags of a TIFF or a TIFF-shaped RAW file (DNG, CR2, NEF, ARW), read where they
    lie (a TIFF keeps Make and Model in its first directory, where libvips gives no EXIF
    block; a RAW's 12- or 14-bit sensor data is nothing Pillow could open). Containers
    of other shapes (CR3, RAF, ORF, RW2) and BigTIFF raise, and give no metadata."""
    exif = PILImage.Exif()
    with path.open("rb") as fp:
        exif.load_from_fp(fp)
        exif.get_ifd(_EXIF_IFD)  # read the sub-directories while the file is open
        exif.get_ifd(_GPS_IFD)
    return exif


def _fields(exif: PILImage.Exif) -> dict[str, Any]:
    sub = exif.get_ifd(_EXIF_IFD)
    merged = {**dict(exif), **sub}
    fields: dict[str, Any] = {
        "camera_make": _text(merged.get(TAGS["make"])),
        "camera_model": _text(merged.get(TAGS["model"])),
        "camera_serial": _text(merged.get(TAGS["serial"]) or merged.get(TAGS["dng_serial"])),
        "lens": _text(merged.get(TAGS["lens"])),
        "exposure_time_s": _number(merged.get(TAGS["exposure_time"])),
        "f_number": _number(merged.get(TAGS["f_number"])),
        "iso": _integer(merged.get(TAGS["iso"])),
        "focal_length_mm": _number(merged.get(TAGS["focal_length"])),
        "taken_at": _taken_at(
            merged.get(TAGS["taken_at"]) or merged.get(TAGS["datetime"]),
            merged.get(TAGS["offset"]),
            merged.get(TAGS["subsec"]) if merged.get(TAGS["taken_at"]) else None,
        ),
    }
    fields.update(_gps(exif.get_ifd(_GPS_IFD)))
    return {k: v for k, v in fields.items() if v is not None}


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value or None


def _number(value: Any) -> float | None:
    if isinstance(value, tuple) and len(value) == 2:  # a rational as (numerator, denominator)
        value = Fraction(*value) if value[1] else None
    try:
        return None if value is None else round(float(value), 6)
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def _integer(value: Any) -> int | None:
    if isinstance(value, tuple):
        value = value[0] if value else None
    number = _number(value)
    return None if number is None else int(number)


def _taken_at(stamp: Any, offset: Any, subsec: Any = None) -> str | None:
    """ISO 8601 with the fraction of a second (SubSecTimeOriginal's digits, as decimals)
    and the UTC offset when the camera gives them."""
    text = _text(stamp)
    if not text:
        return None
    try:
        taken = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    digits = (_text(subsec) or "").strip()
    if digits.isdigit():
        taken = taken.replace(microsecond=int(digits[:6].ljust(6, "0")))
    zone = _text(offset)
    if zone and len(zone) == 6 and zone[0] in "+-":
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        sign = 1 if zone[0] == "+" else -1
        taken = taken.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))
    return taken.isoformat()


def _gps(gps: dict[int, Any]) -> dict[str, float]:
    """Degrees/minutes/seconds with N/S/E/W references to signed decimal degrees."""
    found: dict[str, float] = {}
    for name, value_tag, ref_tag, negative in (
        ("gps_latitude", 2, 1, "S"),
        ("gps_longitude", 4, 3, "W"),
    ):
        parts = gps.get(value_tag)
        if not parts or len(parts) != 3:
            continue
        numbers = [_number(p) for p in parts]
        if any(n is None for n in numbers):
            continue
        degrees = numbers[0] + numbers[1] / 60 + numbers[2] / 3600  # type: ignore[operator]
        if _text(gps.get(ref_tag)) == negative:
            degrees = -degrees
        found[name] = round(degrees, 7)
    altitude = _number(gps.get(6))
    if altitude is not None:
        below_sea = gps.get(5) in (1, b"\x01")
        found["gps_altitude_m"] = -altitude if below_sea else altitude
    return found


def _profile_name(icc: bytes) -> str | None:
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return _text(ImageCms.getProfileDescription(profile))
    except Exception:  # an unreadable profile is only a missing label
        return None
