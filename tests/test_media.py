"""`enlarger.media` on real files: sniffing, limits, decoding every supported kind to
upright 8-bit sRGB, derivatives without metadata, and camera metadata."""

from __future__ import annotations

import resource
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
import pyvips
from PIL import Image as PILImage

from enlarger.config import Settings
from enlarger.media import (
    Limits,
    MediaError,
    MediaErrorCode,
    Recipe,
    probe,
    read_metadata,
    render,
    sniff,
)
from enlarger.media.assess import Frame, assess, bursts, is_bright, is_dark
from enlarger.media.embed import EmbedError, embed_xmp, embedded_xmp
from enlarger.media.sniff import HEAD_BYTES, TAIL_BYTES, reaches_its_end
from enlarger.media.xmp import Decisions, needs_writing, read_decisions, write_decisions
from tests import culling_set
from tests.images import (
    TIFF_VARIANTS,
    dng,
    hdr_avif,
    hdr_heic,
    jpeg,
    jpeg_with_exif,
    layered_avif,
    old_style_jpeg_tiff,
    phase_one_raw,
    photo,
    png_declaring,
    png_with_late_exif,
    tiff_variant,
    tiff_wrapped_raw,
)

THUMBS = [Recipe(f"thumb_{n}", n) for n in (64, 128, 256, 512)]


def _error(path: Path, limits: Limits = Limits()) -> MediaErrorCode:
    with pytest.raises(MediaError) as caught:
        probe(path, limits)
    assert caught.value.message
    return caught.value.code


def _decoded(data: bytes) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(data, "")


def test_sniff_reads_content_not_names(tmp_path: Path) -> None:
    photo(64, 64).pngsave(str(tmp_path / "a.jpg"))  # a PNG under a JPEG name
    assert probe(tmp_path / "a.jpg", Limits()).format == "png"
    assert sniff(b"<svg xmlns='http://www.w3.org/2000/svg'>") is None
    assert sniff(b"%PDF-1.7") is None
    assert sniff(b"GIF89a....") == "gif"


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", MediaErrorCode.EMPTY_FILE),
        (
            b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
            MediaErrorCode.UNSUPPORTED_FORMAT,
        ),
        (b"just some text", MediaErrorCode.UNSUPPORTED_FORMAT),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 40, MediaErrorCode.CORRUPT_IMAGE),
    ],
)
def test_bad_files_get_their_code(tmp_path: Path, content: bytes, code: MediaErrorCode) -> None:
    path = tmp_path / "upload"
    path.write_bytes(content)
    assert _error(path) is code


def test_size_limit(tmp_path: Path) -> None:
    path = jpeg(tmp_path / "a.jpg", 200, 200)
    assert _error(path, Limits(max_bytes=100)) is MediaErrorCode.TOO_LARGE


def test_pixel_bomb_fails_from_its_header_without_allocating(tmp_path: Path) -> None:
    bomb = png_declaring(tmp_path / "bomb.png", 40_000, 40_000)  # 1.6 gigapixels
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert _error(bomb) is MediaErrorCode.TOO_MANY_PIXELS
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 100 * 1024  # 1.6 GP of RGB would be 4.8 GB


def test_derivatives_from_one_decode(tmp_path: Path) -> None:
    path = jpeg(tmp_path / "big.jpg", 3000, 2000)
    rendered = render(
        path, probe(path, Limits()), [*THUMBS, Recipe("preview", 2000)], with_thumbhash=True
    )
    for rendition in rendered.renditions:  # long side exact, aspect kept to a pixel
        assert rendition.width == rendition.recipe.long_side
        assert abs(rendition.height - rendition.width * 2 / 3) <= 1
    for rendition in rendered.renditions:
        image = _decoded(rendition.data)
        assert (image.width, image.height) == (rendition.width, rendition.height)
        assert image.get_typeof("exif-data") == 0  # no metadata copied
    assert len(rendered.thumbhash) > 10


def test_small_images_are_never_enlarged(tmp_path: Path) -> None:
    path = jpeg(tmp_path / "small.jpg", 300, 200)
    rendered = render(path, probe(path, Limits()), [Recipe("preview", 2000)])
    assert (rendered.renditions[0].width, rendered.renditions[0].height) == (300, 200)


