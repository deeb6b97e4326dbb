"""A folder of files as cameras, phones, scanners and archives write them, each with
the outcome enlarger must reach: the files of issue 17's and issue 24's real-world runs,
made here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pillow_heif
from PIL import Image as PILImage

from tests.images import (
    TIFF_VARIANTS,
    dng,
    hdr_avif,
    hdr_heic,
    heif_declaring,
    jpeg,
    jpeg_with_exif,
    layered_avif,
    old_style_jpeg_tiff,
    phase_one_raw,
    photo,
    png_with_late_exif,
    stripped_dng,
    tiff_declaring,
    tiff_variant,
    tiff_wrapped_raw,
    unci_heif,
)


@dataclass(frozen=True)
class Expected:
    status: str  # STORED or FAILED
    preview: tuple[int, int] | None = None  # the preview's width and height when STORED
    error_code: str | None = None


def build(folder: Path) -> dict[str, Expected]:
    """Write the corpus into `folder`; the outcome expected of each file, by name."""
    folder.mkdir(parents=True, exist_ok=True)
    stored_600 = Expected("STORED", (600, 400))
    expected: dict[str, Expected] = {}

    jpeg_with_exif(folder / "phone-portrait.jpg", orientation=6)
    expected["phone-portrait.jpg"] = Expected("STORED", (400, 600))
    png_with_late_exif(folder / "screenshot.png", orientation=6)
    expected["screenshot.png"] = Expected("STORED", (200, 300))
    photo(600, 400).tiffsave(str(folder / "archive-bigtiff.tif"), bigtiff=True)
    expected["archive-bigtiff.tif"] = stored_600
    for variant in TIFF_VARIANTS:
        tiff_variant(folder / f"scan-{variant}.tif", variant)
        expected[f"scan-{variant}.tif"] = stored_600

    old_style_jpeg_tiff(folder / "scan-old-jpeg.tif", tiled=False)
    expected["scan-old-jpeg.tif"] = Expected("STORED", (256, 256))
    old_style_jpeg_tiff(folder / "scan-old-jpeg-tiled.tif", tiled=True)
    expected["scan-old-jpeg-tiled.tif"] = Expected("FAILED", error_code="CORRUPT_IMAGE")

    for name, make in (
        ("IMGP0001.PEF", "PENTAX Corporation"),
        ("SAM_0001.SRW", "SAMSUNG"),
        ("B0000001.3FR", "Hasselblad"),
        ("DCS_0001.DCR", "KODAK"),
    ):
        tiff_wrapped_raw(folder / name, make, 600, 400)
        expected[name] = stored_600
    phase_one_raw(folder / "CF000001.IIQ", 600, 400)
    expected["CF000001.IIQ"] = stored_600
    dng(folder / "IMG_0001.DNG", 600, 400)
    expected["IMG_0001.DNG"] = stored_600
    dng(folder / "metadata-only.DNG", 600, 400, blank=True)
    expected["metadata-only.DNG"] = Expected("FAILED", error_code="CORRUPT_IMAGE")

    picture = PILImage.frombytes("RGB", (600, 400), photo(600, 400).write_to_memory())
    pillow_heif.from_pillow(picture).save(folder / "iphone.heic", quality=70)
    expected["iphone.heic"] = stored_600
    for transfer, name in ((16, "hdr-pq.heic"), (18, "hdr-hlg.heic")):
        hdr_heic(folder / name, transfer)
        expected[name] = Expected("STORED", (300, 200))
    hdr_avif(folder / "hdr-pq.avif", 16)
    expected["hdr-pq.avif"] = Expected("STORED", (300, 200))
    heic = (folder / "iphone.heic").read_bytes()
    (folder / "camera-avc.heif").write_bytes(heic.replace(b"hvc1", b"avc1", 1))
    expected["camera-avc.heif"] = Expected("FAILED", error_code="UNSUPPORTED_FORMAT")
    frames = [PILImage.new("RGB", (600, 400), (red, 40, 40)) for red in (220, 30)]
    frames[0].save(folder / "burst.avif", save_all=True, append_images=frames[1:], duration=100)
    expected["burst.avif"] = stored_600
    grey = PILImage.frombytes("RGB", (600, 400), photo(600, 400).write_to_memory()).convert("L")
    grey.save(folder / "mono-limited.avif", subsampling="4:0:0", range="limited")
    expected["mono-limited.avif"] = stored_600
    layered_avif(folder / "progressive.avif", qualities=(0, 90), width=600, height=400)
    expected["progressive.avif"] = stored_600
    layered_avif(folder / "progressive-op1.avif", (0, 90), 600, 400, operating_point=1)
    expected["progressive-op1.avif"] = stored_600
    unci = unci_heif(folder / "microscope-unci.heif")
    expected["microscope-unci.heif"] = (
        Expected("STORED", (64, 48))
        if len(pillow_heif.open_heif(unci))  # a libheif built with the codec
        else Expected("FAILED", error_code="UNSUPPORTED_FORMAT")
    )
    grey.save(folder / "huge.avif", subsampling="4:0:0")
    heif_declaring(folder / "huge.avif", 17_000, 17_000)
    expected["huge.avif"] = Expected("FAILED", error_code="TOO_MANY_PIXELS")
    stripped_dng(folder / "stripped-sample.dng", 3000, 2000)
    expected["stripped-sample.dng"] = Expected("FAILED", error_code="CORRUPT_IMAGE")
    png_with_late_exif(folder / "screenshot-large.png", orientation=6, width=1400, height=933)
    expected["screenshot-large.png"] = Expected("STORED", (933, 1400))
    fuzzed = {"ImageWidth": 10_000, "ImageLength": 10_000, "SamplesPerPixel": 4000}
    tiff_declaring(folder / "fuzzed.tif", **fuzzed)
    expected["fuzzed.tif"] = Expected("FAILED", error_code="TOO_MANY_PIXELS")

    whole = jpeg(folder / "whole.jpg", 600, 400).read_bytes()
    (folder / "whole.jpg").unlink()
    (folder / "cut-off.jpg").write_bytes(whole[: len(whole) // 3])
    expected["cut-off.jpg"] = Expected("FAILED", error_code="CORRUPT_IMAGE")
    png = photo(600, 400).pngsave_buffer()
    (folder / "broken.png").write_bytes(png[:100] + bytes(byte ^ 0x5A for byte in png[100:]))
    expected["broken.png"] = Expected("FAILED", error_code="CORRUPT_IMAGE")
    (folder / "notes.txt").write_text("not an image")
    expected["notes.txt"] = Expected("FAILED", error_code="UNSUPPORTED_FORMAT")
    (folder / "empty.jpg").write_bytes(b"")
    expected["empty.jpg"] = Expected("FAILED", error_code="EMPTY_FILE")
    return expected
