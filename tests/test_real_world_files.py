"""Files of issue 24's real-world run that `enlarger.media` decoded wrong, each made here:
decoded right, or refused with the right code and a message fit for a person."""

from __future__ import annotations

import math
import os
import resource
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
import pyvips
import tifffile
from PIL import Image as PILImage

from enlarger.media import Limits, MediaError, MediaErrorCode, Recipe, probe, render
from enlarger.media.metadata import read_metadata
from tests.images import (
    heif_declaring,
    layered_avif,
    photo,
    png_with_late_exif,
    stripped_dng,
    unci_heif,
)


def _preview(path: Path, long_side: int = 2000) -> pyvips.Image:
    """The preview `render` makes of the file, decoded (lossless WebP: no JPEG noise)."""
    recipe = Recipe("preview", long_side, format="webp", quality=100)
    rendered = render(path, probe(path, Limits()), [recipe]).renditions[0]
    return pyvips.Image.new_from_buffer(rendered.data, "")


EXIFTOOL_SAMPLES = Path(__file__).parent / "data" / "exiftool"


def _refused(path: str | Path, code: MediaErrorCode) -> str:
    """The message of the error that refuses the file, at probe or at decode."""
    with pytest.raises(MediaError) as caught:
        render(path, probe(path, Limits()), [Recipe("preview", 2000)])
    assert caught.value.code is code, caught.value.message
    return caught.value.message


def _grey(image: pyvips.Image) -> np.ndarray:
    """The image's grey levels, to compare with the samples it was made from."""
    return np.asarray(image.colourspace("b-w").extract_band(0).numpy(), np.float64)


def test_an_uncompressed_heif_decodes_or_names_its_codec(tmp_path: Path) -> None:
    """libheif hides an `unci` item when built without its uncompressed codec (the builds
    in pillow-heif 1.9 and pyvips-binary 8.18 are); pillow-heif then lists no image, and
    asking for its size was an IndexError shown as "list index out of range"."""
    path = unci_heif(tmp_path / "microscope.heif")
    if len(pillow_heif.open_heif(path)):  # a libheif built with the codec decodes it
        assert (_preview(path) - photo(64, 48)).abs().avg() < 2
        return
    message = _refused(path, MediaErrorCode.UNSUPPORTED_FORMAT)
    assert "uncompressed (ISO/IEC 23001-17)" in message
    assert "index" not in message


@pytest.mark.parametrize(
    "scanner",
    [None, ("EPSON", "Perfection V600"), ("Nikon", "Nikon SUPER COOLSCAN 5000 ED")],
    ids=["no-make", "epson-scanner", "nikon-film-scanner"],
)
@pytest.mark.parametrize("bits", [16, 12])
def test_a_near_black_grey_tiff_is_a_tiff_not_a_raw(
    tmp_path: Path, bits: int, scanner: tuple[str, str] | None
) -> None:
    """LibRaw opens 16- and 12-bit grey TIFFs (and 16-bit CMYK: see `TIFF_VARIANTS`),
    which was taken for proof of a RAW: its rendering made a near-black scan near white.
    With no camera data in it, it is a TIFF, even when a scanner wrote its name in Make
    (a Nikon film scanner's NIKON made it a NEF by its Make alone)."""
    dark = photo(600, 400).colourspace("grey16").linear(1 / 16, 0).cast("ushort")
    grey = np.ndarray((400, 600), np.uint16, dark.write_to_memory())
    path = tmp_path / "scan.tif"
    make = [(271, "s", 0, scanner[0], True), (272, "s", 0, scanner[1], True)] if scanner else []
    tifffile.imwrite(
        path,
        grey >> (16 - bits),
        bitspersample=bits,
        photometric="minisblack",
        extratags=make,
    )
    assert probe(path, Limits()).format == "tiff"
    assert abs(_grey(_preview(path)).mean() - grey.mean() / 257) < 1
    found = read_metadata(path, "tiff")  # a TIFF's Make is in its own directory, not EXIF
    assert (found.camera_make, found.camera_model) == (scanner or (None, None))