def test_exif_orientation_is_applied_and_metadata_read(tmp_path: Path) -> None:
    path = jpeg_with_exif(tmp_path / "turned.jpg", orientation=6)  # stored 600x400, shown 400x600
    found = probe(path, Limits())
    assert (found.width, found.height, found.orientation) == (400, 600, 6)
    preview = render(path, found, [Recipe("preview", 300)]).renditions[0]
    assert (preview.width, preview.height) == (200, 300)
    assert _decoded(preview.data).get_typeof("exif-data") == 0
    meta = read_metadata(path, found.format)
    assert meta.camera_make == "Canon"
    assert meta.camera_model == "Canon EOS R5"
    assert meta.taken_at == "2026-07-14T18:30:05+02:00"
    assert meta.iso == 400
    assert meta.exposure_time_s == pytest.approx(1 / 250)
    assert meta.f_number == pytest.approx(2.8)
    assert meta.focal_length_mm == pytest.approx(35)
    assert meta.lens == "RF24-70mm F2.8 L IS USM"
    assert meta.gps_latitude == pytest.approx(48.8583, abs=1e-4)
    assert meta.gps_longitude == pytest.approx(-2.2945, abs=1e-4)


def test_cmyk_becomes_srgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    PILImage.new("CMYK", (200, 100), (255, 0, 0, 0)).save(path, "JPEG")  # pure cyan ink
    out = _decoded(render(path, probe(path, Limits()), [Recipe("preview", 100)]).renditions[0].data)
    assert out.bands == 3 and out.interpretation == "srgb"
    red, green, blue = (out.extract_band(n).avg() for n in range(3))
    assert red < green and red < blue  # cyan: little red, by dominance not exact value


def test_an_embedded_wide_gamut_profile_is_converted_to_srgb(tmp_path: Path) -> None:
    path = tmp_path / "p3.jpg"
    srgb_red = pyvips.Image.black(64, 64).new_from_image([200, 30, 30]).cast("uchar")
    p3 = srgb_red.copy(interpretation="srgb").icc_transform("p3", input_profile="srgb")
    assert p3.getpoint(5, 5)[1] > 45  # the same colour has other numbers in Display P3
    p3.jpegsave(str(path), Q=95)
    out = _decoded(render(path, probe(path, Limits()), [Recipe("t", 64)]).renditions[0].data)
    assert out.getpoint(5, 5) == pytest.approx([200, 30, 30], abs=4)


def test_sixteen_bit_and_alpha_flatten_to_8_bit_rgb_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    rgb16 = (photo(300, 200).cast("ushort") * 256).copy(interpretation="rgb16")
    alpha = pyvips.Image.black(300, 200).new_from_image(0).cast("ushort")  # fully transparent
    rgb16.bandjoin(alpha).pngsave(str(path))
    out = _decoded(render(path, probe(path, Limits()), [Recipe("t", 100)]).renditions[0].data)
    assert (out.bands, out.format) == (3, "uchar")
    assert out.min() >= 250  # transparent pixels flattened onto white