def test_a_stripped_raw_sample_is_corrupt_not_a_preview_of_noise(tmp_path: Path) -> None:
    """A 12 KB DNG declaring a 3000 x 2000 sensor: LibRaw decodes its zeros to noise."""
    path = stripped_dng(tmp_path / "sample.dng", 3000, 2000)
    assert path.stat().st_size == 12_000
    message = _refused(path, MediaErrorCode.CORRUPT_IMAGE)
    assert "image data is missing" in message


@pytest.mark.parametrize(
    ("name", "kind"), [("Panasonic.rw2", "rw2"), ("Nikon.nef", "nef")], ids=["rw2", "nef"]
)
def test_real_cameras_files_stripped_of_their_sensor_data_are_corrupt(name: str, kind: str) -> None:
    """ExifTool's samples (tests/data/exiftool): a Panasonic RW2 came out as blue noise.
    The NEF is a TIFF with no mosaic in sight but the camera's maker note: a RAW."""
    message = _refused(EXIFTOOL_SAMPLES / name, MediaErrorCode.CORRUPT_IMAGE)
    assert message.startswith(f"the {kind} file is ") and "image data is missing" in message


def test_a_large_png_turned_by_a_late_exif_is_stored_upright(tmp_path: Path) -> None:
    """1.3 MP: turning the shrunk decode (read in order) failed as "out of order read"."""
    path = png_with_late_exif(tmp_path / "phone.png", orientation=6, width=1400, height=933)
    found = probe(path, Limits())
    assert (found.width, found.height) == (933, 1400)
    rendered = render(path, found, [Recipe("preview", 2000), Recipe("thumb", 256)])
    assert [(r.width, r.height) for r in rendered.renditions] == [(933, 1400), (171, 256)]
    upright = pyvips.Image.new_from_buffer(rendered.renditions[0].data, "")
    top, bottom = upright.crop(0, 0, 933, 400), upright.crop(0, 1000, 933, 400)
    assert top.extract_band(0).avg() > 180 and bottom.extract_band(0).avg() < 80  # red on top