def test_first_frame_of_an_animation(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    frames = [PILImage.new("RGB", (120, 80), colour) for colour in ("red", "blue", "green")]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = _decoded(render(path, probe(path, Limits()), [Recipe("t", 120)]).renditions[0].data)
    assert (out.width, out.height) == (120, 80)
    assert out.extract_band(0).avg() > 200 and out.extract_band(2).avg() < 60  # red


@pytest.mark.parametrize("kind", ["webp", "avif", "tiff"])
def test_libvips_formats(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"image.{kind}"
    photo(400, 300).write_to_file(str(path))
    found = probe(path, Limits())
    assert found.format == kind
    out = render(path, found, [Recipe("t", 200)]).renditions[0]
    assert (out.width, out.height) == (200, 150)


def test_heic_through_pillow_heif(tmp_path: Path) -> None:
    path = tmp_path / "iphone.heic"
    picture = PILImage.frombytes("RGB", (400, 300), photo(400, 300).write_to_memory())
    pillow_heif.from_pillow(picture).save(path, quality=80)
    found = probe(path, Limits())
    assert (found.format, found.width, found.height) == ("heic", 400, 300)
    out = render(path, found, [Recipe("t", 200)]).renditions[0]
    assert (out.width, out.height) == (200, 150)


@pytest.mark.parametrize("recipe_format", ["webp", "avif"])
def test_recipe_formats(tmp_path: Path, recipe_format: str) -> None:
    path = jpeg(tmp_path / "a.jpg", 400, 300)
    out = render(path, probe(path, Limits()), [Recipe("t", 100, recipe_format, 70)])
    loader = _decoded(out.renditions[0].data).get("vips-loader")
    assert loader.startswith("webp" if recipe_format == "webp" else "heif")


def test_recipe_hash_follows_the_recipe() -> None:
    assert Recipe("t", 100).hash == Recipe("t", 100).hash
    assert Recipe("t", 100).hash != Recipe("t", 100, quality=70).hash
    with pytest.raises(ValueError, match="format"):
        Recipe("t", 100, "bmp")


def test_truncated_jpeg_is_corrupt(tmp_path: Path) -> None:
    whole = jpeg(tmp_path / "whole.jpg", 800, 600).read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(whole[: len(whole) // 2])
    found = probe(path, Limits())  # the header is intact
    with pytest.raises(MediaError) as caught:
        render(path, found, [Recipe("t", 400)])
    assert caught.value.code is MediaErrorCode.CORRUPT_IMAGE


def _means(image: pyvips.Image) -> list[float]:
    """Each band's mean (row 0 of `stats` is every band together)."""
    stats = image.stats()
    return [stats(4, band + 1)[0] for band in range(image.bands)]


def _red_left_blue_right(data: bytes) -> bool:
    """The test DNG's scene, as a demosaic renders it."""
    image = _decoded(data)
    left = _means(image.crop(0, 0, image.width // 4, image.height))
    right = _means(image.crop(image.width * 3 // 4, 0, image.width // 4, image.height))
    return left[0] > 2 * left[2] and right[2] > 2 * right[0]


def _green_jpeg(width: int, height: int) -> bytes:
    green = pyvips.Image.black(width, height).new_from_image([30, 200, 40])
    return green.cast("uchar").copy(interpretation="srgb").jpegsave_buffer(Q=90)


def test_one_render_makes_the_set_and_measures_the_preview(tmp_path: Path) -> None:
    """The preview job's render: every size from one decode, the assessment taken on the
    rendition asked for (the preview) whatever the order and even when a larger size is
    made, and the thumbhash on the smallest."""
    path = jpeg(tmp_path / "p.jpg", 3000, 2000)
    found = probe(path, Limits())
    preview, large = Recipe("preview", 1200), Recipe("thumb_1600", 1600)
    made = render(path, found, [large, *THUMBS, preview], True, preview)
    sides = [1600, 64, 128, 256, 512, 1200]
    assert [r.width for r in made.renditions] == sides
    heights = [r.height for r in made.renditions]
    assert all(abs(h - side * 2 / 3) <= 1 for h, side in zip(heights, sides, strict=True))
    # decoded for 1600 px here, for 1200 alone: the pixels differ a little, the measure of
    # the 1600 px rendition more
    alone = render(path, found, [preview], assess_on=preview).assessment
    larger = render(path, found, [large], assess_on=large).assessment
    assert made.assessment is not None and alone is not None and larger is not None
    measured = made.assessment.sharpness
    assert abs(measured - alone.sharpness) < abs(measured - larger.sharpness)
    assert made.assessment.phash == alone.phash
    assert made.thumbhash is not None
    with pytest.raises(ValueError, match="not among"):
        render(path, found, THUMBS, assess_on=preview)


def test_raw_without_a_preview_is_demosaiced(tmp_path: Path) -> None:
    path = dng(tmp_path / "IMG_0001.DNG", 1200, 800)
    found = probe(path, Limits())
    assert (found.format, found.width, found.height) == ("dng", 1200, 800)
    rendered = render(path, found, [*THUMBS, Recipe("preview", 2000)], with_thumbhash=True)
    preview = next(r for r in rendered.renditions if r.recipe.name == "preview")
    assert (preview.width, preview.height) == (1200, 800)
    assert _red_left_blue_right(preview.data)
    assert {r.width for r in rendered.renditions if r.recipe.name != "preview"} == {
        64,
        128,
        256,
        512,
    }
    meta = read_metadata(path, found.format)
    assert (meta.camera_make, meta.camera_model) == ("Enlarger", "Test DNG")
    assert (meta.lens, meta.taken_at) == ("EF50mm f/1.8 STM", "2026-03-01T09:15:00")
    assert (meta.exposure_time_s, meta.f_number, meta.focal_length_mm) == (0.008, 5.6, 50)


def test_raw_with_a_large_preview_uses_the_cameras_rendering(tmp_path: Path) -> None:
    path = dng(tmp_path / "IMG_0002.DNG", 3000, 2000, preview=_green_jpeg(2400, 1600))
    found = probe(path, Limits())
    assert (found.width, found.height) == (3000, 2000)  # the sensor's size, not the preview's
    preview = render(path, found, [Recipe("preview", 2000)]).renditions[0]
    assert (preview.width, preview.height) == (2000, 1333)
    red, green, blue = _means(_decoded(preview.data))
    assert green > 150 and red < 80 and blue < 80


def test_raw_with_a_small_preview_is_demosaiced(tmp_path: Path) -> None:
    path = dng(tmp_path / "IMG_0003.DNG", 3000, 2000, preview=_green_jpeg(160, 120))
    preview = render(path, probe(path, Limits()), [Recipe("preview", 2000)]).renditions[0]
    assert (preview.width, preview.height) == (2000, 1333)
    assert _red_left_blue_right(preview.data)


def test_metadata_of_a_container_pillow_cannot_read_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "DSCF0001.RAF"
    path.write_bytes(b"FUJIFILMCCD-RAW 0201FF383501" + bytes(4096))
    assert all(value is None for value in read_metadata(path, "raf").as_dict().values())


def test_bigtiff_is_a_tiff(tmp_path: Path) -> None:
    path = tmp_path / "scan.tif"
    photo(300, 200).tiffsave(str(path), bigtiff=True)
    assert path.read_bytes()[:4] == b"II+\x00"
    found = probe(path, Limits())
    assert found.format == "tiff"
    out = render(path, found, [Recipe("t", 150)]).renditions[0]
    assert (out.width, out.height) == (150, 100)


def test_a_decoder_error_never_shows_the_servers_path(tmp_path: Path) -> None:
    folder = tmp_path / "server-only-folder"
    folder.mkdir()
    path = folder / "3f0c9a.upload"
    path.write_bytes(b"II*\x00\x08\x00\x00\x00" + b"\x00" * 50)
    with pytest.raises(MediaError) as caught:
        probe(path, Limits())
    assert caught.value.code is MediaErrorCode.CORRUPT_IMAGE
    assert "server-only-folder" not in caught.value.message
    assert "3f0c9a" not in caught.value.message
    assert "the file" in caught.value.message


def test_a_png_exif_orientation_after_the_image_data_is_applied(tmp_path: Path) -> None:
    path = png_with_late_exif(tmp_path / "phone.png", orientation=6)
    assert path.read_bytes().index(b"eXIf") > path.read_bytes().index(b"IDAT")
    found = probe(path, Limits())
    assert (found.width, found.height, found.orientation) == (200, 300, 6)
    out = render(path, found, [Recipe("t", 150)]).renditions[0]
    assert (out.width, out.height) == (100, 150)
    upright = _decoded(out.data)
    top, bottom = upright.crop(0, 0, 100, 30), upright.crop(0, 120, 100, 30)
    assert top.extract_band(0).avg() > 180 and bottom.extract_band(0).avg() < 80  # red on top


@pytest.mark.parametrize("codec", [b"avc1", b"jpeg", b"j2k1", b"vvc1"])
def test_a_heif_in_a_codec_without_a_decoder_is_unsupported_not_corrupt(
    tmp_path: Path, codec: bytes
) -> None:
    """A HEIC whose primary item is declared in another codec, as cameras that write
    AVC or JPEG inside HEIF do."""
    made = tmp_path / "hevc.heic"
    picture = PILImage.frombytes("RGB", (64, 48), photo(64, 48).write_to_memory())
    pillow_heif.from_pillow(picture).save(made, quality=60)
    assert probe(made, Limits()).format == "heic"
    other = tmp_path / "other.heic"
    other.write_bytes(made.read_bytes().replace(b"hvc1", codec, 1))
    with pytest.raises(MediaError) as caught:
        probe(other, Limits())
    assert caught.value.code is MediaErrorCode.UNSUPPORTED_FORMAT


def test_an_avif_sequence_gives_its_first_frame(tmp_path: Path) -> None:
    """libvips refuses AVIF sequences (`avis`); Pillow reads them, and any file libvips
    refuses that Pillow decodes."""
    path = tmp_path / "burst.avif"
    frames = [PILImage.new("RGB", (64, 48), (red, 40, 40)) for red in (220, 30, 120)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    assert path.read_bytes()[8:12] == b"avis"
    found = probe(path, Limits())
    assert (found.format, found.width, found.height) == ("avif", 64, 48)
    out = _decoded(render(path, found, [Recipe("t", 32)]).renditions[0].data)
    assert (out.width, out.height) == (32, 24)
    assert out.extract_band(0).avg() > 180 and out.extract_band(1).avg() < 80  # the first


def test_a_layered_avif_gives_its_finest_layer(tmp_path: Path) -> None:
    """A progressive AVIF holds a coarse layer then a fine one in one item; the preview is
    made from the fine one, not the first layer a progressive reader could show."""
    path = layered_avif(tmp_path / "layered.avif", qualities=(0, 90))
    assert b"a1lx" in path.read_bytes()
    found = probe(path, Limits())
    assert (found.format, found.width, found.height) == ("avif", 300, 200)
    out = _decoded(render(path, found, [Recipe("t", 300, quality=100)]).renditions[0].data)
    coarse_only = layered_avif(tmp_path / "coarse.avif", qualities=(0,))
    coarse = _decoded(
        render(coarse_only, probe(coarse_only, Limits()), [Recipe("t", 300)]).renditions[0].data
    )
    assert (coarse - photo(300, 200)).abs().avg() > 4  # what the first layer alone looks like
    assert (out - photo(300, 200)).abs().avg() < 2


@pytest.mark.parametrize("make", ["PENTAX Corporation", "SAMSUNG", "Hasselblad", "KODAK"])
def test_a_raw_in_a_tiff_wrapper_is_known_by_libraw_not_rendered_from_its_thumbnail(
    tmp_path: Path, make: str
) -> None:
    path = tiff_wrapped_raw(tmp_path / "IMGP0001.PEF", make, 600, 400)
    assert sniff(path.read_bytes()) == "tiff"  # the magic bytes alone say TIFF
    found = probe(path, Limits())
    assert (found.format, found.width, found.height) == ("raw", 600, 400)
    preview = render(path, found, [Recipe("preview", 2000)]).renditions[0]
    assert (preview.width, preview.height) == (600, 400)
    assert _red_left_blue_right(preview.data)


def test_a_raw_in_its_makers_own_container_is_known_by_libraw(tmp_path: Path) -> None:
    path = phase_one_raw(tmp_path / "CF000001.IIQ", 600, 400)
    assert sniff(path.read_bytes()) is None
    found = probe(path, Limits())
    assert (found.format, found.width, found.height) == ("raw", 600, 400)
    preview = render(path, found, [Recipe("preview", 2000)]).renditions[0]
    assert (preview.width, preview.height) == (600, 400)


def test_a_scanners_tiff_bearing_a_camera_makers_name_is_a_tiff(tmp_path: Path) -> None:
    """Nikon's film scanners write plain TIFF with Make "Nikon"; LibRaw refuses it."""
    path = tmp_path / "scan.tif"
    picture = PILImage.frombytes("RGB", (300, 200), photo(300, 200).write_to_memory())
    picture.save(path, tiffinfo={0x010F: "NIKON"})
    assert sniff(path.read_bytes()) == "nef"
    found = probe(path, Limits())
    assert (found.format, found.width, found.height) == ("tiff", 300, 200)


def test_a_raw_with_no_sensor_data_is_corrupt_not_a_black_preview(tmp_path: Path) -> None:
    path = dng(tmp_path / "metadata-only.dng", 600, 400, blank=True)
    found = probe(path, Limits())
    with pytest.raises(MediaError) as caught:
        render(path, found, [Recipe("preview", 2000)])
    assert caught.value.code is MediaErrorCode.CORRUPT_IMAGE
    assert "no sensor data" in caught.value.message


@pytest.mark.parametrize("variant", TIFF_VARIANTS)
def test_every_tiff_layout_decodes_to_its_photo(tmp_path: Path, variant: str) -> None:
    """libvips, then Pillow (LZMA, tiled planes, CIELAB), then tifffile (12-bit, JPEG
    2000); 32-bit and signed samples scaled by their range; the largest page taken."""
    path = tiff_variant(tmp_path / f"{variant}.tif", variant)
    found = probe(path, Limits())
    assert (found.format, found.width, found.height) == ("tiff", 600, 400)
    out = render(path, found, [Recipe("preview", 2000, format="webp", quality=100)])
    rendition = out.renditions[0]
    assert (rendition.width, rendition.height) == (600, 400)
    expected = photo(600, 400)
    if variant.endswith("grey"):
        expected = expected.colourspace("b-w").colourspace("srgb")
    if variant.endswith("cmyk"):  # out of gamut colours are clipped on the way in
        expected = expected.colourspace("cmyk").colourspace("srgb")
    difference = (_decoded(rendition.data) - expected).abs().avg()
    assert difference < 3  # CIELAB and CMYK round through 8 bits; lossy WebP adds a little


@pytest.mark.parametrize("transfer", [16, 18], ids=["PQ", "HLG"])
@pytest.mark.parametrize("make", [hdr_heic, hdr_avif], ids=["heic", "avif"])
def test_an_hdr_heif_is_tone_mapped_to_srgb_not_washed_out(
    tmp_path: Path, transfer: int, make: Callable[[Path, int], Path]
) -> None:
    """10-bit HEIC through pillow-heif; 8-bit AVIF through libvips (so coarser)."""
    path = make(tmp_path / "hdr", transfer)
    found = probe(path, Limits())
    assert found.hdr_transfer == transfer
    out = _decoded(render(path, found, [Recipe("t", 300, quality=100)]).renditions[0].data)
    as_stored = PILImage.open(path) if make is hdr_avif else pillow_heif.open_heif(path)
    washed_out = pyvips.Image.new_from_array(np.asarray(as_stored), interpretation="srgb")
    assert (washed_out - photo(300, 200)).abs().avg() > 15  # the coded values, shown as SDR
    assert (out - photo(300, 200)).abs().avg() < 5


@pytest.mark.parametrize("coded_range", ["limited", "full"])
def test_a_monochrome_avif_keeps_its_levels(tmp_path: Path, coded_range: str) -> None:
    """libheif reads a limited-range 4:0:0 AVIF's levels wrong (16 as 30, 235 as 218);
    such files go to Pillow's libavif."""
    path = tmp_path / "mono.avif"
    picture = PILImage.new("L", (256, 256), 16)
    picture.paste(235, (128, 0, 256, 256))
    picture.save(path, "AVIF", subsampling="4:0:0", range=coded_range, quality=100)
    found = probe(path, Limits())
    out = _decoded(render(path, found, [Recipe("t", 256, quality=100)]).renditions[0].data)
    dark, light = out.crop(8, 8, 100, 240), out.crop(148, 8, 100, 240)
    assert abs(dark.avg() - 16) < 2 and abs(light.avg() - 235) < 2


def test_an_old_style_jpeg_tiff_decodes_or_fails_never_to_black(tmp_path: Path) -> None:
    """libvips decodes the tiled one to zero pixels without an error; Pillow decodes the
    strip one right and refuses the tiled one, which is then CORRUPT_IMAGE."""
    strip = old_style_jpeg_tiff(tmp_path / "strip.tif", tiled=False)
    found = probe(strip, Limits())
    out = _decoded(render(strip, found, [Recipe("t", 256, quality=100)]).renditions[0].data)
    assert (out - photo(256, 256)).abs().avg() < 3
    tiled = old_style_jpeg_tiff(tmp_path / "tiled.tif", tiled=True)
    assert pyvips.Image.new_from_file(str(tiled), fail_on="error").max() == 0  # the old way
    with pytest.raises(MediaError) as caught:
        render(tiled, probe(tiled, Limits()), [Recipe("t", 256)])
    assert caught.value.code is MediaErrorCode.CORRUPT_IMAGE


def test_assessment_tells_sharp_from_blurred_and_alike_from_different() -> None:
    """The numbers culling stands on: the sharpest region of a focused frame is far above
    its blurred copy's; a frame moved a few pixels keeps its hash, another scene does not;
    a frame with no capture time is in no burst."""
    from enlarger.media.assess import hash_distance
    from tests.culling_set import frame, scene

    crisp, moved = assess(frame(scene(1))), assess(frame(scene(1), 6, -4))
    blurred, other = assess(frame(scene(1), blur=3.0)), assess(frame(scene(2)))
    assert crisp.sharpness > 20 * blurred.sharpness and len(crisp.regions) == 16
    assert hash_distance(crisp.phash, moved.phash) <= 6
    assert hash_distance(crisp.phash, other.phash) >= 20
    at = datetime(2026, 7, 14, 12, 0, 0)
    frames = [
        Frame("a", at, crisp.phash),
        Frame("b", at, moved.phash),
        Frame("c", None, crisp.phash),
    ]
    assert bursts(frames, max_gap_s=2) == [["a", "b"]]
    white = pyvips.Image.black(64, 48, bands=3).invert().copy(interpretation="srgb")
    assert (assess(white).highlights, assess(white).shadows) == (1.0, 0.0)


@pytest.mark.parametrize("kind", ["jpeg", "dng"])
def test_xmp_written_into_a_file_twice_leaves_one_packet_and_the_image(
    kind: str, tmp_path: Path
) -> None:
    path = jpeg(tmp_path / "a.jpg", 300, 200) if kind == "jpeg" else dng(tmp_path / "a.dng", 64, 48)
    original = path.read_bytes()
    first = embed_xmp(original, kind, write_decisions(None, Decisions("pick", 2)))
    second = embed_xmp(first, kind, write_decisions(embedded_xmp(first, kind), Decisions("reject")))
    assert read_decisions(embedded_xmp(second, kind) or b"") == Decisions("reject", 0, None)
    if kind == "jpeg":
        assert second.count(b"http://ns.adobe.com/xap/1.0/\x00") == 1
        assert second[second.index(b"\xff\xda") :] == original[original.index(b"\xff\xda") :]
    else:  # the second packet takes the first one's place: the file does not grow
        assert len(second) == len(first) and second[:4] == first[:4]
        assert second.count(b"<x:xmpmeta") == 1
    decoded = pyvips.Image.new_from_buffer(second, "") if kind == "jpeg" else None
    assert decoded is None or decoded.width == 300


def test_xmp_that_does_not_fit_is_refused() -> None:
    with pytest.raises(EmbedError, match="65,502"):
        embed_xmp(b"\xff\xd8\xff\xda\x00\x02", "jpeg", b"x" * 70_000)
    with pytest.raises(EmbedError, match="not a TIFF"):
        embed_xmp(b"\xff\xd8 a jpeg", "dng", b"<x/>")
    with pytest.raises(EmbedError, match="png"):
        embed_xmp(b"", "png", b"<x/>")


def test_exposure_is_read_off_the_histogram_not_only_clipped_pixels() -> None:
    """Frames at a third of a good exposure clip nothing (noise lifts their shadows) but
    are dark; at twice or more they are bright; a good one is neither, and neither is a
    flat scene with no highlights at all."""
    for seed in (100, 101, 102):
        source = culling_set.frame(culling_set.scene(seed))
        found = {
            factor: assess(culling_set.exposed(source, factor, seed)).as_dict()
            for factor in (0.3, 0.35, 0.4, 0.7, 1.0, 2.0, 3.0)
        }
        assert all(found[f]["shadows"] < 0.05 for f in (0.3, 0.35, 0.4))  # clipping says little
        assert [f for f, a in found.items() if is_dark(a)] == [0.3, 0.35, 0.4]
        assert [f for f, a in found.items() if is_bright(a)] == [2.0, 3.0]
        assert found[0.35]["headroom"] == pytest.approx(-1.4, abs=0.15)
        assert found[1.0]["headroom"] == 0.0
    flat = assess(photo(600, 400)).as_dict()  # no highlights, but a median at mid-grey: fog
    assert flat["headroom"] < -1 and not is_dark(flat)


def test_a_cut_out_on_transparency_is_measured_by_its_opaque_pixels() -> None:
    """A product cut out onto transparency (a PNG as a shop exports it) used to be
    flattened onto white and so read as clipped highlights: a bright frame. Only its
    opaque pixels count now, so it measures as those pixels do on their own, and its
    outline against what shows through is no detail."""
    good = culling_set.exposed(culling_set.frame(culling_set.scene(100)), 1.0, 100)
    subject = good.crop(300, 200, 600, 400)
    canvas = pyvips.Image.black(1000, 700, bands=4).copy(interpretation="srgb").cast("uchar")
    cut_out = canvas.insert(subject.bandjoin(255), 200, 150)
    alone, on_transparency = assess(subject).as_dict(), assess(cut_out).as_dict()
    for measure in ("highlights", "shadows", "exposure", "headroom"):
        assert on_transparency[measure] == alone[measure], measure
    assert not is_bright(on_transparency) and not is_dark(on_transparency)
    assert on_transparency["sharpness"] > Settings().blur_threshold
    grey = (pyvips.Image.black(600, 400, bands=3) + 128).cast("uchar").bandjoin(255)
    assert assess(canvas.insert(grey, 200, 150)).sharpness == 0.0


def test_a_second_camera_shooting_at_the_same_time_splits_no_burst() -> None:
    start = datetime(2026, 7, 14, 15, 0, 0)
    a_hash, b_hash = "f0f0f0f0f0f0f0f0", "0f0f0f0f0f0f0f0f"  # two scenes, 64 bits apart
    frames = [
        Frame(f"A{n}", start + timedelta(seconds=0.6 * n), a_hash, "serial:A") for n in range(4)
    ]
    frames += [
        Frame(f"B{n}", start + timedelta(seconds=0.6 * n + 0.3), b_hash, "serial:B")
        for n in range(3)
    ]
    found = sorted(bursts(frames, max_gap_s=1.0))
    assert found == [["A0", "A1", "A2", "A3"], ["B0", "B1", "B2"]]


LIGHTROOM_AND_FRIENDS = b"""<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:aux="http://ns.adobe.com/exif/1.0/aux/"
    xmlns:photomechanic="http://ns.camerabits.com/photomechanic/1.0/"
    xmlns:darktable="http://darktable.sf.net/"
   xmp:Rating="2" xmp:Label="To Print" aux:Lens="RF24-70mm" photomechanic:Prefs="1:2:2:0005">
   <darktable:colorlabels><rdf:Seq><rdf:li>0</rdf:li><rdf:li>3</rdf:li></rdf:Seq></darktable:colorlabels>
  </rdf:Description>
  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="2"/>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""


def test_writing_decisions_keeps_what_other_tools_wrote() -> None:
    """A label name of another tool's, darktable's second colour label, Photo Mechanic's
    Prefs (kept in step), the namespace prefixes and the xpacket wrapper all survive; a
    description left with nothing to say goes; a packet that already says it all is not
    rewritten."""
    unlabelled = write_decisions(LIGHTROOM_AND_FRIENDS, Decisions("unflagged", 4, None))
    assert unlabelled.startswith(b"<?xpacket begin") and unlabelled.rstrip().endswith(b"?>")
    assert b"aux:Lens=" in unlabelled and b"ns" + b"0:" not in unlabelled
    assert b'xmp:Label="To Print"' in unlabelled
    assert b'photomechanic:Prefs="0:2:4:0005"' in unlabelled
    assert unlabelled.count(b"<rdf:Description") == 1
    assert read_decisions(unlabelled) == Decisions("unflagged", 4, None)  # "To Print"
    red = write_decisions(LIGHTROOM_AND_FRIENDS, Decisions("unflagged", 4, "red"))
    assert b"<rdf:li>0</rdf:li><rdf:li>3</rdf:li>" in red and b'xmp:Label="Red"' in red
    assert not needs_writing(red, Decisions("unflagged", 4, "red"), "rating")
    assert needs_writing(red, Decisions("unflagged", 4, "blue"), "rating")


@pytest.mark.parametrize("suffix", ["jpg", "png", "gif", "webp", "heic", "avif"])
def test_a_file_cut_short_does_not_reach_its_end(suffix: str, tmp_path: Path) -> None:
    """What folder_check asks of a file whose size held across its two looks: a copy that
    paused (a slow card reader) must not be taken for a whole, broken photo."""
    path = tmp_path / f"whole.{suffix}"
    image = photo(640, 480)
    if suffix == "heic":
        picture = PILImage.frombytes("RGB", (640, 480), image.write_to_memory())
        pillow_heif.from_pillow(picture).save(path, quality=80)
    else:
        image.write_to_file(str(path))
    data = path.read_bytes()

    def ends(content: bytes) -> bool:
        kind = sniff(content[:HEAD_BYTES])
        assert kind is not None
        return reaches_its_end(kind, content[:HEAD_BYTES], content[-TAIL_BYTES:], len(content))

    assert ends(data)
    assert not ends(data[: len(data) // 2])
    assert not ends(data[:-3])