def test_a_layered_avif_shows_the_layers_its_a1op_selects(tmp_path: Path) -> None:
    """Operating point 0 of a two-layer stream is both layers, 1 its coarse first layer
    alone (as libavif shows it); libheif ignores `a1op` and showed both for either."""
    both = _preview(layered_avif(tmp_path / "both.avif", (0, 90), operating_point=0))
    first = _preview(layered_avif(tmp_path / "first.avif", (0, 90), operating_point=1))
    assert (both - photo(300, 200)).abs().avg() < 2
    assert (first - photo(300, 200)).abs().avg() > 2 * (both - photo(300, 200)).abs().avg()


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
@pytest.mark.parametrize("kind", ["png", "tiff"])
def test_a_broken_files_message_names_no_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, damage: str
) -> None:
    """Decoders name the file they read, in their own form of its path (relative, made
    whole, quoted, as bytes): the message shows none of it."""
    whole = photo(600, 400).write_to_buffer(f".{kind}")
    garbled = whole[:100] + bytes(byte ^ 0x5A for byte in whole[100:])
    data = whole[: len(whole) // 3] if damage == "truncated" else garbled
    folder = tmp_path / "upload-tmp-7c1f"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    for path in (folder / f"broken.{kind}", f"./upload-tmp-7c1f/broken.{kind}"):
        Path(path).write_bytes(data)
        message = _refused(path, MediaErrorCode.CORRUPT_IMAGE)
        for shown in ("upload-tmp-7c1f", "broken.", str(tmp_path)):
            assert shown not in message


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_float_tiff_is_scaled_from_its_range(tmp_path: Path, dtype: type) -> None:
    """A phase image, -pi to pi: clipped at 0 and 1 it was a flat preview."""
    expected = photo(300, 200).colourspace("b-w")
    phase = np.asarray(expected.numpy(), np.float64) / 255 * 2 * math.pi - math.pi
    path = tmp_path / "phase.tif"
    tifffile.imwrite(path, phase.astype(dtype), photometric="minisblack")
    scaled = (phase - phase.min()) / (phase.max() - phase.min()) * 255  # its own range
    assert np.abs(_grey(_preview(path)) - scaled).mean() < 1.5


@pytest.mark.parametrize("children", [1, 2])
def test_a_tiff_with_smaller_children_is_previewed_from_its_main_image(
    tmp_path: Path, children: int
) -> None:
    """A red 32 x 32 image with child directories (SubIFDs) of 16 x 16 and 8 x 8 of other
    content: libvips' `thumbnail` reads halving children as a pyramid of the main image,
    and made even the 32 px preview from the 16 px one."""
    path = tmp_path / "with-children.tif"
    with tifffile.TiffWriter(path) as tiff:
        tiff.write(np.full((32, 32, 3), (220, 30, 30), np.uint8), subifds=children)
        for side, colour in ((16, (30, 30, 220)), (8, (30, 220, 30)))[:children]:
            tiff.write(np.full((side, side, 3), colour, np.uint8))
    assert (probe(path, Limits()).width, probe(path, Limits()).height) == (32, 32)
    for long_side in (32, 16, 8, 4):
        preview = _preview(path, long_side)
        assert (preview.width, preview.height) == (long_side, long_side)
        assert preview.getpoint(0, 0) == pytest.approx([220, 30, 30], abs=3)


def _made(tmp_path: Path, kind: str) -> Path:
    """A 64 x 48 `photo` as a HEIC, an AVIF, or a monochrome AVIF."""
    path = tmp_path / f"{kind.replace(' ', '-')}.{kind.split()[-1]}"
    picture = PILImage.frombytes("RGB", (64, 48), photo(64, 48).write_to_memory())
    if kind == "heic":
        pillow_heif.from_pillow(picture).save(path, quality=60)
    else:
        monochrome = kind.startswith("monochrome")
        picture.convert("L" if monochrome else "RGB").save(
            path, "AVIF", subsampling="4:0:0" if monochrome else "4:2:0"
        )
    return path


@pytest.mark.parametrize("kind", ["monochrome avif", "avif", "heic"])
def test_a_heif_over_the_pixel_limit_is_refused_from_its_ispe(tmp_path: Path, kind: str) -> None:
    """17000 x 17000: decoders refuse it (libavif past 16384 x 16384), which made a
    monochrome AVIF, read by Pillow, CORRUPT_IMAGE."""
    path = heif_declaring(_made(tmp_path, kind), 17_000, 17_000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(MediaError) as caught:
        probe(path, Limits())
    assert caught.value.code is MediaErrorCode.TOO_MANY_PIXELS
    assert "17000 x 17000" in caught.value.message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024


def test_no_message_holds_pythons_words(tmp_path: Path) -> None:
    """Errors of Python's own inside a library (an index out of range, numpy's failed
    allocation) are no reason a person can use: the message says only what failed."""
    from enlarger.media.decode import corrupt_error

    path = tmp_path / "a.upload"
    for exc in (IndexError("list index out of range"), MemoryError("Unable to allocate 3.5 TiB")):
        assert corrupt_error("tiff", exc, path).message == "the tiff file cannot be decoded"
    libraw = corrupt_error("dng", OSError(b"Input/output error"), path).message
    assert libraw == "the dng file cannot be decoded: Input/output error"
    elsewhere = os.path.abspath(path)
    named = corrupt_error("png", OSError(f"cannot read b'{elsewhere}'"), "a.upload").message
    assert "a.upload" not in named and str(tmp_path) not in named
